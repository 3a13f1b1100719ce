"""Platform state behind one small `Store` protocol; `open_store(config)` picks the backend.

TinyDB (tiny_store.py, one JSON file in the data dir) is the embedded default; PostgreSQL (pg_store.py)
is chosen by a store URL. Every backend gives the same answers and refusals (the contract suite in
tests/test_store.py runs against each): every write is one transaction whose checks (the user or
wiki it names exists, quotas) are made inside it, so a concurrent write can never slip between a
check and its insert.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from wikibot.config import Config, ConfigError
from wikibot.errors import InternalError, WikibotError
from wikibot.redaction import redact

from .names import WikiName
from .records import Grant, Identity, Token, UsedInvite, User, Wiki


class StoreError(WikibotError):
    """A record conflicts with an existing one or is missing."""


def checked_changes(changes: dict[str, Any], allowed: frozenset[str], kind: str) -> dict[str, Any]:
    """`changes` if every key is an updatable field of `kind`; a programming error otherwise."""
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"not updatable fields of a {kind}: {', '.join(sorted(unknown))}")
    return changes


class StoreCorrupt(InternalError):
    """The state file cannot be parsed: nothing is read from it or written over it."""


class Store(Protocol):
    """What the platform needs from its state backend."""

    # `invite`: the id of the invite link this account is made with, spent in the same write (refused
    # if already spent)
    def add_user(self, user: User, invite: str | None = None) -> None: ...
    def get_user(self, name: str) -> User | None: ...
    def list_users(self) -> list[User]: ...
    def update_user(self, name: str, changes: dict[str, Any]) -> User: ...  # records.USER_FIELDS only
    def delete_user(self, name: str) -> None: ...  # with their tokens, grants and identities
    def add_wiki(self, wiki: Wiki, max_owned: int | None = None) -> None: ...
    def get_wiki(self, name: WikiName) -> Wiki | None: ...
    def list_wikis(self, owner: str | None = None) -> list[Wiki]: ...
    def set_public(self, name: WikiName, public: bool) -> None: ...
    def update_wiki(self, name: WikiName, changes: dict[str, Any]) -> Wiki: ...  # records.WIKI_FIELDS only
    def set_usage(self, name: WikiName, pages: int, bytes: int) -> None: ...
    def delete_wiki(self, name: WikiName) -> None: ...
    def set_grant(self, grant: Grant, max_grants: int | None = None) -> None: ...
    def remove_grant(self, wiki: WikiName, user: str) -> bool: ...
    def list_grants(self, wiki: WikiName | None = None, user: str | None = None) -> list[Grant]: ...
    def add_token(self, token: Token) -> None: ...
    def find_token(self, token_hash: str) -> Token | None: ...
    def list_tokens(self, user: str | None = None) -> list[Token]: ...
    def delete_token(self, token_id: str) -> bool: ...
    def touch_token(self, token_id: str, when: float) -> None: ...
    def add_identity(self, identity: Identity) -> None: ...  # refused if that subject is linked already
    def find_identity(self, provider: str, subject: str) -> Identity | None: ...
    def list_identities(self, user: str) -> list[Identity]: ...
    def remove_identity(self, provider: str, subject: str) -> bool: ...
    def find_used_invite(self, invite_id: str) -> UsedInvite | None: ...
    def list_used_invites(self) -> list[UsedInvite]: ...
    def migrate(self) -> int: ...  # create or upgrade the schema (`wikibot init`); returns its version
    def load(self, users: list[User], wikis: list[Wiki], grants: list[Grant], tokens: list[Token],
             identities: Sequence[Identity] = (), invites: Sequence[UsedInvite] = ()) -> None: ...


POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SPARE_CONNECTIONS = 2  # pooled connections beyond one per request thread (the worker's, a slow return)


def open_store(config: Config) -> Store:
    """The configured backend: TinyDB in the data dir unless a store URL (`[store] url`) says otherwise."""
    if config.store_url:
        return open_postgres(config.store_url, max_connections=config.threads + SPARE_CONNECTIONS)
    from .tiny_store import TinyStore

    return TinyStore(config.db_path)


def open_postgres(url: str, max_connections: int = 4) -> Store:
    """The PostgreSQL store at `url`, pooling up to `max_connections` per process; a ConfigError for any
    other kind of URL or one libpq cannot read. No connection yet, and psycopg is imported only here:
    a TinyDB platform needs no libpq."""
    if not url.startswith(POSTGRES_SCHEMES):
        # redact() hides a URL's user info, not a keyword conninfo's (`host=... password=...`) or a
        # schemeless `user:password@host`: those are not shown
        safe = "://" in url or not {"=", "@"} & set(url)
        shown = f" {redact(url)!r}" if safe else " (not shown: it may hold a password)"
        raise ConfigError(f"store url{shown} is not a PostgreSQL URL: use "
                          "postgresql://USER:PASSWORD@HOST:PORT/DATABASE, or no store url for TinyDB in the data dir")
    try:
        from .pg_store import PostgresStore
    except ImportError as exc:  # psycopg finds no libpq
        raise ConfigError(f"the PostgreSQL store needs libpq, which psycopg cannot load ({exc}): install libpq5 "
                          "or psycopg[binary]") from None
    return PostgresStore(url, max_connections=max_connections)
