"""The HTTP side of MCP: `/mcp/{owner}/{wiki}`, bearer-token auth, then the FastMCP app.

Authentication and the wiki-level decision happen here, before any MCP message is parsed, with
the same ACL as git: a missing or bad token is a 401 with a Bearer challenge, a token limited to
other wikis a 403, a wiki the caller cannot read a 404. The tools get the resulting `Caller`
through the request state, which no client can set.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from wikibot.gitd.acl import Action, BadToken, Verdict, authenticate, bearer_secret, decide
from wikibot.gitd.core import Core

from .asgi_bridge import AsgiBridge, HttpAnswer, StartResponse, rpc_error
from .caller import Caller
from .server import build_app
from .tools_attachments import MAX_BODY, MAX_UPLOAD_BYTES

PATH_RE = re.compile(r"/mcp/(?P<owner>[a-z0-9][a-z0-9-]{0,38})/(?P<slug>[a-z0-9][a-z0-9-]{0,38})/?")


class McpEndpoint:
    """WSGI app for /mcp/...: decides who may call which wiki, then hands the request to FastMCP."""

    def __init__(self, core: Core) -> None:
        self.core = core
        too_large = rpc_error(413, f"request too large: attachments sent over MCP are limited to "
                                   f"{MAX_UPLOAD_BYTES} bytes; push bigger files with git")
        # answer before gunicorn's own timeout would kill the worker with every request it serves
        self.bridge = AsgiBridge(build_app, MAX_BODY, too_large=too_large,
                                 timeout=max(5.0, core.config.timeout - 5.0))

    @staticmethod
    def match(path: str) -> re.Match[str] | None:
        return PATH_RE.fullmatch(path)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        match = self.match(environ.get("PATH_INFO", ""))
        if match is None:
            return _answer(start_response, rpc_error(404, "not an MCP endpoint: use /mcp/OWNER/WIKI"))
        owner, slug = match["owner"], match["slug"]
        if environ["REQUEST_METHOD"] != "POST":
            # stateless server: no standalone event stream (GET) or session (DELETE) to offer,
            # which MCP allows to answer with 405
            return _answer(start_response, rpc_error(405, "this MCP endpoint takes POST requests",
                                                      (("Allow", "POST"),)))
        caller = self.authenticate(environ, owner, slug)
        if isinstance(caller, HttpAnswer):
            return _answer(start_response, caller)
        environ["PATH_INFO"] = f"/mcp/{owner}/{slug}"
        return self.bridge(environ, start_response, {"caller": caller, "core": self.core})

    def authenticate(self, environ: dict[str, Any], owner: str, slug: str) -> Caller | HttpAnswer:
        secret = bearer_secret(environ)
        if secret is None:
            return _challenge("a personal access token is required: send 'Authorization: Bearer wbt_...'", None)
        try:
            user, token = authenticate(self.core.store, secret)
        except BadToken as exc:
            return _challenge(str(exc), "invalid_token")
        if token.wikis and f"{owner}/{slug}" not in token.wikis:
            return rpc_error(403, f"this token is limited to {', '.join(token.wikis)}; "
                                f"create one that includes {owner}/{slug}")
        decision = decide(self.core.store, user, token, owner, slug, Action.READ)
        if decision.verdict is not Verdict.ALLOW:
            return rpc_error(decision.verdict.value, decision.reason)
        write = decide(self.core.store, user, token, owner, slug, Action.WRITE)
        return Caller(owner, slug, user, token, decision.role, None if write.allowed else write.reason)


def _challenge(reason: str, error: str | None) -> HttpAnswer:
    """401 with a Bearer challenge (RFC 6750: an error code only when a token was sent)."""
    description = reason.replace('"', "'")
    challenge = 'Bearer realm="wikibot"' + (f', error="{error}", error_description="{description}"' if error else "")
    return rpc_error(401, reason, (("WWW-Authenticate", challenge),))


def _answer(start_response: StartResponse, answer: HttpAnswer) -> list[bytes]:
    start_response(answer.status, list(answer.headers))
    return [answer.body]
