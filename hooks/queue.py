"""The durable event queue: an SQLite file in the data dir (WAL, safe across processes).

Delivery is at-least-once: a consumer's cursor moves only after its handler succeeded, so a crash
mid-event redelivers it. `EventQueue` is the interface a Redis-streams queue would implement.

A wiki's deletion is announced as `main` moving to ZERO (a push may never delete main, so nothing
else says that). Publishing it forgets, in the same transaction, the wiki's earlier events (for every
consumer, with their dead letters and last-seen refs): what they asked for is moot once the wiki is
gone, and the deletion itself is queued and delivered as any event. Ids are never reused (AUTOINCREMENT)
and cursors are ids, so a forgotten event moves no cursor; a consumer handling one at that moment just
finishes it (consumers check the wiki still exists), and a dead letter for it is not kept.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wikibot.gitd.change import MAIN, ZERO, Change
from wikibot.gitd.names import WikiName

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    wiki TEXT NOT NULL, ref TEXT NOT NULL, old_sha TEXT NOT NULL, new_sha TEXT NOT NULL,
    source TEXT NOT NULL, actor TEXT, time REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_wiki ON events(wiki, id);
CREATE TABLE IF NOT EXISTS cursors (consumer TEXT PRIMARY KEY, last_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dead (
    consumer TEXT NOT NULL, event_id INTEGER NOT NULL, attempts INTEGER NOT NULL,
    error TEXT NOT NULL, time REAL NOT NULL, PRIMARY KEY (consumer, event_id));
CREATE TABLE IF NOT EXISTS last_seen (
    wiki TEXT NOT NULL, ref TEXT NOT NULL, sha TEXT NOT NULL, PRIMARY KEY (wiki, ref));
"""


@dataclass(frozen=True)
class DeadLetter:
    consumer: str
    event: Change
    attempts: int
    error: str
    time: float


class EventQueue(Protocol):
    def publish(self, change: Change) -> int: ...
    def read(self, after: int, limit: int = 100) -> list[Change]: ...
    def last_id(self) -> int: ...
    def cursor(self, consumer: str) -> int: ...
    def set_cursor(self, consumer: str, event_id: int) -> None: ...
    def queued(self, event_id: int) -> bool: ...  # False once forgotten (its wiki was deleted)
    def bury(self, consumer: str, event: Change, attempts: int, error: str) -> None: ...
    def dead_letters(self, consumer: str | None = None, wiki: WikiName | None = None) -> list[DeadLetter]: ...
    def forget_dead(self, consumer: str, event_id: int) -> None: ...
    def last_seen(self, wiki: WikiName, ref: str) -> str | None: ...


def _event(row: sqlite3.Row) -> Change:
    return Change(WikiName.parse(row["wiki"]), row["ref"], row["old_sha"], row["new_sha"], row["source"],
                  row["actor"], row["time"], row["id"])


class SqliteQueue:
    """The embedded default `EventQueue`. One connection per thread (sqlite3 objects are not shared)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # an acknowledged event survives a power cut
            self._local.db = db
        return db

    def publish(self, change: Change) -> int:
        """Queue `change`; a deletion of `main` (the wiki's) first forgets the wiki's earlier events."""
        db = self._db()
        wiki = str(change.wiki)
        with db:
            db.execute("BEGIN IMMEDIATE")
            if change.ref == MAIN and change.new_sha == ZERO:
                db.execute("DELETE FROM dead WHERE event_id IN (SELECT id FROM events WHERE wiki = ?)", (wiki,))
                db.execute("DELETE FROM events WHERE wiki = ?", (wiki,))
                db.execute("DELETE FROM last_seen WHERE wiki = ?", (wiki,))
            cur = db.execute(
                "INSERT INTO events (wiki, ref, old_sha, new_sha, source, actor, time) VALUES (?,?,?,?,?,?,?)",
                (wiki, change.ref, change.old_sha, change.new_sha, change.source, change.actor, change.time))
            db.execute("INSERT OR REPLACE INTO last_seen (wiki, ref, sha) VALUES (?,?,?)",
                       (wiki, change.ref, change.new_sha))
            return int(cur.lastrowid)

    def read(self, after: int, limit: int = 100) -> list[Change]:
        rows = self._db().execute("SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
        return [_event(r) for r in rows]

    def events_of(self, wiki: WikiName) -> list[Change]:
        rows = self._db().execute("SELECT * FROM events WHERE wiki = ? ORDER BY id", (str(wiki),))
        return [_event(r) for r in rows]

    def last_id(self) -> int:
        return int(self._db().execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])

    def cursor(self, consumer: str) -> int:
        row = self._db().execute("SELECT last_id FROM cursors WHERE consumer = ?", (consumer,)).fetchone()
        return int(row[0]) if row else 0

    def consumers(self) -> list[str]:
        return [r[0] for r in self._db().execute("SELECT consumer FROM cursors ORDER BY consumer")]

    def set_cursor(self, consumer: str, event_id: int) -> None:
        self._db().execute("INSERT INTO cursors (consumer, last_id) VALUES (?, ?) "
                           "ON CONFLICT(consumer) DO UPDATE SET last_id = MAX(last_id, excluded.last_id)",
                           (consumer, event_id))

    def queued(self, event_id: int) -> bool:
        return self._db().execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone() is not None

    def bury(self, consumer: str, event: Change, attempts: int, error: str) -> None:
        """Keep a dead letter for `event`, unless it was forgotten meanwhile (checked in the same statement)."""
        self._db().execute("INSERT OR REPLACE INTO dead (consumer, event_id, attempts, error, time) "
                           "SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM events WHERE id = ?)",
                           (consumer, event.id, attempts, error[:2000], time.time(), event.id))

    def dead_letters(self, consumer: str | None = None, wiki: WikiName | None = None) -> list[DeadLetter]:
        query = ("SELECT d.consumer, d.attempts, d.error, d.time AS dtime, e.* FROM dead d "
                 "JOIN events e ON e.id = d.event_id WHERE (? IS NULL OR d.consumer = ?) "
                 "AND (? IS NULL OR e.wiki = ?) ORDER BY e.id")
        shown = None if wiki is None else str(wiki)
        rows = self._db().execute(query, (consumer, consumer, shown, shown))
        return [DeadLetter(r["consumer"], _event(r), r["attempts"], r["error"], r["dtime"]) for r in rows]

    def forget_dead(self, consumer: str, event_id: int) -> None:
        self._db().execute("DELETE FROM dead WHERE consumer = ? AND event_id = ?", (consumer, event_id))

    def last_seen(self, wiki: WikiName, ref: str) -> str | None:
        row = self._db().execute("SELECT sha FROM last_seen WHERE wiki = ? AND ref = ?", (str(wiki), ref)).fetchone()
        return row[0] if row else None
