"""The embedded default `Store`: one JSON file in the data dir, in TinyDB's format.

Reads cost the same at 10 or 10,000 tenants. The file is parsed once per change into a `_Snapshot`
that indexes it (user by name, wiki by name and by owner, token by hash, id and user, grants by wiki
and by user) and holds immutable records, handed out as they are: no copy per lookup. Whether the
cached snapshot is current is told, on every lookup, by a small pointer file (`db.json.gen`: the id
of the last write) together with the file's inode, mtime and size (one tiny read and one stat,
whatever the size of the state). Each write changes both; a file put back from a backup changes the
stamp, and a pointer rewritten over a file that coarse timestamps and a reused inode make look the
same changes the id.

Every write is one transaction under an exclusive file lock (held for milliseconds; writers wait for
it, except the best-effort last-used touch of a token, which gives up after a second), made on the
current data, with every check it depends on (that the user or wiki it names exists, quotas) made on
that data, and written once: the pointer first, then the data
(temp file, fsync, rename). A writer that dies between the two leaves a pointer its data does not
carry (`_meta`); readers see a label they have not cached and read the file afresh once, and
nothing is lost. Records are never changed in place (tables are copied on write, one level deep), so
a refused write leaves the cached snapshot as it was. The file stays TinyDB's format (tables of
documents by id): TinyDB itself can open it. A file of another shape is StoreCorrupt, never rewritten.
"""
from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .locks import LockTimeout, file_lock
from .names import WikiName
from .records import USER_FIELDS, WIKI_FIELDS, Grant, Identity, Token, UsedInvite, User, Wiki, from_doc, to_doc
from .store import StoreCorrupt, StoreError, checked_changes

TOUCH_LOCK_TIMEOUT = 1.0  # a token's last-used time is not worth a longer wait
META = "_meta"  # a table of one document: the id of the write that made the file
Doc = dict[str, Any]
Tables = dict[str, dict[str, Doc]]


TYPES: dict[str, type] = {"users": User, "wikis": Wiki, "grants": Grant, "tokens": Token, "identities": Identity,
                          "invites": UsedInvite}


@dataclass(frozen=True)
class _Index:
    """A lookup over one table: key -> (doc id, record) when `unique`, else key -> {doc id: record}."""

    table: str
    key: Callable[[Any], Hashable]
    unique: bool

    def build(self, records: dict[str, Any]) -> dict:
        found: dict = {}
        for doc_id, record in records.items():
            if self.unique:
                found[self.key(record)] = (doc_id, record)
            else:
                found.setdefault(self.key(record), {})[doc_id] = record
        return found

    def patched(self, index: dict, before: dict[str, Any], delta: dict[str, Any | None]) -> dict:
        """`index` (over the records `before`) after `delta` (doc id -> new record, None: removed),
        as a new dict sharing every entry the delta does not touch."""
        result = dict(index)
        copied: set[Hashable] = set()  # groups already copied for this change

        def group(key: Hashable) -> dict[str, Any]:
            if key not in copied:
                result[key] = dict(result.get(key, {}))
                copied.add(key)
            return result[key]

        for doc_id, record in delta.items():
            old = before.get(doc_id)
            if old is not None and record is not None and self.key(old) == self.key(record):
                if self.unique:  # the same key: replaced where it is, so the order stays a fresh parse's
                    result[self.key(record)] = (doc_id, record)
                else:
                    group(self.key(record))[doc_id] = record
                continue
            if old is not None:
                key = self.key(old)
                if self.unique:
                    if result.get(key, (None,))[0] == doc_id:
                        del result[key]
                else:
                    group(key).pop(doc_id, None)
                    if not result[key]:
                        del result[key]
                        copied.discard(key)
            if record is not None:
                if self.unique:
                    result[self.key(record)] = (doc_id, record)
                else:
                    group(self.key(record))[doc_id] = record
        return result


INDEXES = {
    "users": _Index("users", lambda user: user.name, unique=True),
    # by (owner, slug): building a WikiName per wiki would validate 10,000 names per write
    "wikis": _Index("wikis", lambda wiki: (wiki.owner, wiki.slug), unique=True),
    "wikis_of": _Index("wikis", lambda wiki: wiki.owner, unique=False),
    "grants_of_wiki": _Index("grants", lambda grant: grant.wiki, unique=False),
    "grants_of_user": _Index("grants", lambda grant: grant.user, unique=False),
    "tokens": _Index("tokens", lambda token: token.id, unique=True),
    "token_by_hash": _Index("tokens", lambda token: token.hash, unique=True),
    "tokens_of": _Index("tokens", lambda token: token.user, unique=False),
    "identities": _Index("identities", lambda identity: (identity.provider, identity.subject), unique=True),
    "identities_of": _Index("identities", lambda identity: identity.user, unique=False),
    "invites": _Index("invites", lambda invite: invite.id, unique=True),
}


class _Snapshot:
    """The parsed file with its indexes (`INDEXES`), each built on first use. Never changed once built.

    A snapshot made by a write inherits from the one before it what the write did not touch (records,
    indexes, the JSON of each document and of each table), and patches the rest with the write's
    delta, so a write costs what it changes plus a few dict copies, not a rebuild per tenant."""

    def __init__(self, tables: Tables, records: dict[str, dict[str, Any]] | None = None,
                 indexes: dict[str, dict] | None = None, encoded: dict[str, dict[str, str]] | None = None,
                 bodies: dict[str, bytes] | None = None, last_ids: dict[str, int] | None = None) -> None:
        self.tables = tables
        self._records = records or {}  # table -> doc id -> record, filled per table on first use
        self._indexes = indexes or {}  # index name -> its dict, filled on first use
        self._encoded = encoded or {}  # table -> doc id -> the document as JSON, filled when writing
        self._bodies = bodies or {}  # table -> its documents as JSON bytes (the file's text between its braces)
        self._last_ids = last_ids or {}  # table -> its highest document id

    @property
    def write_id(self) -> str | None:
        return next(iter(self.tables.get(META, {}).values()), {}).get("write")

    def table(self, name: str) -> dict[str, Doc]:
        return self.tables.get(name, {})

    def records(self, name: str) -> dict[str, Any]:
        found = self._records.get(name)
        if found is None:
            cls = TYPES[name]
            try:
                found = {doc_id: from_doc(cls, doc) for doc_id, doc in self.table(name).items()}
            except (TypeError, KeyError, ValueError, AttributeError) as exc:
                raise StoreCorrupt(f"a {name} record in the platform state is malformed ({exc}); restore the "
                                   "file from a backup") from None
            self._records[name] = found
        return found

    def index(self, name: str) -> dict:
        found = self._indexes.get(name)
        if found is None:
            spec = INDEXES[name]
            found = self._indexes[name] = spec.build(self.records(spec.table))
        return found

    def encoded(self, name: str) -> dict[str, str]:
        found = self._encoded.get(name)
        if found is None:
            found = self._encoded[name] = {doc_id: _json(doc) for doc_id, doc in self.table(name).items()}
        return found

    def body(self, name: str) -> bytes:
        found = self._bodies.get(name)
        if found is None:
            found = self._bodies[name] = _joined(self.encoded(name))
        return found

    def last_id(self, name: str) -> int:
        found = self._last_ids.get(name)
        if found is None:
            found = self._last_ids[name] = max(map(int, self.table(name)), default=0)
        return found

    def serialized(self) -> list[bytes]:
        """The file's bytes in pieces (written one after the other, never joined), each table from its
        cached JSON, documents in the order they came."""
        pieces = [b"{"]
        for n, name in enumerate(sorted(self.tables)):
            pieces += [b"," if n else b"", _json(name).encode(), b":{", self.body(name), b"}"]
        return [*pieces, b"}"]

    # the indexes, named
    @property
    def users(self) -> dict[str, tuple[str, User]]:
        return self.index("users")

    def wiki(self, name: WikiName) -> tuple[str, Wiki] | None:
        return self.index("wikis").get((name.owner, name.slug))

    def wikis_of(self, owner: str) -> dict[str, Wiki]:
        return self.index("wikis_of").get(owner, {})

    def grants_of_wiki(self, wiki: WikiName) -> dict[str, Grant]:
        return self.index("grants_of_wiki").get(wiki, {})

    def grants_of_user(self, user: str) -> dict[str, Grant]:
        return self.index("grants_of_user").get(user, {})

    def token(self, token_id: str) -> tuple[str, Token] | None:
        return self.index("tokens").get(token_id)

    def tokens_of(self, user: str) -> dict[str, Token]:
        return self.index("tokens_of").get(user, {})

    def identity(self, provider: str, subject: str) -> tuple[str, Identity] | None:
        return self.index("identities").get((provider, subject))

    def identities_of(self, user: str) -> dict[str, Identity]:
        return self.index("identities_of").get(user, {})


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _joined(docs: dict[str, str]) -> bytes:
    """Documents as a table's JSON body: `"id":{...},"id":{...}`."""
    return ",".join(f'"{doc_id}":{doc}' for doc_id, doc in docs.items()).encode()


class _Change:
    """One write transaction's working copy: tables copied on first change, documents replaced whole."""

    def __init__(self, base: _Snapshot) -> None:
        self.base = base
        self.tables: Tables = dict(base.tables)
        self._changed: dict[str, dict[str, Any | None]] = {}  # table -> doc id -> new record (None: removed)

    @property
    def changed(self) -> bool:
        return bool(self._changed)

    def _mutable(self, name: str) -> dict[str, Doc]:
        if name not in self._changed:
            self.tables[name] = dict(self.tables.get(name, {}))
            self._changed[name] = {}
        return self.tables[name]

    def insert(self, name: str, record: Any) -> None:
        self.load(name, [record])

    def load(self, name: str, records: list[Any]) -> None:
        """Append `records` to table `name` (ids after the last one)."""
        table = self._mutable(name)
        first = max([self.base.last_id(name), *map(int, self._changed[name])]) + 1
        for n, record in enumerate(records):
            table[str(first + n)] = to_doc(record)
            self._changed[name][str(first + n)] = record

    def replace(self, name: str, doc_id: str, record: Any) -> None:
        self._mutable(name)[doc_id] = to_doc(record)
        self._changed[name][doc_id] = record

    def remove(self, name: str, doc_ids: Iterable[str]) -> None:
        for doc_id in list(doc_ids):
            del self._mutable(name)[doc_id]
            self._changed[name][doc_id] = None

    def snapshot(self, write_id: str) -> _Snapshot:
        """The state after this change, reusing what the base had built for what did not change."""
        base = self.base
        tables = {**self.tables, META: {"1": {"write": write_id}}}
        records: dict[str, dict[str, Any]] = {}
        encoded: dict[str, dict[str, str]] = {META: {"1": _json({"write": write_id})}}
        bodies: dict[str, bytes] = {}
        last_ids: dict[str, int] = {}
        for name in tables:
            if name == META:
                continue
            delta = self._changed.get(name, {})
            if name in TYPES:
                records[name] = _patched(base.records(name), delta)
            json_delta = {doc_id: None if record is None else _json(to_doc(record)) for doc_id, record in delta.items()}
            encoded[name] = _patched(base.encoded(name), json_delta)
            before = base.table(name)
            if not delta:
                bodies[name] = base.body(name)
            elif all(value is not None and doc_id not in before for doc_id, value in json_delta.items()):
                added = _joined(json_delta)  # only appended, the common write: no re-join of the table
                bodies[name] = base.body(name) + b"," + added if before else added
            ids = [int(doc_id) for doc_id, record in delta.items() if record is not None]
            last_ids[name] = max([base.last_id(name), *ids])
        indexes = {}
        for index_name, spec in INDEXES.items():
            built = base._indexes.get(index_name)
            if built is not None:  # what the base had built is carried over, patched, never rebuilt
                delta = self._changed.get(spec.table)
                indexes[index_name] = spec.patched(built, base.records(spec.table), delta) if delta else built
        return _Snapshot(tables, records, indexes, encoded, bodies, last_ids)


def _patched(base: dict[str, Any], delta: dict[str, Any | None]) -> dict[str, Any]:
    if not delta:
        return base  # never changed in place: shared by both snapshots
    result = dict(base)
    for doc_id, value in delta.items():
        if value is None:
            result.pop(doc_id, None)
        else:
            result[doc_id] = value
    return result


class TinyStore:
    """The embedded default `Store`: one JSON file in the data dir."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pointer = path.with_name(path.name + ".gen")
        self._lock_path = path.with_name(path.name + ".lock")
        self._cached: tuple[str, _Snapshot] | None = None  # (label, snapshot): one attribute, for threads

    # reading
    def _label(self) -> tuple[str, int, int, int] | None:
        """What the current state is told by: the id of the last write (the pointer) and the file's
        inode, mtime and size. Either changes with every write, so neither a file put back from a backup
        (pointer untouched) nor a pointer ahead of its data (a writer died between the two, or is
        between them now) is mistaken for a cached state. None when there is no state yet."""
        try:
            pointer = self.pointer.read_text()
        except FileNotFoundError:
            pointer = ""  # a file written before pointers existed
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (pointer, st.st_ino, st.st_mtime_ns, st.st_size)

    def _snapshot(self) -> _Snapshot:
        """The current state: the cached snapshot while the label names it, else the file parsed."""
        label = self._label()
        cached = self._cached
        if cached is not None and label is not None and cached[0] == label:
            return cached[1]
        snapshot = self._parse()
        if label is not None and self._label() == label:  # unchanged while it was read
            self._cached = (label, snapshot)
        return snapshot

    def _parse(self) -> _Snapshot:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return _Snapshot({})
        try:
            tables = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise StoreCorrupt(f"the platform state in {self.path} is unreadable ({exc}); restore it from a "
                               "backup") from None
        shapely = isinstance(tables, dict) and all(
            isinstance(table, dict) and all(isinstance(doc, dict) and doc_id.isdigit() for doc_id, doc in table.items())
            for table in tables.values())
        if not shapely:
            raise StoreCorrupt(f"the platform state in {self.path} is not tables of records; restore it from a "
                               "backup")
        return _Snapshot(tables)

    # writing
    @contextmanager
    def _write(self, lock_timeout: float | None = None) -> Iterator[_Change]:
        """A transaction on the current data; committed if nothing raised and something changed."""
        with file_lock(self._lock_path, timeout=lock_timeout):
            change = _Change(self._snapshot())
            yield change
            if change.changed:
                self._commit(change)

    def _commit(self, change: _Change) -> None:
        write_id = secrets.token_hex(12)
        snapshot = change.snapshot(write_id)
        self._replace(self.pointer, [write_id.encode()])  # first: a reader seeing it knows its cache is old
        self._replace(self.path, snapshot.serialized())
        st = os.stat(self.path)  # no other writer can have changed it: the lock is still held
        self._cached = ((write_id, st.st_ino, st.st_mtime_ns, st.st_size), snapshot)

    def _replace(self, path: Path, data: list[bytes]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.writelines(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    @staticmethod
    def _require_user(change: _Change, name: str) -> None:
        if name not in change.base.users:
            raise StoreError(f"user {name!r} does not exist")

    @staticmethod
    def _wiki(change: _Change, name: WikiName) -> str:
        found = change.base.wiki(name)
        if found is None:
            raise StoreError(f"wiki {name} does not exist")
        return found[0]

    # users
    def add_user(self, user: User, invite: str | None = None) -> None:
        with self._write() as change:
            if user.name in change.base.users:
                raise StoreError(f"user {user.name!r} already exists")
            if invite is not None:
                if invite in change.base.index("invites"):
                    raise StoreError("this invite link has been used already")
                change.insert("invites", UsedInvite(id=invite, user=user.name, used=user.created))
            change.insert("users", user)

    def update_user(self, name: str, changes: dict[str, Any]) -> User:
        checked_changes(changes, USER_FIELDS, "user")
        with self._write() as change:
            found = change.base.users.get(name)
            if found is None:
                raise StoreError(f"user {name!r} does not exist")
            updated = from_doc(User, {**to_doc(found[1]), **changes})
            change.replace("users", found[0], updated)
            return updated

    def get_user(self, name: str) -> User | None:
        found = self._snapshot().users.get(name)
        return found[1] if found else None

    def list_users(self) -> list[User]:
        return sorted((user for _, user in self._snapshot().users.values()), key=lambda u: u.name)

    def delete_user(self, name: str) -> None:
        """Remove the user with their tokens and grants in one write; their wikis must be deleted first."""
        with self._write() as change:
            base = change.base
            if base.wikis_of(name):
                raise StoreError(f"user {name!r} still owns wikis")
            if name not in base.users:
                raise StoreError(f"user {name!r} does not exist")
            change.remove("users", [base.users[name][0]])
            change.remove("tokens", base.tokens_of(name))
            change.remove("grants", base.grants_of_user(name))
            change.remove("identities", base.identities_of(name))

    # wikis
    def add_wiki(self, wiki: Wiki, max_owned: int | None = None) -> None:
        """Insert `wiki` of an existing owner; with `max_owned`, refuse when they already have that many."""
        with self._write() as change:
            self._require_user(change, wiki.owner)
            if change.base.wiki(wiki.name) is not None:
                raise StoreError(f"wiki {wiki.name} already exists")
            if max_owned is not None and len(change.base.wikis_of(wiki.owner)) >= max_owned:
                raise StoreError(f"user {wiki.owner!r} already has {max_owned} wiki(s), the limit of their tier")
            change.insert("wikis", wiki)

    def get_wiki(self, name: WikiName) -> Wiki | None:
        found = self._snapshot().wiki(name)
        return found[1] if found else None

    def list_wikis(self, owner: str | None = None) -> list[Wiki]:
        snapshot = self._snapshot()
        wikis = snapshot.records("wikis").values() if owner is None else snapshot.wikis_of(owner).values()
        return sorted(wikis, key=lambda w: str(w.name))

    def _set_wiki_fields(self, name: WikiName, **fields: Any) -> Wiki:
        """Change some fields of a wiki under the lock, leaving the others as they are now."""
        with self._write() as change:
            doc_id = self._wiki(change, name)
            updated = from_doc(Wiki, {**change.base.table("wikis")[doc_id], **fields})
            change.replace("wikis", doc_id, updated)
            return updated

    def set_public(self, name: WikiName, public: bool) -> None:
        self._set_wiki_fields(name, public=public)

    def update_wiki(self, name: WikiName, changes: dict[str, Any]) -> Wiki:
        return self._set_wiki_fields(name, **checked_changes(changes, WIKI_FIELDS, "wiki"))

    def set_usage(self, name: WikiName, pages: int, bytes: int) -> None:
        self._set_wiki_fields(name, pages=pages, bytes=bytes)

    def delete_wiki(self, name: WikiName) -> None:
        """Remove the wiki with its grants in one write."""
        with self._write() as change:
            change.remove("wikis", [self._wiki(change, name)])
            change.remove("grants", change.base.grants_of_wiki(name))

    # grants
    def set_grant(self, grant: Grant, max_grants: int | None = None) -> None:
        """Give an existing user a role on an existing wiki, replacing any earlier role; `max_grants`
        caps new ones."""
        with self._write() as change:
            self._require_user(change, grant.user)
            self._wiki(change, grant.wiki)
            held = change.base.grants_of_wiki(grant.wiki)
            earlier = [doc_id for doc_id, g in held.items() if g.user == grant.user]
            if earlier:
                change.replace("grants", earlier[0], grant)
                return
            if max_grants is not None and len(held) >= max_grants:
                raise StoreError(f"wiki {grant.wiki} already has {max_grants} collaborator(s), "
                                 "the limit of its owner's tier")
            change.insert("grants", grant)

    def remove_grant(self, wiki: WikiName, user: str) -> bool:
        with self._write() as change:
            doc_ids = [doc_id for doc_id, g in change.base.grants_of_wiki(wiki).items() if g.user == user]
            change.remove("grants", doc_ids)
            return bool(doc_ids)

    def list_grants(self, wiki: WikiName | None = None, user: str | None = None) -> list[Grant]:
        snapshot = self._snapshot()
        if wiki is not None:
            found = [g for g in snapshot.grants_of_wiki(wiki).values() if user is None or g.user == user]
        elif user is not None:
            found = list(snapshot.grants_of_user(user).values())
        else:
            found = list(snapshot.records("grants").values())
        return sorted(found, key=lambda g: (str(g.wiki), g.user))

    # tokens
    def add_token(self, token: Token) -> None:
        """Insert a token of an existing user."""
        with self._write() as change:
            self._require_user(change, token.user)
            if change.base.token(token.id) is not None:
                raise StoreError(f"token {token.id} already exists")
            change.insert("tokens", token)

    def find_token(self, token_hash: str) -> Token | None:
        found = self._snapshot().index("token_by_hash").get(token_hash)
        return found[1] if found else None

    def list_tokens(self, user: str | None = None) -> list[Token]:
        snapshot = self._snapshot()
        tokens = snapshot.records("tokens").values() if user is None else snapshot.tokens_of(user).values()
        return sorted(tokens, key=lambda t: t.created)

    def delete_token(self, token_id: str) -> bool:
        with self._write() as change:
            found = change.base.token(token_id)
            change.remove("tokens", [found[0]] if found else [])
            return found is not None

    def migrate(self) -> int:
        """Nothing to create: the file is its own schema (TinyDB's tables of documents)."""
        return 1

    def load(self, users: list[User], wikis: list[Wiki], grants: list[Grant], tokens: list[Token],
             identities: Sequence[Identity] = (), invites: Sequence[UsedInvite] = ()) -> None:
        """Fill an empty store in one write (`wikibot store copy`): all of it lands, or nothing."""
        with self._write() as change:
            if change.base.users:
                raise StoreError(f"the TinyDB store at {self.path} already has records")
            for table, records in (("users", users), ("wikis", wikis), ("grants", grants), ("tokens", tokens),
                                   ("identities", identities), ("invites", invites)):
                if records:
                    change.load(table, list(records))

    # identities and invites
    def add_identity(self, identity: Identity) -> None:
        with self._write() as change:
            self._require_user(change, identity.user)
            if change.base.identity(identity.provider, identity.subject) is not None:
                raise StoreError("that account of the identity provider is linked to a wikibot account already")
            change.insert("identities", identity)

    def find_identity(self, provider: str, subject: str) -> Identity | None:
        found = self._snapshot().identity(provider, subject)
        return found[1] if found else None

    def list_identities(self, user: str) -> list[Identity]:
        return sorted(self._snapshot().identities_of(user).values(), key=lambda i: (i.provider, i.subject))

    def remove_identity(self, provider: str, subject: str) -> bool:
        with self._write() as change:
            found = change.base.identity(provider, subject)
            change.remove("identities", [found[0]] if found else [])
            return found is not None

    def find_used_invite(self, invite_id: str) -> UsedInvite | None:
        found = self._snapshot().index("invites").get(invite_id)
        return found[1] if found else None

    def list_used_invites(self) -> list[UsedInvite]:
        return sorted(self._snapshot().records("invites").values(), key=lambda i: i.used)

    def touch_token(self, token_id: str, when: float) -> None:
        """Best effort: the last-used time is informational, so a busy lock skips it rather than keep
        an authenticated request waiting."""
        try:
            with self._write(lock_timeout=TOUCH_LOCK_TIMEOUT) as change:
                found = change.base.token(token_id)
                if found is not None:
                    doc_id, token = found
                    change.replace("tokens", doc_id, from_doc(Token, {**to_doc(token), "last_used": when}))
        except LockTimeout:
            pass
