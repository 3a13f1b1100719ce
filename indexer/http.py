"""`GET /api/wikis/{owner}/{slug}/search?q=…&mode=…&limit=…`: search as JSON for the web UI.

Access is checked exactly like a git fetch (token as Basic password or Bearer; anonymous for
public wikis; a private wiki is "not found" to others). The answer comes from the worker's
query service, so web processes never load the model.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from wikibot.gitd.acl import Action, Verdict, bearer_secret
from wikibot.gitd.core import Core
from wikibot.gitd.names import is_valid_name

from .search import SearchError
from .service import SearchUnavailable, remote_search

ROUTE = re.compile(r"/api/wikis/(?P<owner>[^/]+)/(?P<slug>[^/]+)/search")


def _json(start_response, status: str, body: dict[str, Any], headers: Iterable[tuple[str, str]] = ()) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store"), *headers])
    return [data]


class SearchAPI:
    def __init__(self, core: Core) -> None:
        self.core = core

    @staticmethod
    def match(path: str) -> re.Match[str] | None:
        return ROUTE.fullmatch(path)

    def __call__(self, environ: dict[str, Any], start_response) -> list[bytes]:
        m = self.match(environ.get("PATH_INFO", ""))
        if m is None or not (is_valid_name(m["owner"]) and is_valid_name(m["slug"])):
            return _json(start_response, "404 Not Found", {"error": "not found"})
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _json(start_response, "405 Method Not Allowed", {"error": "use GET"}, [("Allow", "GET")])
        decision = self.core.authorize(bearer_secret(environ), m["owner"], m["slug"], Action.READ)
        if decision.verdict is Verdict.CHALLENGE:
            return _json(start_response, "401 Unauthorized", {"error": decision.reason},
                         [("WWW-Authenticate", 'Basic realm="wikibot", charset="UTF-8"')])
        if not decision.allowed:
            return _json(start_response, "404 Not Found", {"error": "wiki not found"})
        params = parse_qs(environ.get("QUERY_STRING", ""))
        query = params.get("q", [""])[0]
        mode = params.get("mode", ["hybrid"])[0]
        try:
            limit = int(params.get("limit", ["10"])[0])
            answer = remote_search(self.core.config.data_dir, f"{m['owner']}/{m['slug']}", query, mode, limit)
        except (SearchError, ValueError) as exc:
            return _json(start_response, "400 Bad Request", {"error": str(exc)})
        except SearchUnavailable as exc:
            return _json(start_response, "503 Service Unavailable", {"error": str(exc)}, [("Retry-After", "5")])
        return _json(start_response, "200 OK", answer)
