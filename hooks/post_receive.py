"""git's post-receive role: each ref that moved, by any writer, becomes a queued event.

`Publisher.publish(change)` is the one way a change enters the durable queue (and wakes the
worker); the core calls it as its announcer after every push, web edit, MCP write and sync.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

from wikibot.gitd.change import Change

from .queue import SqliteQueue
from .wake import wake


def queue_path(data_dir: Path) -> Path:
    return data_dir / "queue" / "events.db"


class Publisher:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    @cached_property
    def queue(self) -> SqliteQueue:
        """Opened on first use, so commands that publish nothing never touch the queue."""
        return SqliteQueue(queue_path(self.data_dir))

    def publish(self, change: Change) -> int:
        """Queue `change` durably and wake the worker; returns its event id."""
        event_id = self.queue.publish(change)
        wake(self.data_dir)
        return event_id
