"""Platform records: plain dataclasses, stored as JSON documents by a `Store`."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from .names import WikiName

Role = Literal["owner", "editor", "viewer"]
Scope = Literal["read", "write"]
# a personal token or a connector's access token; a connector's refresh token, and one it has used up
# (kept to notice a second use: a stolen refresh token then ends the whole grant)
TokenKind = Literal["access", "refresh", "spent"]
ROLES: tuple[Role, ...] = ("owner", "editor", "viewer")
SCOPES: tuple[Scope, ...] = ("read", "write")


@dataclass(frozen=True)
class User:
    name: str
    email: str
    password_hash: str
    tier: str = "free"
    admin: bool = False
    created: float = 0.0
    full_name: str = ""  # shown beside the user name; the name itself never changes
    disabled: bool = False  # an admin's stop: no sign-in, no token, no session works
    sessions_after: float = 0.0  # web sessions issued before this end ("sign out everywhere", an unlink)


@dataclass(frozen=True)
class Wiki:
    owner: str
    slug: str
    title: str = ""
    purpose: str = ""
    public: bool = False
    created: float = 0.0
    pages: int = 0  # usage at the last event, kept by the usage consumer
    bytes: int = 0

    @property
    def name(self) -> WikiName:
        return WikiName(self.owner, self.slug)


@dataclass(frozen=True)
class Grant:
    wiki: WikiName
    user: str
    role: Role


@dataclass(frozen=True)
class Token:
    id: str
    user: str
    hash: str  # SHA-256 hex of the secret; the secret itself is never stored
    scope: Scope = "read"
    wikis: tuple[WikiName, ...] = field(default_factory=tuple)  # empty: every wiki the user can reach
    expires: float | None = None
    created: float = 0.0
    last_used: float | None = None
    note: str = ""
    # issued through OAuth to an MCP connector (the client's id): then limited to one wiki, MCP only, and
    # one of the tokens of `grant` (a connector's consent, whose tokens are revoked together)
    client: str = ""
    grant: str = ""
    kind: TokenKind = "access"


@dataclass(frozen=True)
class Identity:
    """A sign-in with an identity provider, keyed by the provider's stable subject (never a handle or an
    email address, which can change hands)."""

    provider: str  # the configured provider's name, e.g. "github"
    subject: str
    user: str
    created: float = 0.0
    label: str = ""  # what the provider called the account when linked (shown, never trusted)


@dataclass(frozen=True)
class UsedInvite:
    """An invite link spent: each is accepted once, by the account it created."""

    id: str
    user: str
    used: float = 0.0


USER_FIELDS = frozenset({"email", "full_name", "password_hash", "tier", "admin", "disabled",  # updatable
                         "sessions_after"})
WIKI_FIELDS = frozenset({"title", "purpose", "public"})


def to_doc(record: Any) -> dict[str, Any]:
    """A record as a JSON document: wiki names as "OWNER/SLUG" strings, tuples as lists."""
    doc = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if isinstance(value, WikiName):
            value = str(value)
        elif isinstance(value, tuple):
            value = [str(v) if isinstance(v, WikiName) else v for v in value]
        doc[f.name] = value
    return doc


def from_doc(cls: type, doc: dict[str, Any]) -> Any:
    known = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
    if cls is Grant:
        known["wiki"] = WikiName.parse(known["wiki"])
    if "wikis" in known:
        known["wikis"] = tuple(WikiName.parse(w) for w in known["wikis"])
    return cls(**known)
