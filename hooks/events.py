"""The event every change to a wiki produces, whatever wrote it."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Literal

from wikibot.gitd.refs import ZERO

ZERO_SHA = ZERO  # "no commit" in an event: the ref was created (old) or deleted (new)
Source = Literal["push", "web", "mcp", "sync", "bootstrap"]
SOURCES: tuple[str, ...] = ("push", "web", "mcp", "sync", "bootstrap")


@dataclass(frozen=True)
class Event:
    """`ref` moved from `old_sha` to `new_sha` in `wiki` ("owner/slug"); ZERO_SHA marks creation/deletion.

    One event covers the whole `old..new` range, however many commits it holds.
    """

    wiki: str
    ref: str
    old_sha: str
    new_sha: str
    source: str
    actor: str | None = None
    time: float = field(default_factory=time.time)
    id: int | None = None  # assigned by the queue

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown event source {self.source!r}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
