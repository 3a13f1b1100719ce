"""Who may do what: token authentication and the per-wiki access decision.

`authorize(token, wiki, action)` is the one question every entry point (git, web, MCP) asks.
The answers are shaped so that a private wiki is never revealed: an anonymous caller gets a
challenge for any wiki it cannot read, an authenticated one gets "not found".
"""
from __future__ import annotations

import base64
import binascii
import enum
import time
from dataclasses import dataclass
from typing import Any

from .records import Role, Token, User, Wiki
from .secrets import TOKEN_PREFIX, token_hash
from .store import Store

# last_used is informational; writing it on every git request would serialise all requests on the
# DB lock, so it is refreshed at most this often.
TOUCH_INTERVAL = 60.0


class Action(enum.Enum):
    READ = "read"
    WRITE = "write"


class Verdict(enum.Enum):
    ALLOW = 200
    CHALLENGE = 401  # no or bad credentials: ask for (other) credentials
    FORBIDDEN = 403  # the caller can read the wiki but not do this
    NOT_FOUND = 404  # no such wiki, or one the caller may not know about


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""
    wiki: Wiki | None = None
    user: User | None = None
    role: Role | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW


class BadToken(Exception):
    """The presented token is unknown, revoked, expired or belongs to no user."""


def authenticate(store: Store, secret: str, now: float | None = None) -> tuple[User, Token]:
    """Resolve a token secret to its user, refreshing its last-used time."""
    now = time.time() if now is None else now
    if not secret.startswith(TOKEN_PREFIX):
        raise BadToken("not a wikibot token")
    token = store.find_token(token_hash(secret))
    if token is None:
        raise BadToken("unknown or revoked token")
    if token.expires is not None and token.expires <= now:
        raise BadToken("token expired")
    user = store.get_user(token.user)
    if user is None:
        raise BadToken("token of a deleted user")
    if token.last_used is None or now - token.last_used > TOUCH_INTERVAL:
        store.touch_token(token.id, now)
    return user, token


def role_of(store: Store, wiki: Wiki, user: User | None) -> Role | None:
    if user is None:
        return None
    if user.name == wiki.owner:
        return "owner"
    for grant in store.list_grants(wiki=wiki.full_name, user=user.name):
        return grant.role
    return None


def decide(
    store: Store, user: User | None, token: Token | None, owner: str, slug: str, action: Action
) -> Decision:
    """The access decision for an already authenticated (or anonymous) caller."""
    wiki = store.get_wiki(owner, slug)
    if token is not None and token.wikis and f"{owner}/{slug}" not in token.wikis:
        # a token limited to other wikis acts here as no one: public wikis only, read only
        if wiki is not None and wiki.public and action is Action.READ:
            return Decision(Verdict.ALLOW, wiki=wiki)
        return Decision(Verdict.NOT_FOUND, f"wiki {owner}/{slug} not found", user=user)
    wiki_visible = wiki
    role = role_of(store, wiki_visible, user) if wiki_visible else None
    can_read = wiki_visible is not None and (role is not None or wiki_visible.public)
    if not can_read:
        if user is None:
            return Decision(Verdict.CHALLENGE, "authentication required")
        return Decision(Verdict.NOT_FOUND, f"wiki {owner}/{slug} not found", user=user)
    if action is Action.READ:
        return Decision(Verdict.ALLOW, wiki=wiki_visible, user=user, role=role)
    if user is None:
        return Decision(Verdict.CHALLENGE, "authentication required to write", wiki=wiki_visible)
    if role not in ("owner", "editor"):
        why = f"you have read-only access to {owner}/{slug}" + (f" ({role})" if role else "")
        return Decision(Verdict.FORBIDDEN, why, wiki=wiki_visible, user=user, role=role)
    if token is not None and token.scope != "write":
        why = f"this token is read-only (scope 'read'); create a write token to change {owner}/{slug}"
        return Decision(Verdict.FORBIDDEN, why, wiki=wiki_visible, user=user, role=role)
    return Decision(Verdict.ALLOW, wiki=wiki_visible, user=user, role=role)


def authorize(store: Store, secret: str | None, owner: str, slug: str, action: Action) -> Decision:
    """May the holder of `secret` (None: anonymous) do `action` on wiki `owner/slug`?"""
    user = token = None
    if secret is not None:
        try:
            user, token = authenticate(store, secret)
        except BadToken as exc:
            return Decision(Verdict.CHALLENGE, str(exc))
    return decide(store, user, token, owner, slug, action)


def bearer_secret(environ: dict[str, Any]) -> str | None:
    """The token presented as HTTP Basic password (any username) or as a Bearer token."""
    header = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip() or None
    if scheme == "basic":
        try:
            user, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return ""  # malformed credentials are bad credentials, not anonymous
        return password or user  # some clients put the token in the user field
    return None
