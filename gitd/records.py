"""Platform records: plain dataclasses, stored as JSON documents by a `Store`."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

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
    def full_name(self) -> str:
        return f"{self.owner}/{self.slug}"


@dataclass(frozen=True)
class Grant:
    wiki: str  # "owner/slug"
    user: str
    role: Role


@dataclass(frozen=True)
class Token:
    id: str
    user: str
    hash: str  # SHA-256 hex of the secret; the secret itself is never stored
    scope: Scope = "read"
    wikis: tuple[str, ...] = field(default_factory=tuple)  # empty: every wiki the user can reach
    expires: float | None = None
    created: float = 0.0
    last_used: float | None = None
    note: str = ""


def to_doc(record: Any) -> dict[str, Any]:
    doc = asdict(record)
    for key, value in doc.items():
        if isinstance(value, tuple):
            doc[key] = list(value)
    return doc


def from_doc(cls: type, doc: dict[str, Any]) -> Any:
    known = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
    if "wikis" in known:
        known["wikis"] = tuple(known["wikis"])
    return cls(**known)
