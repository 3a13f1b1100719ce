"""The WSGI application gunicorn serves: one front router over the components' apps.

The URL space is a table (see DESIGN.md): each route is a pattern the path must start with and the
app that owns everything under it; the first match wins. User and wiki names are never one of the
platform's words (gitd/names.py RESERVED_NAMES), so `/NAME/...` cannot shadow a route.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from wikibot.config import Config, load_config
from wikibot.errors import WikibotError
from wikibot.gitd.core import Core
from wikibot.gitd.http_access import Answer, StartResponse, Style
from wikibot.gitd.smart_http import GitHTTP
from wikibot.indexer.http import SearchAPI
from wikibot.mcp.endpoint import McpEndpoint
from wikibot.oauth.server import OAuthServer, make_provider
from wikibot.redaction import redact_every_logger
from wikibot.webui import create_webui
from wikibot.wiring import open_core

WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass(frozen=True)
class Route:
    prefix: re.Pattern[str]  # matched at the start of PATH_INFO
    app: WsgiApp
    errors: Style = "text"  # how a WikibotError the app lets through is answered


def routes(core: Core) -> list[Route]:
    """The platform's URL table, in the order it is matched."""
    connectors = make_provider(core)
    oauth = OAuthServer(core, connectors)
    return [  # git first: `/mcp/notes.git/` is the git URL of a user named before `mcp` was reserved
        Route(re.compile(r"/[^/]+/[^/]+\.git/"), GitHTTP(core)),
        Route(re.compile(r"/mcp/"), McpEndpoint(core), "rpc"),
        Route(re.compile(r"/api/wikis/"), SearchAPI(core), "json"),
        Route(re.compile(r"/\.well-known/oauth-|/-/oauth/(authorize|token|register|revoke)$"), oauth, "json"),
        Route(re.compile(r""), create_webui(core, connectors)),  # `/`, `/-/…` (the consent page too), wikis' pages
    ]


class Platform:
    """Routes each request to the component that owns its URL space."""

    def __init__(self, table: list[Route]) -> None:
        self.table = table

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        for route in self.table:
            if route.prefix.match(path):
                return self._serve(route, environ, start_response)
        return Answer.text(404, "not found").send(start_response)

    @staticmethod
    def _serve(route: Route, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Run the route's app; a WikibotError it raises before answering is answered here, in one place."""
        started = False

        def tracked(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal started
            started = True
            return start_response(status, headers, exc_info)

        try:
            return route.app(environ, tracked)
        except WikibotError as exc:
            if started:  # the answer is under way: only the server can end it
                raise
            return Answer.failure(route.errors, exc).send(start_response)


def create_app(config: Config | None = None) -> Platform:
    core = open_core(config or load_config())
    core.initialise()
    platform = Platform(routes(core))
    # after gunicorn's logger setup and every import: handlers libraries added redact too
    redact_every_logger()
    return platform
