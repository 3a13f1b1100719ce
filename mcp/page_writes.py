"""Conflict-safe page writes: a page changed since the writer's base revision is a conflict.

The whole-wiki check of `Core.commit` alone would make two agents editing different pages collide.
So a write names the pages it depends on; under the wiki's lock they must be unchanged between
the writer's base revision and HEAD, and the changes are computed against that HEAD. No other
write can land in between, so nothing is lost and nothing needs retrying.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wikibot.gitd.commits import FileChange
from wikibot.gitd.core import Core

from .caller import Caller
from .wiki_repo import WikiRepo


class PageConflict(Exception):
    """A guarded page differs between the writer's base revision and HEAD."""

    def __init__(self, path: str, base: str | None, current: str | None, diff: str) -> None:
        super().__init__(path)
        self.path = path
        self.base = base
        self.current = current
        self.diff = diff


@dataclass(frozen=True)
class Written:
    revision: str
    changes: tuple[FileChange, ...]


def commit_pages(core: Core, caller: Caller, repo: WikiRepo, *, base: str | None, guarded: Sequence[str],
                 build: Callable[[str | None], Sequence[FileChange]], message: str) -> Written:
    """Commit what `build(head)` returns, if no page in `guarded` changed since `base`.

    `base` None means the caller saw nothing (a page it creates): then the guarded pages must not
    exist yet. `build` runs under the wiki's lock and may raise to refuse.
    """
    built: list[tuple[FileChange, ...]] = []

    def checked_build(head: str | None) -> Sequence[FileChange]:
        for path in guarded:
            then = repo.blob_id(base, path) if base else None
            now = repo.blob_id(head, path) if head else None
            if then != now:
                raise PageConflict(path, base, head, repo.diff(base, head, [path]) if base and head else "")
        built.append(tuple(build(head)))
        return built[-1]

    user = caller.user
    revision = core.commit_with(caller.owner, caller.slug, checked_build, message=f"[mcp] {message}",
                                author=(user.name, user.email or f"{user.name}@users.wikibot"),
                                actor=user.name, source="mcp")
    return Written(revision, built[-1])
