"""The one HTTP access layer: every surface (git, MCP, the search API, next the web wiki) turns a
request and a wiki into a `Caller` or a `Refusal` here, and answers with the same helpers.

Credentials are a personal access token, sent as a Bearer token or as the HTTP Basic password
(any user name; some clients put it in the user name). Which challenge a 401 carries is the
surface's: git and the search API ask for Basic, MCP for Bearer (RFC 6750).
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

from wikibot.errors import WikibotError

from .acl import Action, BadToken, Decision, Verdict, authenticate, decide, limited_elsewhere
from .names import WikiName
from .records import Role, Token, User, Wiki
from .store import Store

StartResponse = Callable[..., Callable[[bytes], Any]]
Scheme = Literal["Basic", "Bearer"]
Style = Literal["text", "json", "rpc"]  # how a surface words its errors: git, the JSON API, MCP
REALM = "wikibot"


@dataclass(frozen=True)
class Caller:
    """Who is calling which wiki, once access is granted; `user` None for anonymous readers."""

    wiki: Wiki
    user: User | None
    token: Token | None
    role: Role | None
    write_refusal: str | None  # why this caller may not write (the ACL's answer), or None

    @property
    def name(self) -> WikiName:
        return self.wiki.name

    @property
    def actor(self) -> str | None:
        return self.user.name if self.user else None


@dataclass(frozen=True)
class Refusal:
    """Access refused: the HTTP status, the reason for the caller, and the challenge of a 401."""

    status: int
    reason: str
    challenge: str | None = None

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return (("WWW-Authenticate", self.challenge),) if self.challenge else ()


def challenge(scheme: Scheme, error: str | None = None, description: str = "", extra: str = "") -> str:
    """A `WWW-Authenticate` value. Bearer error codes (RFC 6750) only when a token was sent; `extra`:
    more Bearer parameters (MCP's `resource_metadata` and `scope`, RFC 9728)."""
    if scheme == "Basic":
        return f'Basic realm="{REALM}", charset="UTF-8"'
    value = f'Bearer realm="{REALM}"' + (f", {extra}" if extra else "")
    if not error:
        return value
    return f'{value}, error="{error}", error_description="{description.replace(chr(34), chr(39))}"'


def credentials(environ: dict[str, Any]) -> str | None:
    """The token presented as a Bearer token or as HTTP Basic password, "" for malformed credentials
    (bad, not anonymous), None for none."""
    header = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip() or None
    if scheme == "basic":
        try:
            user, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return password or user
    return None


def access(store: Store, environ: dict[str, Any], name: WikiName, action: Action, *, scheme: Scheme,
           anonymous: bool = True, connectors: bool = False, extra: str = "") -> Caller | Refusal:
    """May this request do `action` on wiki `name`? Surfaces that serve nobody without a token
    (`anonymous=False`: MCP) refuse a caller that would act as no one. Tokens issued to MCP connectors
    work only where `connectors` (MCP), and only on their wiki. `extra`: the surface's Bearer challenge
    parameters."""
    secret = credentials(environ)
    user = token = None
    if secret is None and not anonymous:
        return Refusal(401, "sign-in required: connect with OAuth (connectors do it for you) or send a personal "
                            "access token as 'Authorization: Bearer wbt_...'" if extra else
                       "a personal access token is required: send 'Authorization: Bearer wbt_...'",
                       challenge(scheme, extra=extra))
    if secret is not None:
        try:
            user, token = authenticate(store, secret)
        except BadToken as exc:
            return Refusal(401, str(exc), challenge(scheme, "invalid_token", str(exc), extra))
    if token is not None and token.client:
        if not connectors:  # what the account's owner consented to is an MCP connector's access, nothing more
            return Refusal(403, "this token was issued to an MCP connector and works only on its wiki's MCP URL; "
                                "use a personal access token here")
        if name not in token.wikis:  # bound to its one resource (RFC 8707): the connector must ask for this one
            return Refusal(401, limited_elsewhere(token, name),
                           challenge(scheme, "invalid_token", limited_elsewhere(token, name), extra))
    if not anonymous and token is not None and token.wikis and name not in token.wikis:
        # a surface that serves no one without a token says so for every other wiki alike (nothing leaks)
        return Refusal(403, limited_elsewhere(token, name))
    return _outcome(decide(store, user, token, name, action), token, scheme)


def _outcome(decision: Decision, token: Token | None, scheme: Scheme) -> Caller | Refusal:
    if decision.verdict is Verdict.CHALLENGE:
        return Refusal(401, decision.reason, challenge(scheme))
    if not decision.allowed:
        return Refusal(decision.verdict.value, decision.reason)
    assert decision.wiki is not None
    return Caller(decision.wiki, decision.user, token if decision.user else None, decision.role,
                  decision.write_refusal)


# answers
@dataclass(frozen=True)
class Answer:
    """A whole HTTP answer, sent with `send`."""

    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> Answer:
        return cls(status, (message.rstrip("\n") + "\n").encode(), "text/plain; charset=utf-8", tuple(headers))

    @classmethod
    def json(cls, status: int, doc: object, headers: Iterable[tuple[str, str]] = ()) -> Answer:
        return cls(status, json.dumps(doc).encode(), "application/json",
                   (("Cache-Control", "no-store"), *headers))

    @classmethod
    def rpc_error(cls, status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> Answer:
        """An HTTP error carrying a JSON-RPC error body: MCP clients show its message to the user."""
        doc = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}
        return cls(status, json.dumps(doc).encode(), "application/json", tuple(headers))

    @classmethod
    def refusal(cls, style: Style, status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> Answer:
        """An error answer worded the way the surface's clients read it."""
        if style == "json":
            return cls.json(status, {"error": message}, headers)
        if style == "rpc":
            return cls.rpc_error(status, message, headers)
        return cls.text(status, f"wikibot: {message}", headers)

    @classmethod
    def failure(cls, style: Style, exc: WikibotError) -> Answer:
        """The HTTP side of the error base: `exc`'s status and message (503s say when to retry)."""
        return cls.refusal(style, exc.status, str(exc), [("Retry-After", "5")] if exc.status == 503 else [])

    @property
    def status_line(self) -> str:
        return status_line(self.status)

    @property
    def header_list(self) -> list[tuple[str, str]]:
        return [("Content-Type", self.content_type), ("Content-Length", str(len(self.body))), *self.headers]

    def send(self, start_response: StartResponse) -> list[bytes]:
        start_response(self.status_line, self.header_list)
        return [self.body]


def status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)

