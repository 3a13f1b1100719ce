"""The WSGI application gunicorn serves: one front router over the components' apps."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from wikibot.config import Config, load_config
from wikibot.gitd.core import Core
from wikibot.gitd.smart_http import GitHTTP, StartResponse
from wikibot.indexer.http import SearchAPI
from wikibot.mcp.endpoint import McpEndpoint
from wikibot.redaction import redact_every_logger
from wikibot.wiring import open_core


class Platform:
    """Routes each request to the component that owns its URL space."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.git = GitHTTP(core)
        self.search = SearchAPI(core)
        self.mcp = McpEndpoint(core)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if ".git/" in path:
            return self.git(environ, start_response)
        if path.startswith("/mcp/"):
            return self.mcp(environ, start_response)
        if path.startswith("/api/wikis/"):
            return self.search(environ, start_response)
        if path in ("", "/"):
            body = b"wikibot is running. Clone a wiki with: git clone " + \
                self.core.config.public_url.encode() + b"/OWNER/WIKI.git\n"
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found\n"]


def create_app(config: Config | None = None) -> Platform:
    core = open_core(config or load_config())
    core.initialise()
    platform = Platform(core)
    # after gunicorn's logger setup and every import: handlers libraries added redact too
    redact_every_logger()
    return platform
