"""Repository storage: one non-bare Git repository per wiki, with a worktree Otterwiki reads.

Every writer to a wiki (push, web edit, MCP, bootstrap) holds the wiki's file lock while it moves
refs and the worktree, so the worktree always equals HEAD between writes.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .locks import file_lock
from .names import check_name

DEFAULT_BRANCH = "main"


class RepoError(Exception):
    """A repository operation failed; the message says which and why."""


def git(repo: Path, *args: str, env: dict[str, str] | None = None, input: bytes | None = None) -> str:
    """Run the git CLI in `repo`, returning stdout; failures raise `RepoError` with git's message."""
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(env or {})}
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, env=full_env, input=input
    )
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip()
        raise RepoError(f"git {args[0]} failed in {repo}: {message}")
    return proc.stdout.decode(errors="replace")


class Repos:
    """Where wiki repositories live, and the operations every component shares."""

    def __init__(self, root: Path, locks: Path, hook_scripts: dict[str, str] | None = None) -> None:
        self.root = root
        self.locks = locks
        # git hooks every repository carries (name -> script), e.g. post-commit turning web
        # edits into events; written at creation and repaired by `install_hooks`.
        self.hook_scripts = dict(hook_scripts or {})

    def all(self) -> list[tuple[str, str]]:
        """Every (owner, slug) with a repository on disk."""
        if not self.root.is_dir():
            return []
        return sorted((p.parent.name, p.name) for p in self.root.glob("*/*") if (p / ".git").is_dir())

    def install_hooks(self, owner: str, slug: str) -> list[str]:
        """Write any missing or altered hook script; returns the names it (re)wrote."""
        hooks_dir = self.path(owner, slug) / ".git" / "hooks"
        written = []
        for name, script in self.hook_scripts.items():
            hook = hooks_dir / name
            try:
                if hook.read_text() == script and os.access(hook, os.X_OK):
                    continue
            except FileNotFoundError:
                pass
            hooks_dir.mkdir(parents=True, exist_ok=True)
            tmp = hooks_dir / f".{name}.tmp"
            tmp.write_text(script)
            tmp.chmod(0o755)
            os.replace(tmp, hook)
            written.append(name)
        return written

    def path(self, owner: str, slug: str) -> Path:
        return self.root / check_name(owner, "user name") / check_name(slug, "wiki name")

    def exists(self, owner: str, slug: str) -> bool:
        return (self.path(owner, slug) / ".git").is_dir()

    @contextmanager
    def lock(self, owner: str, slug: str) -> Iterator[None]:
        """The per-wiki writer lock, valid across processes."""
        with file_lock(self.locks / check_name(owner) / f"{check_name(slug)}.lock"):
            yield

    def create(self, owner: str, slug: str) -> Path:
        """Initialise an empty repository whose HEAD is the unborn default branch."""
        path = self.path(owner, slug)
        if path.exists():
            raise RepoError(f"a repository already exists at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["git", "init", "-q", "-b", DEFAULT_BRANCH, str(path)], capture_output=True
        )
        if proc.returncode != 0:
            raise RepoError(f"git init failed: {proc.stderr.decode(errors='replace').strip()}")
        # A wiki is written by many paths; none of them should trip over a missing identity.
        git(path, "config", "user.name", "wikibot")
        git(path, "config", "user.email", "wikibot@localhost")
        self.install_hooks(owner, slug)
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
        the stale files and silently undo the push.
        """
        git(self.path(owner, slug), "reset", "-q", "--hard", "HEAD")

    def commit_all(self, owner: str, slug: str, message: str, author: tuple[str, str]) -> str:
        """Commit every change in the worktree (call with the lock held); returns the new HEAD.

        Hooks are off: wikibot announces its own commits, the post-commit hook is for others'.
        """
        path = self.path(owner, slug)
        name, email = author
        env = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": "wikibot",
            "GIT_COMMITTER_EMAIL": "wikibot@localhost",
        }
        git(path, "add", "-A")
        git(path, "-c", "core.hooksPath=/dev/null", "commit", "-q", "--no-verify", "-m", message, env=env)
        return git(path, "rev-parse", "HEAD").strip()
