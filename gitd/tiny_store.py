"""The embedded default `Store`: TinyDB, one JSON file in the data dir.

TinyDB alone is not safe across processes (gunicorn workers, the worker and CLI calls write at
once), so `SafeJSONStorage` writes atomically (temp file, fsync, rename) and re-reads for lookups
only when the file's (inode, mtime, size) changed. Every write is one transaction under an
exclusive file lock: the file read afresh (never the lookup cache, whose stamp a filesystem with
coarse timestamps and reused inodes can fool), every check that the write depends on (that the
user or wiki it names exists, limits) made on that copy, and the result written once. Tables are
built per operation without TinyDB's query cache or id counter, which would go stale across
processes. A PostgreSQL store would implement the same `Store` protocol.
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tinydb import Query
from tinydb.storages import Storage
from tinydb.table import Table

from .locks import file_lock
from .names import WikiName
from .records import Grant, Token, User, Wiki, from_doc, to_doc
from .store import StoreCorrupt, StoreError

T = TypeVar("T")


class SafeJSONStorage(Storage):
    """A TinyDB storage whose writes are atomic and whose reads see other processes' writes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # (stamp, data) in one attribute, so threads never pair one file's stamp with another's data
        self._cache: tuple[tuple[int, int, int], dict[str, dict[str, Any]]] | None = None

    def read(self) -> dict[str, dict[str, Any]] | None:
        """The file's data for lookups: the cached copy while its stamp is unchanged."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        cache = self._cache
        if cache is None or cache[0] != stamp:
            with open(self.path, "rb") as f:
                raw = f.read()
            cache = (stamp, self._parse(raw))
            self._cache = cache
        # TinyDB mutates what it reads before writing it back: hand out a copy.
        return copy.deepcopy(cache[1])

    def read_fresh(self) -> dict[str, dict[str, Any]]:
        """The file's data as it is now, bypassing the cache: what a write must start from."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        return self._parse(raw)

    def _parse(self, raw: bytes) -> dict[str, dict[str, Any]]:
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise StoreCorrupt(f"the platform state in {self.path} is unreadable ({exc}); restore it from a "
                               "backup") from None

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".db-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, separators=(",", ":"), sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise
        self._cache = None  # the next read takes the new file

    def close(self) -> None:
        pass


class _Snapshot(Storage):
    """One write transaction's copy of the data, read under the lock and written back once."""

    def __init__(self, data: dict[str, dict[str, Any]]) -> None:
        self.data = data
        self.changed = False

    def read(self) -> dict[str, dict[str, Any]]:
        return self.data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self.data = data
        self.changed = True


class TinyStore:
    """The embedded default `Store`: one JSON file in the data dir."""

    def __init__(self, path: Path) -> None:
        self._storage = SafeJSONStorage(path)
        self._lock_path = path.with_name(path.name + ".lock")

    @contextmanager
    def _write(self) -> Iterator[Callable[[str], Table]]:
        """A transaction: yields a table factory over a fresh copy; commits it if nothing raised."""
        with file_lock(self._lock_path):
            snapshot = _Snapshot(self._storage.read_fresh())
            yield lambda name: Table(snapshot, name, cache_size=0)
            if snapshot.changed:
                self._storage.write(snapshot.data)

    @staticmethod
    def _require(table: Callable[[str], Table], name: str, cond: Any, what: str) -> None:
        """Refuse the transaction unless `what` exists in it (so a concurrent deletion wins)."""
        if not table(name).contains(cond):
            raise StoreError(f"{what} does not exist")

    def _require_user(self, table: Callable[[str], Table], name: str) -> None:
        self._require(table, "users", Query().name == name, f"user {name!r}")

    def _table(self, name: str) -> Table:
        return Table(self._storage, name, cache_size=0)

    def _one(self, table: str, cls: type[T], cond: Any) -> T | None:
        doc = self._table(table).get(cond)
        return from_doc(cls, doc) if doc is not None else None  # type: ignore[arg-type]

    def _all(self, table: str, cls: type[T], cond: Any | None = None) -> list[T]:
        t = self._table(table)
        docs = t.all() if cond is None else t.search(cond)
        return [from_doc(cls, d) for d in docs]

    @staticmethod
    def _insert_unique(table: Table, record: Any, cond: Any, what: str) -> None:
        if table.contains(cond):
            raise StoreError(f"{what} already exists")
        table.insert(to_doc(record))

    # users
    def add_user(self, user: User) -> None:
        with self._write() as table:
            self._insert_unique(table("users"), user, Query().name == user.name, f"user {user.name!r}")

    def get_user(self, name: str) -> User | None:
        return self._one("users", User, Query().name == name)

    def list_users(self) -> list[User]:
        return sorted(self._all("users", User), key=lambda u: u.name)

    def delete_user(self, name: str) -> None:
        """Remove the user with their tokens and grants in one write; their wikis must be deleted first."""
        with self._write() as table:
            if table("wikis").contains(Query().owner == name):
                raise StoreError(f"user {name!r} still owns wikis")
            if not table("users").remove(Query().name == name):
                raise StoreError(f"user {name!r} does not exist")
            table("tokens").remove(Query().user == name)
            table("grants").remove(Query().user == name)

    # wikis
    def add_wiki(self, wiki: Wiki, max_owned: int | None = None) -> None:
        """Insert `wiki` of an existing owner; with `max_owned`, refuse when they already have that many."""
        with self._write() as table:
            self._require_user(table, wiki.owner)
            t = table("wikis")
            q = Query()
            if t.contains((q.owner == wiki.owner) & (q.slug == wiki.slug)):
                raise StoreError(f"wiki {wiki.name} already exists")
            if max_owned is not None and t.count(q.owner == wiki.owner) >= max_owned:
                raise StoreError(f"user {wiki.owner!r} already has {max_owned} wiki(s), the limit of their tier")
            t.insert(to_doc(wiki))

    def get_wiki(self, name: WikiName) -> Wiki | None:
        q = Query()
        return self._one("wikis", Wiki, (q.owner == name.owner) & (q.slug == name.slug))

    def list_wikis(self, owner: str | None = None) -> list[Wiki]:
        wikis = self._all("wikis", Wiki, None if owner is None else Query().owner == owner)
        return sorted(wikis, key=lambda w: str(w.name))

    def _set_wiki_fields(self, name: WikiName, fields: dict[str, Any]) -> None:
        """Change some fields of a wiki under the lock, leaving the others as they are now."""
        with self._write() as table:
            q = Query()
            if not table("wikis").update(fields, (q.owner == name.owner) & (q.slug == name.slug)):
                raise StoreError(f"wiki {name} does not exist")

    def set_public(self, name: WikiName, public: bool) -> None:
        self._set_wiki_fields(name, {"public": public})

    def set_usage(self, name: WikiName, pages: int, bytes: int) -> None:
        self._set_wiki_fields(name, {"pages": pages, "bytes": bytes})

    def delete_wiki(self, name: WikiName) -> None:
        """Remove the wiki with its grants in one write."""
        with self._write() as table:
            q = Query()
            if not table("wikis").remove((q.owner == name.owner) & (q.slug == name.slug)):
                raise StoreError(f"wiki {name} does not exist")
            table("grants").remove(Query().wiki == str(name))

    # grants
    def set_grant(self, grant: Grant, max_grants: int | None = None) -> None:
        """Give an existing user a role on an existing wiki, replacing any earlier role; `max_grants`
        caps new ones."""
        with self._write() as table:
            q = Query()
            self._require_user(table, grant.user)
            wiki = grant.wiki
            self._require(table, "wikis", (q.owner == wiki.owner) & (q.slug == wiki.slug), f"wiki {wiki}")
            t = table("grants")
            cond = (q.wiki == str(wiki)) & (q.user == grant.user)
            if t.contains(cond):
                t.update(to_doc(grant), cond)
                return
            if max_grants is not None and t.count(q.wiki == str(wiki)) >= max_grants:
                raise StoreError(f"wiki {grant.wiki} already has {max_grants} collaborator(s), "
                                 "the limit of its owner's tier")
            t.insert(to_doc(grant))

    def remove_grant(self, wiki: WikiName, user: str) -> bool:
        with self._write() as table:
            q = Query()
            return bool(table("grants").remove((q.wiki == str(wiki)) & (q.user == user)))

    def list_grants(self, wiki: WikiName | None = None, user: str | None = None) -> list[Grant]:
        q = Query()
        conds = [c for c in (wiki and q.wiki == str(wiki), user and q.user == user) if c]
        cond = None
        for c in conds:
            cond = c if cond is None else cond & c
        return sorted(self._all("grants", Grant, cond), key=lambda g: (g.wiki, g.user))

    # tokens
    def add_token(self, token: Token) -> None:
        """Insert a token of an existing user."""
        with self._write() as table:
            self._require_user(table, token.user)
            self._insert_unique(table("tokens"), token, Query().id == token.id, f"token {token.id}")

    def find_token(self, token_hash: str) -> Token | None:
        return self._one("tokens", Token, Query().hash == token_hash)

    def list_tokens(self, user: str | None = None) -> list[Token]:
        tokens = self._all("tokens", Token, None if user is None else Query().user == user)
        return sorted(tokens, key=lambda t: t.created)

    def delete_token(self, token_id: str) -> bool:
        with self._write() as table:
            return bool(table("tokens").remove(Query().id == token_id))

    def touch_token(self, token_id: str, when: float) -> None:
        with self._write() as table:
            table("tokens").update({"last_used": when}, Query().id == token_id)
