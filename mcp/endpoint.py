"""The HTTP side of MCP: `/mcp/{owner}/{wiki}`, bearer-token auth, then the FastMCP app.

Access is decided by the platform's HTTP access layer before any MCP message is parsed, with the
same ACL as git, except that MCP serves no one without a token: a missing or bad token is a 401
with a Bearer challenge naming the wiki's OAuth metadata, a token limited to other wikis a 403 (a
connector's, bound to another wiki, a 401), a wiki the caller cannot read a 404. The tools get
the resulting `Caller` through the request state, which no client can set.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from wikibot.gitd.acl import Action
from wikibot.gitd.core import Core
from wikibot.gitd.http_access import Answer, Refusal, StartResponse, access
from wikibot.gitd.names import NAME_PATTERN, WikiName
from wikibot.oauth.provider import resource_metadata_url

from .asgi_bridge import AsgiBridge
from .server import build_app
from .tools_attachments import MAX_BODY, MAX_UPLOAD_BYTES

PATH_RE = re.compile(rf"/mcp/(?P<owner>{NAME_PATTERN})/(?P<slug>{NAME_PATTERN})/?")


class McpEndpoint:
    """WSGI app for /mcp/...: decides who may call which wiki, then hands the request to FastMCP."""

    def __init__(self, core: Core) -> None:
        self.core = core
        too_large = Answer.rpc_error(413, f"request too large: attachments sent over MCP are limited to "
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
            return Answer.rpc_error(404, "not an MCP endpoint: use /mcp/OWNER/WIKI").send(start_response)
        name = WikiName(match["owner"], match["slug"])
        if environ["REQUEST_METHOD"] != "POST":
            # stateless server: no standalone event stream (GET) or session (DELETE) to offer,
            # which MCP allows to answer with 405
            return Answer.rpc_error(405, "this MCP endpoint takes POST requests", [("Allow", "POST")]
                                    ).send(start_response)
        # a 401 tells OAuth clients (Claude.ai's connectors) where to sign in for this wiki (RFC 9728)
        discovery = f'resource_metadata="{resource_metadata_url(self.core.config, name)}", scope="read write"'
        caller = access(self.core.store, environ, name, Action.READ, scheme="Bearer", anonymous=False,
                        connectors=True, extra=discovery)
        if isinstance(caller, Refusal):
            return Answer.refusal("rpc", caller.status, caller.reason, caller.headers).send(start_response)
        environ["PATH_INFO"] = f"/mcp/{name}"
        return self.bridge(environ, start_response, {"caller": caller, "core": self.core})
