"""`GET /api/wikis/{owner}/{slug}/search?q=…&mode=…&limit=…`: search as JSON for the web UI.

Access is checked by the platform's HTTP access layer exactly like a git fetch (token as Basic
password or Bearer; anonymous for public wikis; a private wiki is "not found" to others). The
answer comes from the worker's query service, so web processes never load the model.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from wikibot.gitd.acl import Action
from wikibot.gitd.core import Core
from wikibot.gitd.http_access import Answer, Refusal, StartResponse, access
from wikibot.gitd.names import NAME_PATTERN, WikiName

from .search import SearchError
from .service import remote_search

ROUTE = re.compile(rf"/api/wikis/(?P<owner>{NAME_PATTERN})/(?P<slug>{NAME_PATTERN})/search")


class SearchAPI:
    def __init__(self, core: Core) -> None:
        self.core = core

    @staticmethod
    def match(path: str) -> re.Match[str] | None:
        return ROUTE.fullmatch(path)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Refusals of the query (SearchError, 400) and an absent worker (SearchUnavailable, 503) are
        raised: the front router answers them as JSON."""
        return self.answer(environ).send(start_response)

    def answer(self, environ: dict[str, Any]) -> Answer:
        m = self.match(environ.get("PATH_INFO", ""))
        if m is None:
            return Answer.json(404, {"error": "not found"})
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return Answer.json(405, {"error": "use GET"}, [("Allow", "GET")])
        name = WikiName(m["owner"], m["slug"])
        caller = access(self.core.store, environ, name, Action.READ, scheme="Basic")
        if isinstance(caller, Refusal):
            reason = caller.reason if caller.status != 404 else "wiki not found"
            return Answer.refusal("json", caller.status, reason, caller.headers)
        params = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            limit = int(params.get("limit", ["10"])[0])
        except ValueError:
            raise SearchError("limit must be a whole number") from None
        found = remote_search(self.core.config.data_dir, name, params.get("q", [""])[0],
                              params.get("mode", ["hybrid"])[0], limit)
        return Answer.json(200, found)
