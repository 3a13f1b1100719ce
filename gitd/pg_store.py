"""The `Store` on PostgreSQL, for platforms one JSON file no longer suits: psycopg 3 and a small pool.

Same answers and refusals as TinyStore (the contract suite runs against both). Every write is one
transaction whose checks are made inside it, behind row locks taken in one order (the user's row,
then the wiki's), so two writes that depend on the same row queue on it: a quota is counted only
once every earlier insert of that owner or wiki has committed. Foreign keys keep what the TinyDB
store does by hand: a deleted wiki takes its grants along, a deleted user their tokens and grants,
and a user who still owns wikis cannot be deleted.

The pool is opened on first use, by the process that uses it (gunicorn preloads the app and forks:
a pool inherited from the parent is never touched), and the schema version is checked then, once.
`migrate()` (run by `wikibot init`) creates or upgrades the schema.

Pooled connections carry a statement and a lock timeout and TCP keepalives, so a stuck transaction
or a vanished server frees the request thread as a 503 instead of holding it; each connection is
checked as it leaves the pool, so a restarted server costs no request an error.

What failed reaches HTTP clients as a fixed sentence (`str(exc)`): no host, port, database or libpq
text. The detail, named by the redacted URL (never the password), is logged and kept as the
exception's `detail`, which the CLI prints for the admin.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from wikibot.config import ConfigError
from wikibot.errors import InternalError, Unavailable, WikibotError
from wikibot.redaction import redact

from .names import WikiName
from .records import USER_FIELDS, WIKI_FIELDS, Grant, Identity, Token, UsedInvite, User, Wiki
from .store import StoreError, checked_changes

T = TypeVar("T")
E = TypeVar("E", bound="_Detailed")
log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # the CLI prints the detail itself; a server's root handler logs it

CONNECT_TIMEOUT = 10  # seconds to reach the server
POOL_TIMEOUT = 30.0  # seconds a request waits for a free connection
STATEMENT_TIMEOUT_MS = 30_000  # a statement running longer is cancelled (a 503)
LOCK_TIMEOUT_MS = 10_000  # a statement waiting longer for a row or table lock is cancelled (a 503)
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 30, 10, 3  # seconds, seconds, probes: a dead peer in ~1 min
TCP_USER_TIMEOUT_MS = 30_000  # data unacknowledged this long: the connection is dead (libpq 12+)
UNREACHABLE = "the platform state (PostgreSQL) is unreachable; try again shortly"
NOT_READY = "the platform state (PostgreSQL) does not match this version of wikibot; the administrator must fix it"
FAILED = "the platform state (PostgreSQL) failed; the server log says why"
_MIGRATE_LOCK = 0x77696B69  # pg_advisory_xact_lock key: two `wikibot init` at once migrate one after the other

# Each entry upgrades the schema by one version; never edit one that has shipped, append another.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE users (
        name text PRIMARY KEY,
        email text NOT NULL,
        password_hash text NOT NULL,
        tier text NOT NULL,
        admin boolean NOT NULL,
        created double precision NOT NULL
    );
    CREATE TABLE wikis (
        owner text NOT NULL REFERENCES users (name),
        slug text NOT NULL,
        title text NOT NULL,
        purpose text NOT NULL,
        public boolean NOT NULL,
        created double precision NOT NULL,
        pages bigint NOT NULL,
        bytes bigint NOT NULL,
        PRIMARY KEY (owner, slug)
    );
    CREATE TABLE grants (
        owner text NOT NULL,
        slug text NOT NULL,
        username text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        role text NOT NULL,
        PRIMARY KEY (owner, slug, username),
        FOREIGN KEY (owner, slug) REFERENCES wikis (owner, slug) ON DELETE CASCADE
    );
    CREATE INDEX grants_by_user ON grants (username);
    CREATE TABLE tokens (
        seq bigserial UNIQUE,  -- insertion order, which breaks ties in `created` as TinyDB's does
        id text PRIMARY KEY,
        username text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        hash text NOT NULL,
        scope text NOT NULL,
        wikis text[] NOT NULL,
        expires double precision,
        created double precision NOT NULL,
        last_used double precision,
        note text NOT NULL
    );
    CREATE INDEX tokens_by_hash ON tokens (hash);
    CREATE INDEX tokens_by_user ON tokens (username);
    """,
    """
    ALTER TABLE users ADD COLUMN full_name text NOT NULL DEFAULT '',
                      ADD COLUMN disabled boolean NOT NULL DEFAULT false;
    CREATE TABLE identities (
        provider text NOT NULL,
        subject text NOT NULL,
        username text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        created double precision NOT NULL,
        label text NOT NULL,
        PRIMARY KEY (provider, subject)
    );
    CREATE INDEX identities_by_user ON identities (username);
    CREATE TABLE invites (  -- invite links spent; kept when the account goes, so a link works once
        id text PRIMARY KEY,
        username text NOT NULL,
        used double precision NOT NULL
    );
    """,
    """
    ALTER TABLE users ADD COLUMN sessions_after double precision NOT NULL DEFAULT 0;
    """,
    """
    ALTER TABLE tokens ADD COLUMN client text NOT NULL DEFAULT '',
                       ADD COLUMN grant_id text NOT NULL DEFAULT '',
                       ADD COLUMN kind text NOT NULL DEFAULT 'access';
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_USER = "name, email, password_hash, tier, admin, created, full_name, disabled, sessions_after"
_WIKI = "owner, slug, title, purpose, public, created, pages, bytes"
_GRANT = "owner, slug, username, role"
_TOKEN = "id, username, hash, scope, wikis, expires, created, last_used, note, client, grant_id, kind"
_IDENTITY = "provider, subject, username, created, label"
_INVITE = "id, username, used"
_TABLES = ("users", "wikis", "grants", "tokens", "identities", "invites")
_TYPES = {  # column types for COPY, in the order of the column lists above
    "users": ["text", "text", "text", "text", "bool", "float8", "text", "bool", "float8"],
    "wikis": ["text", "text", "text", "text", "bool", "float8", "int8", "int8"],
    "grants": ["text", "text", "text", "text"],
    "tokens": ["text", "text", "text", "text", "text[]", "float8", "float8", "float8", "text", "text", "text", "text"],
    "identities": ["text", "text", "text", "float8", "text"],
    "invites": ["text", "text", "float8"],
}
_COLUMNS = {"users": _USER, "wikis": _WIKI, "grants": _GRANT, "tokens": _TOKEN, "identities": _IDENTITY,
            "invites": _INVITE}
_USER_COLUMNS = {"email": "email", "full_name": "full_name", "password_hash": "password_hash", "tier": "tier",
                 "admin": "admin", "disabled": "disabled", "sessions_after": "sessions_after"}
_WIKI_COLUMNS = {"title": "title", "purpose": "purpose", "public": "public"}
# Python sorts names by code point: so does the "C" collation, whatever the database's default.
_WIKI_ORDER = "(owner || '/' || slug) COLLATE \"C\""


class _Detailed(WikibotError):
    """An error whose message is a fixed public sentence; `detail` (redacted) is for the log and the CLI."""

    public = FAILED

    def __init__(self, detail: str, public: str | None = None) -> None:
        super().__init__(public or self.public)
        self.detail = detail


class StoreUnavailable(_Detailed, Unavailable):
    """The PostgreSQL server cannot be reached or gave up on a transaction (a timeout); try again."""

    public = UNREACHABLE


class SchemaMismatch(_Detailed, InternalError):
    """The database's schema is not the one this version of wikibot works with."""

    public = NOT_READY


class StoreFailed(_Detailed, InternalError):
    """PostgreSQL refused a statement for a reason other than being unreachable (a bug, a permission)."""

    public = FAILED


def _logged(exc: E) -> E:
    log.log(logging.WARNING if isinstance(exc, StoreUnavailable) else logging.ERROR, "%s", exc.detail)
    return exc


def check_url(url: str) -> dict[str, str]:
    """The parameters of a postgresql:// URL as libpq reads it; a one-line ConfigError (the URL redacted,
    none of libpq's text, which quotes the bad part) if libpq cannot parse it."""
    try:
        return psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        raise ConfigError(f"store url {redact(url)!r} cannot be read as a PostgreSQL URL (a bad %-escape or an "
                          "unknown ?parameter): percent-encode '%', '@', '/', ':' and spaces in the user "
                          "name and password") from None


def connection_kwargs(params: dict[str, str]) -> dict[str, Any]:
    """Timeouts and keepalives for every connection to the store at a URL of `params`: the URL's own
    settings win, and its `options` (or PGOPTIONS) come after ours, so they can override them."""
    defaults: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, "keepalives": 1, "keepalives_idle": KEEPALIVE_IDLE,
                                "keepalives_interval": KEEPALIVE_INTERVAL, "keepalives_count": KEEPALIVE_COUNT}
    if psycopg.pq.version() >= 120000:
        defaults["tcp_user_timeout"] = TCP_USER_TIMEOUT_MS
    kwargs = {name: value for name, value in defaults.items() if name not in params}
    theirs = params.get("options", os.environ.get("PGOPTIONS", ""))
    ours = f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={LOCK_TIMEOUT_MS}"
    kwargs["options"] = f"{ours} {theirs}".strip()
    return kwargs


def _places(columns: str) -> str:
    """One placeholder per column of a column list."""
    return ", ".join(["%s"] * len(columns.split(",")))


def _user(row: tuple) -> User:
    return User(name=row[0], email=row[1], password_hash=row[2], tier=row[3], admin=row[4], created=row[5],
                full_name=row[6], disabled=row[7], sessions_after=row[8])


def _wiki(row: tuple) -> Wiki:
    return Wiki(owner=row[0], slug=row[1], title=row[2], purpose=row[3], public=row[4], created=row[5],
                pages=row[6], bytes=row[7])


def _grant(row: tuple) -> Grant:
    return Grant(wiki=WikiName(row[0], row[1]), user=row[2], role=row[3])


def _token(row: tuple) -> Token:
    return Token(id=row[0], user=row[1], hash=row[2], scope=row[3], wikis=tuple(WikiName.parse(w) for w in row[4]),
                 expires=row[5], created=row[6], last_used=row[7], note=row[8], client=row[9], grant=row[10],
                 kind=row[11])


def _identity(row: tuple) -> Identity:
    return Identity(provider=row[0], subject=row[1], user=row[2], created=row[3], label=row[4])


def _invite(row: tuple) -> UsedInvite:
    return UsedInvite(id=row[0], user=row[1], used=row[2])


def _rows(table: str, records: Iterable[Any]) -> Iterator[tuple]:
    for r in records:
        if table == "users":
            yield (r.name, r.email, r.password_hash, r.tier, r.admin, r.created, r.full_name, r.disabled,
                   r.sessions_after)
        elif table == "identities":
            yield (r.provider, r.subject, r.user, r.created, r.label)
        elif table == "invites":
            yield (r.id, r.user, r.used)
        elif table == "wikis":
            yield (r.owner, r.slug, r.title, r.purpose, r.public, r.created, r.pages, r.bytes)
        elif table == "grants":
            yield (r.wiki.owner, r.wiki.slug, r.user, r.role)
        else:
            yield (r.id, r.user, r.hash, r.scope, [str(w) for w in r.wikis], r.expires, r.created, r.last_used,
                   r.note, r.client, r.grant, r.kind)


class PostgresStore:
    """The `Store` in a PostgreSQL database named by a postgresql:// URL."""

    def __init__(self, url: str, max_connections: int = 4) -> None:
        self.url = url
        self.max_connections = max_connections  # per process: open_store gives the server's threads and a few
        self.where = redact(url)  # how messages name the store: no password
        self._kwargs = connection_kwargs(check_url(url))
        self._lock = threading.Lock()
        self._pool: ConnectionPool | None = None
        self._pid = 0  # the process that opened `_pool`

    # connections
    def _connect(self) -> psycopg.Connection:
        """One connection outside the pool (migrations, the first check); a clear error if it fails."""
        try:
            return psycopg.connect(self.url, autocommit=True, **self._kwargs)
        except psycopg.Error as exc:
            raise _logged(StoreUnavailable(f"cannot reach the PostgreSQL store at {self.where}: "
                                           f"{_first_line(exc)}")) from None

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """psycopg's errors as the store's: unreachable or timed out is a 503, any other a 500."""
        try:
            yield
        except (psycopg.OperationalError, PoolTimeout) as exc:  # timeouts and deadlocks are operational
            raise _logged(StoreUnavailable(f"{doing} the PostgreSQL store at {self.where} failed: "
                                           f"{_first_line(exc)}")) from None
        except psycopg.Error as exc:
            raise _logged(StoreFailed(f"{doing} the PostgreSQL store at {self.where} failed: "
                                      f"{_first_line(exc)}")) from None

    def _open_pool(self) -> ConnectionPool:
        """This process's pool, opened on first use once the schema is known to be current."""
        pool, pid = self._pool, os.getpid()
        if pool is not None and self._pid == pid:
            return pool
        with self._lock:
            if self._pool is None or self._pid != pid:  # none yet, or the parent's: never touch a forked one
                with self._connect() as conn, self._errors("reading the schema version of"):
                    version = _schema_version(conn)
                if version > SCHEMA_VERSION:
                    raise _logged(SchemaMismatch(
                        f"the PostgreSQL store at {self.where} has schema version {version}, newer than this "
                        f"wikibot's {SCHEMA_VERSION}: this wikibot is older than the database, upgrade it"))
                if version != SCHEMA_VERSION:
                    raise _logged(SchemaMismatch(
                        f"the PostgreSQL store at {self.where} has schema version {version}, this wikibot uses "
                        f"{SCHEMA_VERSION}: run 'wikibot init' to create or upgrade it"))
                self._pool = ConnectionPool(self.url, min_size=1, max_size=self.max_connections, num_workers=2,
                                            timeout=POOL_TIMEOUT, name="wikibot-store", open=False,
                                            check=ConnectionPool.check_connection,  # a server restart costs no request
                                            kwargs={"autocommit": True, **self._kwargs})
                self._pool.open(wait=False)
                self._pid = pid
            return self._pool

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection]:
        """A pooled connection in autocommit: a read is one round trip."""
        with self._errors("using"), self._open_pool().connection() as conn:
            yield conn

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection]:
        """A write transaction: committed if nothing raised, rolled back (nothing written) otherwise."""
        with self._conn() as conn, conn.transaction():
            yield conn

    def _all(self, query: str, params: tuple, make: Callable[[tuple], T]) -> list[T]:
        with self._conn() as conn:
            return [make(row) for row in conn.execute(query, params)]  # type: ignore[arg-type]

    def _one(self, query: str, params: tuple, make: Callable[[tuple], T]) -> T | None:
        found = self._all(query, params, make)
        return found[0] if found else None

    def close(self) -> None:
        """Close this process's pool (a later call opens a new one)."""
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close()
            self._pool = None

    # schema
    def migrate(self) -> int:
        """Create the schema or bring it up to this version's, idempotently; returns the version."""
        with self._connect() as conn, self._errors("migrating"), conn.transaction():
            conn.execute("SET LOCAL statement_timeout = 0")  # a migration may take long; lock waits still end
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                         "(version integer PRIMARY KEY, applied double precision NOT NULL)")
            current = _schema_version(conn)
            if current > SCHEMA_VERSION:
                raise _logged(SchemaMismatch(
                    f"the PostgreSQL store at {self.where} has schema version {current}, newer than this "
                    f"wikibot's {SCHEMA_VERSION}: this wikibot is older than the database, upgrade it"))
            for version in range(current + 1, SCHEMA_VERSION + 1):
                try:
                    conn.execute(MIGRATIONS[version - 1])  # type: ignore[arg-type]
                except (psycopg.errors.DuplicateTable, psycopg.errors.DuplicateObject) as exc:
                    raise _logged(SchemaMismatch(
                        f"migrating the PostgreSQL store at {self.where} to schema version {version} failed: "
                        f"{_first_line(exc)}; the database holds tables wikibot did not make (another "
                        "application's?): give wikibot an empty database of its own")) from None
                conn.execute("INSERT INTO schema_version VALUES (%s, %s)", (version, time.time()))
        return SCHEMA_VERSION

    def count_records(self) -> dict[str, int]:
        """The records of each table, read without migrating anything (`wikibot store copy` checks its
        target first); a StoreError if the database has tables but no wikibot schema."""
        with self._connect() as conn, self._errors("reading"):
            tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables "
                                                     "WHERE schemaname = current_schema()")}
            if tables and "schema_version" not in tables:
                shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
                raise StoreError(f"the database at {self.where} has tables but is no wikibot store ({shown}): "
                                 "copy only into an empty database")
            return {table: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                                        ).fetchone()[0] if table in tables else 0
                    for table in _TABLES}

    def load(self, users: list[User], wikis: list[Wiki], grants: list[Grant], tokens: list[Token],
             identities: Sequence[Identity] = (), invites: Sequence[UsedInvite] = ()) -> None:
        """Fill an empty store in one transaction (`wikibot store copy`): all of it lands, or nothing."""
        with self._tx() as conn:
            conn.execute("SET LOCAL statement_timeout = 0")  # a big copy may take long
            conn.execute("LOCK TABLE users, wikis, grants, tokens, identities, invites IN EXCLUSIVE MODE")
            if conn.execute("SELECT EXISTS (SELECT FROM users)").fetchone()[0]:  # every other record has a user
                raise StoreError(f"the PostgreSQL store at {self.where} already has records")
            with conn.cursor() as cur:
                for table, records in zip(_TABLES, (users, wikis, grants, tokens, identities, invites), strict=True):
                    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table),
                                                                        sql.SQL(_COLUMNS[table]))
                    try:
                        with cur.copy(copy_sql) as copy:
                            copy.set_types(_TYPES[table])
                            for row in _rows(table, records):
                                copy.write_row(row)
                    except psycopg.IntegrityError as exc:  # a record naming one that is not there, or twice
                        said = "; ".join(filter(None, (exc.diag.message_primary, exc.diag.message_detail)))
                        raise StoreError(f"the {table} to copy do not fit the other records, so nothing was "
                                         f"copied: {said or _first_line(exc)}") from None

    # users
    def add_user(self, user: User, invite: str | None = None) -> None:
        with self._tx() as conn:
            cur = conn.execute(f"INSERT INTO users ({_USER}) VALUES ({_places(_USER)}) "
                               "ON CONFLICT (name) DO NOTHING", next(_rows("users", [user])))
            if cur.rowcount == 0:
                raise StoreError(f"user {user.name!r} already exists")
            if invite is not None and conn.execute(
                    f"INSERT INTO invites ({_INVITE}) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
                    (invite, user.name, user.created)).rowcount == 0:
                raise StoreError("this invite link has been used already")  # the user's insert rolls back

    def update_user(self, name: str, changes: dict[str, Any]) -> User:
        checked_changes(changes, USER_FIELDS, "user")
        found = self._returning("users", _USER, _USER_COLUMNS, changes, "name = %s", (name,), _user)
        if found is None:
            raise StoreError(f"user {name!r} does not exist")
        return found

    def _returning(self, table: str, columns: str, names: dict[str, str], changes: dict[str, Any], where: str,
                   key: tuple, make: Callable[[tuple], T]) -> T | None:
        """One UPDATE of the `changes` (field -> value, each field a column of `names`) returning the row."""
        if not changes:
            return self._one(f"SELECT {columns} FROM {table} WHERE {where}", key, make)
        assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(names[f])) for f in changes)
        query = sql.SQL("UPDATE {} SET {} WHERE {} RETURNING {}").format(
            sql.Identifier(table), assignments, sql.SQL(where), sql.SQL(columns))  # type: ignore[arg-type]
        with self._conn() as conn:
            row = conn.execute(query, (*changes.values(), *key)).fetchone()
        return make(row) if row is not None else None

    def get_user(self, name: str) -> User | None:
        return self._one(f"SELECT {_USER} FROM users WHERE name = %s", (name,), _user)

    def list_users(self) -> list[User]:
        return self._all(f"SELECT {_USER} FROM users ORDER BY name COLLATE \"C\"", (), _user)

    def delete_user(self, name: str) -> None:
        """Remove the user; their tokens and grants go with them (cascade). Their wikis must go first."""
        with self._tx() as conn:
            _lock_user(conn, name, "UPDATE")  # a wiki insert of theirs in flight commits before the check
            if conn.execute("SELECT EXISTS (SELECT FROM wikis WHERE owner = %s)", (name,)).fetchone()[0]:
                raise StoreError(f"user {name!r} still owns wikis")
            if conn.execute("DELETE FROM users WHERE name = %s", (name,)).rowcount == 0:
                raise StoreError(f"user {name!r} does not exist")

    # wikis
    def add_wiki(self, wiki: Wiki, max_owned: int | None = None) -> None:
        """Insert `wiki` of an existing owner; with `max_owned`, refuse when they already have that many.
        The owner's row stays locked until commit, so concurrent creations of theirs count one by one."""
        with self._tx() as conn:
            if not _lock_user(conn, wiki.owner, "UPDATE"):
                raise StoreError(f"user {wiki.owner!r} does not exist")
            if conn.execute("SELECT EXISTS (SELECT FROM wikis WHERE owner = %s AND slug = %s)",
                            (wiki.owner, wiki.slug)).fetchone()[0]:
                raise StoreError(f"wiki {wiki.name} already exists")
            if max_owned is not None:
                owned = conn.execute("SELECT count(*) FROM wikis WHERE owner = %s", (wiki.owner,)).fetchone()[0]
                if owned >= max_owned:
                    raise StoreError(f"user {wiki.owner!r} already has {max_owned} wiki(s), the limit of their tier")
            conn.execute(f"INSERT INTO wikis ({_WIKI}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                         next(_rows("wikis", [wiki])))

    def get_wiki(self, name: WikiName) -> Wiki | None:
        return self._one(f"SELECT {_WIKI} FROM wikis WHERE owner = %s AND slug = %s", (name.owner, name.slug), _wiki)

    def list_wikis(self, owner: str | None = None) -> list[Wiki]:
        if owner is None:
            return self._all(f"SELECT {_WIKI} FROM wikis ORDER BY {_WIKI_ORDER}", (), _wiki)
        return self._all(f"SELECT {_WIKI} FROM wikis WHERE owner = %s ORDER BY {_WIKI_ORDER}", (owner,), _wiki)

    def _update_wiki(self, name: WikiName, assignments: str, values: tuple) -> None:
        with self._conn() as conn:  # one statement: its own transaction
            cur = conn.execute(f"UPDATE wikis SET {assignments} WHERE owner = %s AND slug = %s",  # type: ignore[arg-type]
                               (*values, name.owner, name.slug))
            if cur.rowcount == 0:
                raise StoreError(f"wiki {name} does not exist")

    def set_public(self, name: WikiName, public: bool) -> None:
        self._update_wiki(name, "public = %s", (public,))

    def set_usage(self, name: WikiName, pages: int, bytes: int) -> None:
        self._update_wiki(name, "pages = %s, bytes = %s", (pages, bytes))

    def update_wiki(self, name: WikiName, changes: dict[str, Any]) -> Wiki:
        checked_changes(changes, WIKI_FIELDS, "wiki")
        found = self._returning("wikis", _WIKI, _WIKI_COLUMNS, changes, "owner = %s AND slug = %s",
                                (name.owner, name.slug), _wiki)
        if found is None:
            raise StoreError(f"wiki {name} does not exist")
        return found

    def delete_wiki(self, name: WikiName) -> None:
        """Remove the wiki; its grants go with it (cascade)."""
        with self._conn() as conn:
            if conn.execute("DELETE FROM wikis WHERE owner = %s AND slug = %s", (name.owner, name.slug)).rowcount == 0:
                raise StoreError(f"wiki {name} does not exist")

    # grants
    def set_grant(self, grant: Grant, max_grants: int | None = None) -> None:
        """Give an existing user a role on an existing wiki, replacing any earlier role; `max_grants`
        caps new ones. The wiki's row stays locked until commit, so concurrent grants count one by one."""
        wiki = grant.wiki
        with self._tx() as conn:
            if not _lock_user(conn, grant.user, "SHARE"):
                raise StoreError(f"user {grant.user!r} does not exist")
            if conn.execute("SELECT FROM wikis WHERE owner = %s AND slug = %s FOR UPDATE",
                            (wiki.owner, wiki.slug)).fetchone() is None:
                raise StoreError(f"wiki {wiki} does not exist")
            key = (wiki.owner, wiki.slug, grant.user)
            if conn.execute("UPDATE grants SET role = %s WHERE owner = %s AND slug = %s AND username = %s",
                            (grant.role, *key)).rowcount:
                return
            if max_grants is not None:
                held = conn.execute("SELECT count(*) FROM grants WHERE owner = %s AND slug = %s",
                                    (wiki.owner, wiki.slug)).fetchone()[0]
                if held >= max_grants:
                    raise StoreError(f"wiki {wiki} already has {max_grants} collaborator(s), "
                                     "the limit of its owner's tier")
            conn.execute(f"INSERT INTO grants ({_GRANT}) VALUES (%s, %s, %s, %s)", (*key, grant.role))

    def remove_grant(self, wiki: WikiName, user: str) -> bool:
        with self._conn() as conn:
            return conn.execute("DELETE FROM grants WHERE owner = %s AND slug = %s AND username = %s",
                                (wiki.owner, wiki.slug, user)).rowcount > 0

    def list_grants(self, wiki: WikiName | None = None, user: str | None = None) -> list[Grant]:
        conds, params = [], []
        if wiki is not None:
            conds.append("owner = %s AND slug = %s")
            params += [wiki.owner, wiki.slug]
        if user is not None:
            conds.append("username = %s")
            params.append(user)
        where = f"WHERE {' AND '.join(conds)} " if conds else ""
        return self._all(f"SELECT {_GRANT} FROM grants {where}ORDER BY {_WIKI_ORDER}, username COLLATE \"C\"",
                         tuple(params), _grant)

    # tokens
    def add_token(self, token: Token) -> None:
        """Insert a token of an existing user."""
        with self._tx() as conn:
            if not _lock_user(conn, token.user, "SHARE"):
                raise StoreError(f"user {token.user!r} does not exist")
            cur = conn.execute(f"INSERT INTO tokens ({_TOKEN}) VALUES "
                               "(%s, %s, %s, %s, %s::text[], %s, %s, %s, %s, %s, %s, %s) "
                               "ON CONFLICT (id) DO NOTHING", next(_rows("tokens", [token])))
            if cur.rowcount == 0:
                raise StoreError(f"token {token.id} already exists")

    def find_token(self, token_hash: str) -> Token | None:
        return self._one(f"SELECT {_TOKEN} FROM tokens WHERE hash = %s ORDER BY seq LIMIT 1", (token_hash,), _token)

    def list_tokens(self, user: str | None = None) -> list[Token]:
        if user is None:
            return self._all(f"SELECT {_TOKEN} FROM tokens ORDER BY created, seq", (), _token)
        return self._all(f"SELECT {_TOKEN} FROM tokens WHERE username = %s ORDER BY created, seq", (user,), _token)

    def delete_token(self, token_id: str) -> bool:
        with self._conn() as conn:
            return conn.execute("DELETE FROM tokens WHERE id = %s", (token_id,)).rowcount > 0

    def touch_token(self, token_id: str, when: float) -> None:
        """One UPDATE by primary key: cheap enough for every authenticated request."""
        with self._conn() as conn:
            conn.execute("UPDATE tokens SET last_used = %s WHERE id = %s", (when, token_id))

    # identities and invites
    def add_identity(self, identity: Identity) -> None:
        with self._tx() as conn:
            if not _lock_user(conn, identity.user, "SHARE"):
                raise StoreError(f"user {identity.user!r} does not exist")
            cur = conn.execute(f"INSERT INTO identities ({_IDENTITY}) VALUES (%s, %s, %s, %s, %s) "
                               "ON CONFLICT (provider, subject) DO NOTHING", next(_rows("identities", [identity])))
            if cur.rowcount == 0:
                raise StoreError("that account of the identity provider is linked to a wikibot account already")

    def find_identity(self, provider: str, subject: str) -> Identity | None:
        return self._one(f"SELECT {_IDENTITY} FROM identities WHERE provider = %s AND subject = %s",
                         (provider, subject), _identity)

    def list_identities(self, user: str) -> list[Identity]:
        return self._all(f"SELECT {_IDENTITY} FROM identities WHERE username = %s "
                         "ORDER BY provider COLLATE \"C\", subject COLLATE \"C\"", (user,), _identity)

    def remove_identity(self, provider: str, subject: str) -> bool:
        with self._conn() as conn:
            return conn.execute("DELETE FROM identities WHERE provider = %s AND subject = %s",
                                (provider, subject)).rowcount > 0

    def find_used_invite(self, invite_id: str) -> UsedInvite | None:
        return self._one(f"SELECT {_INVITE} FROM invites WHERE id = %s", (invite_id,), _invite)

    def list_used_invites(self) -> list[UsedInvite]:
        return self._all(f"SELECT {_INVITE} FROM invites ORDER BY used", (), _invite)


def _lock_user(conn: psycopg.Connection, name: str, mode: str) -> bool:
    """Lock the user's row until commit (FOR UPDATE or FOR SHARE); False if there is no such user."""
    query = f"SELECT FROM users WHERE name = %s FOR {mode}"
    return conn.execute(query, (name,)).fetchone() is not None  # type: ignore[arg-type]


def _schema_version(conn: psycopg.Connection) -> int:
    """The version the database's schema is at; 0 before the first migration."""
    try:
        with conn.transaction():  # a savepoint inside a migration, so a missing table aborts nothing
            row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    except psycopg.errors.UndefinedTable:
        return 0
    return row[0]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return redact(lines[0] if lines else type(exc).__name__)
