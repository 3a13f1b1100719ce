"""Small SQLite files every process on the data dir shares: what must hold across gunicorn workers
and restarts but is no part of the platform's records (signed-out sessions, attempt counters,
OAuth clients and codes)."""
from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path


class SharedFile:
    """A small SQLite file every process on the data dir shares, one connection per thread."""

    SCHEMA: tuple[str, ...] = ()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            for statement in self.SCHEMA:
                conn.execute(statement)
            self._local.conn = conn
        return conn


class AttemptLimiter(SharedFile):
    """Attempts per account and per client address in a sliding window, shared by every process on
    the data dir: failed sign-ins, so a password cannot be guessed at speed, and sign-ups, so open
    registration cannot be flooded. A stranger can keep an account's password sign-in waiting this
    way (its limit counts every address, or a guesser with many addresses would go unchecked): the
    price of the limit, and no more than a wait; sign-in with an identity provider is not limited."""

    SCHEMA = ("CREATE TABLE IF NOT EXISTS failures (key TEXT NOT NULL, at REAL NOT NULL)",
              "CREATE INDEX IF NOT EXISTS failures_by_key ON failures (key, at)",
              "CREATE INDEX IF NOT EXISTS failures_by_time ON failures (at)")

    def __init__(self, path: Path, *, per_account: int = 10, per_address: int = 50, window: float = 900.0) -> None:
        super().__init__(path)
        self.per_account = per_account
        self.per_address = per_address
        self.window = window

    def _keys(self, account: str | None, address: str) -> list[tuple[str, int]]:
        """The counters an attempt touches; `account` None: the address's alone."""
        by_address = [(_key("addr", address), self.per_address)]
        return by_address if account is None else [(_key("user", account.lower()), self.per_account), *by_address]

    def retry_after(self, account: str | None, address: str, now: float | None = None) -> float:
        """Seconds until another attempt is allowed (0: now)."""
        now = time.time() if now is None else now
        db = self._db()
        db.execute("DELETE FROM failures WHERE at < ?", (now - self.window,))
        wait = 0.0
        for key, limit in self._keys(account, address):
            rows = db.execute("SELECT at FROM failures WHERE key = ? ORDER BY at DESC LIMIT 1 OFFSET ?",
                              (key, limit - 1)).fetchone()
            if rows is not None:  # `limit` failures within the window: wait until the oldest of them expires
                wait = max(wait, rows[0] + self.window - now)
        return wait

    def record(self, account: str | None, address: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._db().executemany("INSERT INTO failures (key, at) VALUES (?, ?)",
                               [(key, now) for key, _ in self._keys(account, address)])


def _key(kind: str, value: str) -> str:
    """A fixed-size key: whatever a client types as a user name, a row stays small."""
    return f"{kind}:{hashlib.sha256(value.encode('utf-8', 'replace')).hexdigest()[:32]}"
