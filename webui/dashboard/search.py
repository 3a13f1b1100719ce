"""Search across every wiki a user can read, from the dashboard: the indexer (the worker's query
service, hybrid by default) asked wiki by wiki, the hits grouped by wiki, each linking to the page's
section. Web processes never load the model."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import quote

from wikibot.gitd.core import Core
from wikibot.gitd.records import Wiki
from wikibot.indexer.search import SearchError
from wikibot.indexer.service import SearchUnavailable, remote_search

PER_WIKI = 5  # hits shown per wiki
MAX_WIKIS = 50  # wikis asked per search: a user sharing hundreds sees the first 50 and is told
BUDGET = 10.0  # seconds for all of them; wikis not reached in time are named


@dataclass
class Group:
    wiki: Wiki
    hits: list[dict] = field(default_factory=list)


@dataclass
class Found:
    groups: list[Group]
    error: str = ""
    skipped: list[Wiki] = field(default_factory=list)  # not searched: too many, or out of time


class InFlight:
    """Who has a search running in this process: a user's second search at once is refused, so one
    person cannot hold every web thread (and the worker) with searches of many wikis each."""

    def __init__(self) -> None:
        self._users: set[str] = set()
        self._lock = threading.Lock()

    @contextmanager
    def one(self, user: str) -> Iterator[bool]:
        """Yields whether `user` may search now (False: theirs is running)."""
        with self._lock:
            free = user not in self._users
            self._users.add(user)
        try:
            yield free
        finally:
            if free:
                with self._lock:
                    self._users.discard(user)


def page_url(wiki: Wiki, hit: dict) -> str:
    page = hit["page"][:-3] if hit["page"].endswith(".md") else hit["page"]
    anchor = f"#{quote(hit['anchor'])}" if hit.get("anchor") else ""
    return f"/{wiki.owner}/{wiki.slug}/{quote(page)}{anchor}"


def search_everywhere(core: Core, wikis: list[Wiki], query: str) -> Found:
    found = Found(groups=[], skipped=wikis[MAX_WIKIS:])
    deadline = time.monotonic() + BUDGET
    for n, wiki in enumerate(wikis[:MAX_WIKIS]):
        left = deadline - time.monotonic()
        if left <= 0:
            found.skipped = wikis[n:]
            break
        try:
            answer = remote_search(core.config.data_dir, wiki.name, query, "hybrid", PER_WIKI, timeout=left)
        except SearchError as exc:  # the query itself is refused: the same for every wiki
            return Found(groups=[], error=str(exc))
        except SearchUnavailable:
            return Found(groups=[], error="Search is starting up or unavailable right now; try again in a moment.")
        hits = [{**hit, "url": page_url(wiki, hit)} for hit in answer["hits"]]
        if hits:
            found.groups.append(Group(wiki, hits))
    found.groups.sort(key=lambda group: -max(hit.get("score", 0) for hit in group.hits))
    return found
