"""Conflict-safe page writes: a page changed since the writer's base revision is a conflict.

The whole-wiki check of `Core.commit` alone would make two agents editing different pages collide.
So a write names the pages it depends on; under the wiki's lock they must be unchanged between
the writer's base revision and HEAD, and the changes are computed against that HEAD. No other
write can land in between, so nothing is lost and nothing needs retrying.

A write is retried when its request timed out: the first attempt either stopped at the checkpoint
before committing, or committed. So a guarded page that changed since the base revision but already
holds exactly what the write would commit is no conflict: the answer names the commit that did it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wikibot.errors import Conflict
from wikibot.gitd.commits import FileChange
from wikibot.gitd.core import Core
from wikibot.gitd.http_access import Caller
from wikibot.gitd.locks import LockTimeout
from wikibot.gitd.repository import Repository

from .deadline import Deadline, diff_until


class PageConflict(Conflict):
    """A guarded page differs between the writer's base revision and HEAD."""

    def __init__(self, path: str, base: str | None, current: str | None, diff: str = "") -> None:
        super().__init__(path)
        self.path = path
        self.base = base
        self.current = current
        self.diff = diff


@dataclass(frozen=True)
class Written:
    revision: str
    changes: tuple[FileChange, ...]
    already: bool = False  # nothing was committed: HEAD already held the changes (since `revision`)


class _AlreadyAtHead(Exception):
    def __init__(self, revision: str, changes: tuple[FileChange, ...]) -> None:
        super().__init__(revision)
        self.revision = revision
        self.changes = changes


def commit_pages(core: Core, caller: Caller, repo: Repository, *, base: str | None, guarded: Sequence[str],
                 build: Callable[[str | None], Sequence[FileChange]], message: str,
                 checkpoint: Callable[[str], None], deadline: Deadline | None, idempotent: bool = False) -> Written:
    """Commit what `build(head)` returns, if no page in `guarded` changed since `base`.

    `base` None means the caller saw nothing (a page it creates): then the guarded pages must not
    exist yet. `build` runs under the wiki's lock and may raise to refuse. `checkpoint` runs before
    the build and, last, just before the branch moves: after that the write commits. The wait for the
    lock ends at the request's `deadline`.
    `idempotent`: the changes do not depend on HEAD, so a HEAD that holds them already is no conflict.
    """
    built: list[tuple[FileChange, ...]] = []

    def checked_build(head: str | None) -> Sequence[FileChange]:
        checkpoint("committing")
        for path in guarded:
            then = repo.blob_id(base, path) if base else None
            now = repo.blob_id(head, path) if head else None
            if then != now:
                changes = tuple(build(head)) if idempotent else ()
                if head and _at_head(repo, head, changes):
                    raise _AlreadyAtHead(repo.log(head, path, limit=1)[0].revision, changes)
                raise PageConflict(path, base, head)  # its diff is made once the lock is released
        built.append(tuple(build(head)))
        return built[-1]

    user = caller.user
    assert user is not None  # MCP serves no anonymous caller
    try:
        revision = core.commit_with(caller.name, checked_build, message=f"[mcp] {message}",
                                    author=(user.name, user.email or f"{user.name}@users.wikibot"),
                                    actor=user.name, source="mcp",
                                    lock_timeout=max(deadline.remaining(), 0) if deadline else None,
                                    checkpoint=lambda: checkpoint("moving the branch to the new commit"))
    except _AlreadyAtHead as done:
        return Written(done.revision, done.changes, already=True)
    except LockTimeout:
        assert deadline is not None  # only a deadline gives the wait a timeout
        deadline.stop("getting the wiki's lock (another write held it)")
    except PageConflict as conflict:
        if conflict.base and conflict.current:
            conflict.diff = diff_until(deadline, repo, conflict.base, conflict.current, [conflict.path])
        raise
    return Written(revision, built[-1])


def _at_head(repo: Repository, head: str, changes: tuple[FileChange, ...]) -> bool:
    """Does HEAD hold every change already (each file with that content, each deleted file gone)?"""
    current = repo.read_many(head, [change.path for change in changes])
    return bool(changes) and all(current.get(change.path) == change.content for change in changes)
