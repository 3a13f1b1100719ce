"""The one change type: a ref of a wiki moved, by any writer. Every write path produces a `Change`
(push, web edit, MCP, sync, bootstrap) and every consumer reads one.

Import-light on purpose (no dulwich, no git): the post-commit hook builds one on every web edit.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal, get_args

from .names import WikiName
from .refs import MAIN, ZERO

Source = Literal["push", "web", "mcp", "sync", "bootstrap"]
SOURCES: tuple[str, ...] = get_args(Source)

__all__ = ["MAIN", "SOURCES", "ZERO", "Change", "Source"]


@dataclass(frozen=True)
class Change:
    """`ref` of `wiki` moved from `old_sha` to `new_sha` (ZERO: created, resp. deleted), written by
    `source` on behalf of `actor`. One change covers the whole `old..new` range, however many commits
    it holds. `id` is the queue's, once queued."""

    wiki: WikiName
    ref: str
    old_sha: str
    new_sha: str
    source: Source
    actor: str | None = None
    time: float = field(default_factory=time.time)
    id: int | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown change source {self.source!r}: one of {', '.join(SOURCES)}")
        if not isinstance(self.wiki, WikiName):
            raise TypeError(f"Change.wiki must be a WikiName, not {type(self.wiki).__name__}")

    def to_dict(self) -> dict[str, object]:
        """The event as JSON: the shape documented for consumers (README, Change events)."""
        return {"wiki": str(self.wiki), "ref": self.ref, "old_sha": self.old_sha, "new_sha": self.new_sha,
                "source": self.source, "actor": self.actor, "time": self.time, "id": self.id}
