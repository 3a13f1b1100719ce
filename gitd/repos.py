"""Repository storage: one non-bare Git repository per wiki, with a worktree Otterwiki reads.

Every writer to a wiki (push, web edit, MCP, bootstrap) holds the wiki's file lock while it moves
refs and the worktree, so the worktree always equals HEAD between writes. Reads go through
`Repository` (repository.py).
"""
from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .git_process import RepoError, git, run_git
from .locks import file_lock, make_folder, remove_tree
from .names import WikiName
from .refs import MAIN
from .repository import Repository

DEFAULT_BRANCH = MAIN.removeprefix("refs/heads/")
# `$GIT_DIR/info/attributes` overrides the tree's `.gitattributes`: no checkout converts a file
# (`ident`, `eol=crlf`, `working-tree-encoding` turned 9 MiB of blobs into 105 MiB of worktree),
# so the worktree holds exactly the blobs' bytes, which is what the size limits count.
ATTRIBUTES = "* -text -ident -filter -working-tree-encoding -eol\n"


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

    def repair(self, name: WikiName) -> list[str]:
        """Put back the settings every repository carries (hook scripts, the attributes override)
        where missing or altered; returns what it rewrote. Run at creation and when the worker starts,
        under the lock: a repository deleted meanwhile is left gone, not given its folders back."""
        git_dir = self.path(name) / ".git"
        with self.lock(name):
            if not self.exists(name):
                return []
            written = [f"hooks/{hook}" for hook, script in self.hook_scripts.items()
                       if _install(git_dir / "hooks" / hook, script, 0o700)]  # executable, and private
            if _install(git_dir / "info" / "attributes", ATTRIBUTES, 0o600):
                written.append("info/attributes")
                self._checkout_afresh(name)
        return written

    def _checkout_afresh(self, name: WikiName) -> None:
        """Files checked out before the override may hold converted bytes: if the tree has any
        `.gitattributes`, check every file out again (a hard reset without the index rewrites all).
        Call with the lock held."""
        repo = self.repo(name)
        head = repo.head()
        listed = [e.path for e in repo.entries(head, sizes=False)] if head else []
        if not any(path.rpartition("/")[2] == ".gitattributes" for path in listed):
            return  # a new repository, or one no attribute could have touched
        (repo.path / ".git" / "index").unlink(missing_ok=True)
        git(repo.path, "reset", "-q", "--hard", "HEAD")

    def path(self, name: WikiName) -> Path:
        return self.root / name.owner / name.slug

    def repo(self, name: WikiName, env: dict[str, str] | None = None) -> Repository:
        """The read API for `name`'s repository (with `env`: also seeing a quarantine's objects)."""
        return Repository(self.path(name), env)

    def exists(self, name: WikiName) -> bool:
        return (self.path(name) / ".git").is_dir()

    @contextmanager
    def lock(self, name: WikiName, timeout: float | None = None) -> Iterator[None]:
        """The per-wiki writer lock, valid across processes (LockTimeout after `timeout` s, if given).

        Whoever releases it while the wiki has no repository (deleted, or not made yet) removes the
        lock file, so deleted wikis leave none behind; locks.py says why that keeps the lock exclusive.
        A wiki being created may lose its lock file that way: the next taker simply makes a new one.
        """
        with file_lock(self.locks / name.owner / f"{name.slug}.lock", timeout=timeout) as held:
            try:
                yield
            finally:
                if not self.exists(name):
                    held.remove()

    def create(self, name: WikiName) -> Path:
        """Initialise an empty repository whose HEAD is the unborn default branch."""
        path = self.path(name)
        while True:
            make_folder(path.parent)
            try:
                path.mkdir()
                break
            except FileExistsError:
                raise RepoError(f"a repository already exists at {path}") from None
            except FileNotFoundError:
                continue  # the owner's folder was removed (emptied by a deletion) after it was made
        run_git(path, "init", "-q", "-b", DEFAULT_BRANCH)
        # A wiki is written by many paths; none of them should trip over a missing identity. Appended
        # to the config git init just wrote, instead of two more `git config` processes.
        with open(path / ".git" / "config", "a") as config:
            config.write("[user]\n\tname = wikibot\n\temail = wikibot@localhost\n")
        self.repair(name)
        return path

    def delete(self, name: WikiName) -> None:
        """Remove the repository, and its owner's folder once empty, under the lock (which then goes too)."""
        with self.lock(name):
            self.remove_locked(name)

    def remove_locked(self, name: WikiName) -> None:
        """`delete` for a caller that holds the lock already."""
        remove_tree(self.path(name))

    def head(self, name: WikiName) -> str | None:
        """The commit the default branch points at, or None while it is unborn."""
        return self.repo(name).head()

    def sync_worktree(self, name: WikiName) -> None:
        """Make the worktree and index equal HEAD. Call with the wiki's lock held.

        dulwich's receive-pack moves refs only; without this, Otterwiki's next save would commit
        the stale files and silently undo the push. Every writer holds the wiki lock, so an
        `index.lock` found now was left by a crashed git process: it is removed and the reset retried.
        """
        path = self.path(name)
        try:
            git(path, "reset", "-q", "--hard", "HEAD")
        except RepoError:
            (path / ".git" / "index.lock").unlink(missing_ok=True)
            git(path, "reset", "-q", "--hard", "HEAD")

    def pack(self, name: WikiName, objects: bool) -> None:
        """Pack the refs (and, with `objects`, all objects into one pack) under the writer lock: every
        push adds a pack file and loose refs are files every fetch reads, so both slow a wiki down."""
        path = self.path(name)
        with self.lock(name):
            if not self.exists(name):
                return  # deleted since the caller looked
            if objects:
                git(path, "repack", "-a", "-d", "-q")
                # `git log -- PATH` (a page's history, here and in klaus) walks commits far faster with it
                git(path, "commit-graph", "write", "--reachable")
            git(path, "pack-refs", "--all")
