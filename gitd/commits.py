"""Commits made by the platform itself (MCP writes, new wikis): the same rules as a push.

The new blobs, tree and commit are written into a quarantine with git plumbing and a private
index, so the worktree and index Otterwiki uses are untouched until the commit is accepted.
Then, under the wiki's lock, the commit goes through the very policies a push goes through
(limits, forbidden content, fast-forward), the ref moves only if HEAD is still the expected
base, the worktree is synced, and the change is announced as an event.
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from wikibot.errors import Conflict, Refused

from .change import Change, Source
from .git_process import RepoError, git
from .names import path_problem
from .quarantine import Quarantine
from .receive import PushContext, ReceiveSession, RefUpdate
from .refs import MAIN, ZERO


@dataclass(frozen=True)
class FileChange:
    path: str  # repository path, "/"-separated
    content: bytes | None  # None deletes the file


class CommitRefused(Refused):
    """The platform's rules refused the commit (a limit, a forbidden path); nothing changed."""


class CommitConflict(Conflict):
    """HEAD is not the base revision the writer started from; nothing changed."""

    def __init__(self, current: str | None) -> None:
        super().__init__(f"the wiki changed since that revision; it is now at {current or 'no commit'}")
        self.current = current


def _build(repo: Path, env: dict[str, str], head: str | None, changes: Sequence[FileChange], message: str,
           author: tuple[str, str]) -> str:
    """Write the commit's objects with `env` (the quarantine) and a private index; returns its sha."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**env, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if head:
            git(repo, "read-tree", head, env=env)
        for change in changes:
            if change.content is None:
                git(repo, "update-index", "--force-remove", "--", change.path, env=env)
                continue
            blob = git(repo, "hash-object", "-w", "--stdin", env=env, input=change.content).strip()
            git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{change.path}", env=env)
        tree = git(repo, "write-tree", env=env).strip()
        name, email = author
        identity = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
                    "GIT_COMMITTER_NAME": "wikibot", "GIT_COMMITTER_EMAIL": "wikibot@localhost"}
        parents = ["-p", head] if head else []
        return git(repo, "commit-tree", tree, *parents, "-m", message, env={**env, **identity}).strip()


def commit_changes(session: ReceiveSession, changes: Sequence[FileChange], *, message: str,
                   author: tuple[str, str], base: str | None, source: Source, head: str | None,
                   checkpoint: Callable[[], None] | None = None) -> str:
    """Commit `changes` on top of `head` (read by the caller under the lock); returns the new HEAD.

    Call with the wiki's lock held. `base` None skips the conflict check (first commit, bootstrap).
    `checkpoint` runs once the policies passed, before anything is kept: if it raises (the writer's
    request timed out), the repository is left as it was.
    """
    if base is not None and base != head:
        raise CommitConflict(head)
    for change in changes:
        problem = path_problem(change.path.encode())
        if problem:
            raise CommitRefused(f"path {change.path!r} {problem}")
    repo = session.repo.path
    quarantine = Quarantine(repo / ".git")
    try:
        new = _build(repo, quarantine.env, head, changes, message, author)
        update = RefUpdate(MAIN.encode(), (head or ZERO).encode(), new.encode())
        ctx = PushContext.of(session.repo, quarantine)
        for policy in session.policies:
            reasons = policy.check(ctx, [update])
            if reasons:
                raise CommitRefused(next(iter(reasons.values())))
        if checkpoint:
            checkpoint()
        quarantine.accept()
    finally:
        quarantine.discard()
    try:
        git(repo, "update-ref", MAIN, new, head or ZERO)
    except RepoError as exc:  # the lock makes this unreachable unless someone bypassed it
        raise CommitConflict(None) from exc
    session.sync_worktree()
    session.announce(Change(session.wiki, MAIN, head or ZERO, new, source, session.actor))
    return new
