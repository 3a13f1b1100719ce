"""Which pages link to which, per wiki and revision, kept warm between requests.

Backlinks need every page's links. Reading a whole wiki on each read_page would cost tens of
milliseconds per thousand pages, so each process keeps the graph of the last revision it saw per
wiki and moves it forward by re-reading only the pages changed since (one `diff-tree`).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from .wiki_repo import WikiRepo
from .wikitext import Link, links_out

MAX_WIKIS = 32


@dataclass(frozen=True)
class Graph:
    revision: str
    outgoing: dict[str, tuple[Link, ...]]  # page file -> its links

    def backlinks(self, target: str) -> list[str]:
        return sorted(page for page, links in self.outgoing.items()
                      if page != target and any(link.target == target for link in links))


class LinkGraphs:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._graphs: OrderedDict[str, Graph] = OrderedDict()

    def at(self, wiki: str, repo: WikiRepo, revision: str) -> Graph:
        with self._lock:
            known = self._graphs.get(wiki)
        if known is not None and known.revision == revision:
            return known
        graph = self._advance(repo, known, revision) if known else None
        graph = graph or _build(repo, revision)
        with self._lock:
            self._graphs[wiki] = graph
            self._graphs.move_to_end(wiki)
            while len(self._graphs) > MAX_WIKIS:
                self._graphs.popitem(last=False)
        return graph

    @staticmethod
    def _advance(repo: WikiRepo, known: Graph, revision: str) -> Graph | None:
        try:
            changed = [p for p in repo.changed_files(known.revision, revision) if p.endswith(".md")]
        except Exception:  # the old revision is gone (wiki re-created): build from scratch
            return None
        contents = repo.read_many(revision, changed)
        outgoing = dict(known.outgoing)
        for page in changed:
            if page in contents:
                outgoing[page] = tuple(links_out(contents[page].decode("utf-8", "replace")))
            else:
                outgoing.pop(page, None)
        return Graph(revision, outgoing)


def _build(repo: WikiRepo, revision: str) -> Graph:
    pages = [entry.path for entry in repo.entries(revision) if entry.path.endswith(".md")]
    contents = repo.read_many(revision, pages)
    return Graph(revision, {page: tuple(links_out(text.decode("utf-8", "replace")))
                            for page, text in contents.items()})
