"""Repository storage: one non-bare Git repository per wiki, with a worktree Otterwiki reads.

Every writer to a wiki (push, web edit, MCP, bootstrap) holds the wiki's file lock while it moves
refs and the worktree, so the worktree always equals HEAD between writes.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .locks import file_lock
from .names import check_name
from .refs import MAIN

DEFAULT_BRANCH = MAIN.removeprefix("refs/heads/")


class RepoError(Exception):
    """A repository operation failed; the message says which and why."""


# Server-side git must see the repository as it is: no machine or user config (log.showRoot=false
# would hide root commits from the push policy), no replace refs (they change what git shows),
# no hooks (wikibot announces its own writes; the post-commit hook is for everyone else's).
SAFE_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_NO_REPLACE_OBJECTS": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}
SAFE_CONFIG = ("-c", "log.showRoot=true", "-c", "diff.ignoreSubmodules=none", "-c", "core.hooksPath=/dev/null")
# `$GIT_DIR/info/attributes` overrides the tree's `.gitattributes`: no checkout converts a file
# (`ident`, `eol=crlf`, `working-tree-encoding` turned 9 MiB of blobs into 105 MiB of worktree),
# so the worktree holds exactly the blobs' bytes, which is what the size limits count.
ATTRIBUTES = "* -text -ident -filter -working-tree-encoding -eol\n"


def git_command(repo: Path, *args: str) -> list[str]:
    return ["git", "-C", str(repo), *SAFE_CONFIG, *args]


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **SAFE_ENV, **(extra or {})}


def run_git(repo: Path, *args: str, env: dict[str, str] | None = None, input: bytes | None = None,
            ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[bytes]:
    """Run git in `repo` with the safe environment; exit codes outside `ok_codes` raise `RepoError`."""
    proc = subprocess.run(git_command(repo, *args), capture_output=True, env=git_env(env), input=input)
    if proc.returncode not in ok_codes:
        message = proc.stderr.decode(errors="replace").strip()
        raise RepoError(f"git {args[0]} failed in {repo}: {message}")
    return proc


def git(repo: Path, *args: str, env: dict[str, str] | None = None, input: bytes | None = None) -> str:
    """Run git in `repo`, returning stdout as text; failures raise `RepoError` with git's message."""
    return run_git(repo, *args, env=env, input=input).stdout.decode(errors="replace")


def batch_blobs(out: bytes, keys: Sequence[str]) -> dict[str, bytes]:
    """Parse `git cat-file --batch` output for the requests `keys` (in order): the blobs among
    them; missing objects ("<request> missing") and other object types are left out."""
    found: dict[str, bytes] = {}
    pos = 0
    for key in keys:
        end = out.index(b"\n", pos)
        header = out[pos:end]
        pos = end + 1
        if header.endswith(b" missing"):
            continue
        _, kind, size = header.rsplit(b" ", 2)
        if kind == b"blob":
            found[key] = out[pos:pos + int(size)]
        pos += int(size) + 1
    return found


def read_files(repo: Path, commit: str, paths: Sequence[str], env: dict[str, str] | None = None) -> dict[str, bytes]:
    """Contents of the files among `paths` at `commit`, read in one `git cat-file --batch`."""
    if not paths:
        return {}
    request = "".join(f"{commit}:{path}\n" for path in paths).encode()
    return batch_blobs(run_git(repo, "cat-file", "--batch", env=env, input=request).stdout, paths)


def page_files(repo: Path, commit: str, env: dict[str, str] | None = None) -> list[str]:
    """The wiki pages (`*.md` files) in `commit`: what limits count and search indexes."""
    listed = git(repo, "ls-tree", "-r", "-z", "--name-only", commit, env=env).split("\0")
    return [path for path in listed if path.endswith(".md")]


def _install(path: Path, content: str, mode: int) -> bool:
    """Write `content` to `path` (atomically, with `mode`) unless it is already there; True if written."""
    try:
        if path.read_text() == content and stat.S_IMODE(path.stat().st_mode) & mode == mode:
            return False
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_text(content)
    tmp.chmod(mode)
    os.replace(tmp, path)
    return True


class Repos:
    """Where wiki repositories live, and the operations every component shares."""

    def __init__(self, root: Path, locks: Path, hook_scripts: dict[str, str] | None = None) -> None:
        self.root = root
        self.locks = locks
        # git hooks every repository carries (name -> script), e.g. post-commit turning web
        # edits into events; written at creation and repaired by `repair`.
        self.hook_scripts = dict(hook_scripts or {})

    def repair(self, owner: str, slug: str) -> list[str]:
        """Put back the settings every repository carries (hook scripts, the attributes override)
        where missing or altered; returns what it rewrote. Run at creation and when the worker starts."""
        git_dir = self.path(owner, slug) / ".git"
        written = [f"hooks/{name}" for name, script in self.hook_scripts.items()
                   if _install(git_dir / "hooks" / name, script, 0o700)]  # executable, and private
        if _install(git_dir / "info" / "attributes", ATTRIBUTES, 0o600):
            written.append("info/attributes")
            self._checkout_afresh(owner, slug)
        return written

    def _checkout_afresh(self, owner: str, slug: str) -> None:
        """Files checked out before the override may hold converted bytes: if the tree has any
        `.gitattributes`, check every file out again (a hard reset without the index rewrites all)."""
        path = self.path(owner, slug)
        head = self.head(owner, slug)
        listed = git(path, "ls-tree", "-r", "-z", "--name-only", head).split("\0") if head else []
        if not any(name.rpartition("/")[2] == ".gitattributes" for name in listed):
            return  # a new repository, or one no attribute could have touched
        with self.lock(owner, slug):
            (path / ".git" / "index").unlink(missing_ok=True)
            git(path, "reset", "-q", "--hard", "HEAD")

    def path(self, owner: str, slug: str) -> Path:
        return self.root / check_name(owner, "user name") / check_name(slug, "wiki name")

    def exists(self, owner: str, slug: str) -> bool:
        return (self.path(owner, slug) / ".git").is_dir()

    @contextmanager
    def lock(self, owner: str, slug: str, timeout: float | None = None) -> Iterator[None]:
        """The per-wiki writer lock, valid across processes (LockTimeout after `timeout` s, if given)."""
        with file_lock(self.locks / check_name(owner) / f"{check_name(slug)}.lock", timeout=timeout):
            yield

    def create(self, owner: str, slug: str) -> Path:
        """Initialise an empty repository whose HEAD is the unborn default branch."""
        path = self.path(owner, slug)
        if path.exists():
            raise RepoError(f"a repository already exists at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        run_git(path.parent, "init", "-q", "-b", DEFAULT_BRANCH, str(path))
        # A wiki is written by many paths; none of them should trip over a missing identity.
        git(path, "config", "user.name", "wikibot")
        git(path, "config", "user.email", "wikibot@localhost")
        self.repair(owner, slug)
        return path

    def delete(self, owner: str, slug: str) -> None:
        path = self.path(owner, slug)
        with self.lock(owner, slug):
            shutil.rmtree(path, ignore_errors=True)

    def head(self, owner: str, slug: str) -> str | None:
        """The commit the default branch points at, or None while it is unborn."""
        try:
            return git(self.path(owner, slug), "rev-parse", "--verify", "-q", "HEAD^{commit}").strip()
        except RepoError:
            return None

    def sync_worktree(self, owner: str, slug: str) -> None:
        """Make the worktree and index equal HEAD. Call with the wiki's lock held.

        dulwich's receive-pack moves refs only; without this, Otterwiki's next save would commit
        the stale files and silently undo the push. Every writer holds the wiki lock, so an
        `index.lock` found now was left by a crashed git process: it is removed and the reset retried.
        """
        path = self.path(owner, slug)
        try:
            git(path, "reset", "-q", "--hard", "HEAD")
        except RepoError:
            (path / ".git" / "index.lock").unlink(missing_ok=True)
            git(path, "reset", "-q", "--hard", "HEAD")
