"""`publish(event)`: the one way an event enters the queue (and wakes the worker)."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .events import Event
from .queue import SqliteQueue
from .wake import wake

if TYPE_CHECKING:  # the post-commit hook imports this module: keep dulwich out of its path
    from wikibot.gitd.receive import RefChange


def queue_path(data_dir: Path) -> Path:
    return data_dir / "queue" / "events.db"


class Publisher:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    @cached_property
    def queue(self) -> SqliteQueue:
        """Opened on first use, so commands that publish nothing never touch the queue."""
        return SqliteQueue(queue_path(self.data_dir))

    def publish(self, event: Event) -> int:
        event_id = self.queue.publish(event)
        wake(self.data_dir)
        return event_id

    def announce(self, change: RefChange) -> None:
        """The core's announcer: a moved ref becomes an event."""
        self.publish(Event(wiki=change.wiki, ref=change.ref, old_sha=change.old, new_sha=change.new,
                           source=change.source, actor=change.actor))
