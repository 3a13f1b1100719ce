"""Conflict-safe page writes: a page changed since the writer's base revision is a conflict.

The whole-wiki check of `Core.commit` alone would make two agents editing different pages collide.
So a write names the pages it depends on: they must be unchanged between the writer's base
revision and the current HEAD; the changes are then computed against that HEAD and committed
with HEAD as the core's base. If another write lands in between, the core refuses (nothing
changed) and the check runs again against the new HEAD.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wikibot.gitd.commits import CommitConflict, FileChange
from wikibot.gitd.core import Core

from .caller import Caller
from .wiki_repo import WikiRepo

ATTEMPTS = 8


class PageConflict(Exception):
    def __init__(self, path: str, current: str | None, diff: str) -> None:
        super().__init__(path)
        self.path = path
        self.current = current
        self.diff = diff


class WikiBusy(Exception):
    pass


@dataclass(frozen=True)
class Written:
    revision: str
    changes: tuple[FileChange, ...]


def commit_pages(core: Core, caller: Caller, repo: WikiRepo, *, base: str | None, guarded: Sequence[str],
                 build: Callable[[str | None], Sequence[FileChange]], message: str) -> Written:
    """Commit what `build(head)` returns, if no page in `guarded` changed since `base`.

    `base` None means the caller saw nothing (a page it creates): then the guarded pages must not
    exist yet. `build` may raise to refuse; it is called again if HEAD moves during the commit.
    """
    user = caller.user
    author = (user.name, user.email or f"{user.name}@users.wikibot")
    for _ in range(ATTEMPTS):
        head = repo.head()
        for path in guarded:
            then = repo.blob_id(base, path) if base else None
            now = repo.blob_id(head, path) if head else None
            if then != now:
                raise PageConflict(path, head, repo.diff(base, head, [path]) if base and head else "")
        changes = tuple(build(head))
        try:
            revision = core.commit(caller.owner, caller.slug, changes, message=f"[mcp] {message}",
                                   author=author, actor=user.name, source="mcp", base=head)
        except CommitConflict:
            continue
        return Written(revision, changes)
    raise WikiBusy("the wiki is changing too fast to commit; retry in a moment")
