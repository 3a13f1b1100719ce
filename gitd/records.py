"""Platform records: plain dataclasses, stored as JSON documents by a `Store`."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from .names import WikiName

Role = Literal["owner", "editor", "viewer"]
Scope = Literal["read", "write"]
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
