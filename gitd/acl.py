"""Who may do what: token authentication and the per-wiki access decision.

`decide(store, user, token, wiki, action)` is the one question every surface asks (through the
HTTP access layer, http_access.py). The answers are shaped so that a private wiki is never
revealed: an anonymous caller gets a challenge for any wiki it cannot read, an authenticated one
gets "not found".
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass

from wikibot.errors import WikibotError

from .names import WikiName
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
    user: User | None = None  # None: the caller acts as no one (anonymous, or a token limited elsewhere)
    role: Role | None = None
    write_refusal: str | None = None  # on a READ decision: why this caller could not write, or None

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW


class BadToken(WikibotError):
    """The presented token is unknown, revoked, expired or belongs to no user."""

    status = 401


def authenticate(store: Store, secret: str, now: float | None = None) -> tuple[User, Token]:
    """Resolve a token secret to its user, refreshing its last-used time."""
    now = time.time() if now is None else now
    if not secret.startswith(TOKEN_PREFIX):
        raise BadToken("not a wikibot token")
    token = store.find_token(token_hash(secret))
    if token is None or token.kind != "access":  # a connector's refresh token is only ever sent to /-/oauth/token
        raise BadToken("unknown or revoked token")
    if token.expires is not None and token.expires <= now:
        raise BadToken("token expired")
    user = store.get_user(token.user)
    if user is None:
        raise BadToken("token of a deleted user")
    if user.disabled:
        raise BadToken("the account holding this token is disabled")
    if token.last_used is None or now - token.last_used > TOUCH_INTERVAL:
        store.touch_token(token.id, now)
    return user, token


def role_of(store: Store, wiki: Wiki, user: User | None) -> Role | None:
    if user is None:
        return None
    if user.name == wiki.owner:
        return "owner"
    for grant in store.list_grants(wiki=wiki.name, user=user.name):
        return grant.role
    return None


def limited_elsewhere(token: Token, name: WikiName) -> str:
    if token.client:
        return f"this token was issued to an MCP connector for {', '.join(map(str, token.wikis))} only"
    return (f"this token is limited to {', '.join(map(str, token.wikis))}; "
            f"create one that includes {name}")


def _write_refusal(name: WikiName, user: User | None, token: Token | None, role: Role | None) -> str | None:
    if user is None:
        return "authentication required to write"
    if role not in ("owner", "editor"):
        return f"you have read-only access to {name}" + (f" ({role})" if role else "")
    if token is not None and token.scope != "write":
        return f"this token is read-only (scope 'read'); create a write token to change {name}"
    return None


def decide(store: Store, user: User | None, token: Token | None, name: WikiName, action: Action) -> Decision:
    """The access decision for an already authenticated (or anonymous) caller."""
    wiki = store.get_wiki(name)
    if token is not None and token.wikis and name not in token.wikis:
        # A token limited to other wikis acts here as no one: public wikis only, read only. It learns
        # nothing of private ones, not even which its holder can reach (a leaked CI token could probe).
        if wiki is not None and wiki.public:
            if action is Action.READ:
                return Decision(Verdict.ALLOW, wiki=wiki, write_refusal=limited_elsewhere(token, name))
            return Decision(Verdict.FORBIDDEN, limited_elsewhere(token, name), wiki=wiki, user=user)
        return Decision(Verdict.NOT_FOUND, f"wiki {name} not found", user=user)
    role = role_of(store, wiki, user) if wiki else None
    if wiki is None or (role is None and not wiki.public):
        if user is None:
            return Decision(Verdict.CHALLENGE, "authentication required")
        return Decision(Verdict.NOT_FOUND, f"wiki {name} not found", user=user)
    refusal = _write_refusal(name, user, token, role)
    if action is Action.READ:
        return Decision(Verdict.ALLOW, wiki=wiki, user=user, role=role, write_refusal=refusal)
    if refusal is not None:
        return Decision(Verdict.CHALLENGE if user is None else Verdict.FORBIDDEN, refusal, wiki=wiki, user=user,
                        role=role)
    return Decision(Verdict.ALLOW, wiki=wiki, user=user, role=role)
