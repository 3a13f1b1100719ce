"""Which pages link to which, per wiki and revision, kept warm between requests.

Backlinks need every page's links. Reading a whole wiki on each read_page would cost tens of
milliseconds per thousand pages, so each process keeps the graphs of recent revisions and moves
a wiki's latest graph forward by re-reading only the pages changed since (one `diff-tree`).
Graphs are keyed by commit id, so a cached graph can never be stale.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from wikibot.gitd.names import WikiName
from wikibot.gitd.repository import RepoError, Repository

from .wikitext import Link, links_out

MAX_GRAPHS = 64
MAX_PAGE_BYTES = 1024 * 1024  # larger pages are not scanned for links
Checkpoint = Callable[[str], None]  # raises to stop between steps (a request's Deadline.check)


@dataclass(frozen=True)
class Graph:
    revision: str
    outgoing: dict[str, tuple[Link, ...]]  # page file -> its links

    def backlinks(self, target: str) -> list[str]:
        return sorted(page for page, links in self.outgoing.items()
                      if page != target and any(link.target == target for link in links))

    def links_of(self, page: str) -> tuple[Link, ...]:
        return self.outgoing.get(page, ())


class LinkGraphs:
    """A process-wide LRU of link graphs, by (wiki, revision)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._graphs: OrderedDict[tuple[WikiName, str], Graph] = OrderedDict()
        self._latest: dict[WikiName, Graph] = {}

    def at(self, wiki: WikiName, repo: Repository, revision: str, checkpoint: Checkpoint) -> Graph:
        """The graph at `revision`; `checkpoint` is called between pages while one is built."""
        with self._lock:
            graph = self._graphs.get((wiki, revision))
            latest = self._latest.get(wiki)
        if graph is None:
            graph = ((_advance(repo, latest, revision, checkpoint) if latest else None)
                     or _build(repo, revision, checkpoint))
        with self._lock:
            self._graphs[(wiki, revision)] = graph
            self._graphs.move_to_end((wiki, revision))
            while len(self._graphs) > MAX_GRAPHS:
                self._graphs.popitem(last=False)
            self._latest[wiki] = graph
        return graph


def _parse(contents: dict[str, bytes], checkpoint: Checkpoint) -> dict[str, tuple[Link, ...]]:
    parsed = {}
    for page, text in contents.items():
        checkpoint("reading the links of the next page")
        parsed[page] = tuple(links_out(text.decode("utf-8", "replace")))
    return parsed


def _advance(repo: Repository, known: Graph, revision: str, checkpoint: Checkpoint) -> Graph | None:
    try:
        changed = {p for p in repo.changed_files(known.revision, revision) if p.endswith(".md")}
    except RepoError:  # the old revision is gone (the wiki was re-created): build from scratch
        return None
    present = repo.blobs(revision, sorted(changed))
    outgoing = {page: links for page, links in known.outgoing.items() if page not in changed}
    readable = [p for p, (_, size) in present.items() if size <= MAX_PAGE_BYTES]
    outgoing.update(_parse(repo.read_many(revision, readable), checkpoint))
    outgoing.update({page: () for page in present if page not in outgoing})
    return Graph(revision, outgoing)


def _build(repo: Repository, revision: str, checkpoint: Checkpoint) -> Graph:
    pages = [entry.path for entry in repo.entries(revision, sizes=False) if entry.path.endswith(".md")]
    outgoing = _parse(repo.read_many(revision, pages, MAX_PAGE_BYTES), checkpoint)
    outgoing.update({page: () for page in pages if page not in outgoing})
    return Graph(revision, outgoing)
