"""The reader: answer a query from a wiki's saved index, grouped by page.

Modes: `keyword` (BM25), `semantic` (MiniLM + FAISS) and `hybrid` (the default): reciprocal rank
fusion of the two page rankings. Loaded indexes are cached LRU and dropped when idle; each query
checks the index's generation pointer and reloads when the worker saved a newer one.
"""
from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from wikibot.errors import WikibotError
from wikibot.gitd.names import WikiName
from wikibot.gitd.store import Store

from .chunking import Chunk
from .index import WikiIndex
from .model import Model
from .storage import IndexCorrupt, IndexMissing, IndexStore

MODES = ("hybrid", "keyword", "semantic")
MAX_QUERY = 1000  # characters
CANDIDATES = 50  # chunks each ranking contributes before grouping by page
RRF_K = 60
SNIPPET_CHARS = 240


class SearchError(WikibotError):
    """A query that cannot be answered as asked (bad mode, empty query)."""


@dataclass(frozen=True)
class Hit:
    page: str  # file path in the repository
    title: str
    section: str
    anchor: str
    lines: tuple[int, int]
    snippet: str
    score: float


@dataclass(frozen=True)
class Answer:
    wiki: WikiName
    query: str
    mode: str
    indexed_sha: str | None  # the commit the answer reflects
    hits: list[Hit]

    def to_dict(self) -> dict[str, object]:
        return {"wiki": str(self.wiki), "query": self.query, "mode": self.mode, "indexed_sha": self.indexed_sha,
                "hits": [{**asdict(h), "lines": list(h.lines)} for h in self.hits]}


def snippet(text: str, query: str) -> str:
    """A short excerpt of `text`, around the first query word it contains."""
    flat = re.sub(r"\s+", " ", text).strip()
    if len(flat) <= SNIPPET_CHARS:
        return flat
    lowered = flat.lower()
    positions = [lowered.find(w) for w in re.findall(r"\w{3,}", query.lower())]
    first = min((p for p in positions if p >= 0), default=0)
    start = max(0, min(first - SNIPPET_CHARS // 3, len(flat) - SNIPPET_CHARS))
    excerpt = flat[start:start + SNIPPET_CHARS].strip()
    return ("…" if start else "") + excerpt + ("…" if start + SNIPPET_CHARS < len(flat) else "")


def _best_per_page(ranked: list[tuple[int, float]], chunks: dict[int, Chunk]) -> list[tuple[str, int, float]]:
    """(page, best chunk id, score) in rank order, one entry per page."""
    seen: dict[str, tuple[int, float]] = {}
    for chunk_id, score in ranked:
        seen.setdefault(chunks[chunk_id].page, (chunk_id, score))
    return [(page, cid, score) for page, (cid, score) in seen.items()]


def rank(index: WikiIndex, query: str, mode: str, limit: int,
         embed: Callable[[str], np.ndarray]) -> list[tuple[int, float]]:
    """(best chunk id, score) per page, best first."""
    if mode == "keyword":
        return [(cid, s) for _, cid, s in _best_per_page(index.keyword(query, CANDIDATES), index.chunks)][:limit]
    semantic = _best_per_page(index.semantic(embed(query), CANDIDATES), index.chunks)
    if mode == "semantic":
        return [(cid, s) for _, cid, s in semantic][:limit]
    keyword = _best_per_page(index.keyword(query, CANDIDATES), index.chunks)
    fused: dict[str, float] = {}
    best: dict[str, tuple[int, float]] = {}
    for ranking in (semantic, keyword):
        for position, (page, cid, _) in enumerate(ranking):
            contribution = 1.0 / (RRF_K + position + 1)
            fused[page] = fused.get(page, 0.0) + contribution
            if page not in best or contribution > best[page][1]:
                best[page] = (cid, contribution)  # the section that ranked best in either list
    order = sorted(fused, key=lambda p: -fused[p])[:limit]
    return [(best[p][0], fused[p]) for p in order]


class Searcher:
    """Loads indexes lazily, keeps at most `max_loaded`, drops those idle for `idle_seconds`.

    A missing or damaged index is reported to `on_missing` (the worker then rebuilds it); until
    the rebuild lands, a copy already in memory keeps answering.
    """

    def __init__(self, store: IndexStore, model: Model, platform: Store, max_loaded: int = 16,
                 idle_seconds: float = 600.0, on_missing: Callable[[WikiName], None] | None = None) -> None:
        self.store = store
        self.model = model
        self.platform = platform
        self.max_loaded = max_loaded
        self.idle_seconds = idle_seconds
        self.on_missing = on_missing
        self._loaded: OrderedDict[WikiName, tuple[str, WikiIndex, float]] = OrderedDict()
        self._lock = threading.Lock()

    def search(self, wiki: WikiName, query: str, mode: str = "hybrid", limit: int = 10) -> Answer:
        if mode not in MODES:
            raise SearchError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        if not query.strip():
            raise SearchError("empty query")
        if len(query) > MAX_QUERY:
            raise SearchError(f"query too long: at most {MAX_QUERY} characters")
        limit = max(1, min(limit, 50))
        index = self._index(wiki)
        if index is None:
            return Answer(wiki, query, mode, None, [])
        ranked = rank(index, query, mode, limit, lambda q: self.model.encode([q])[0])
        hits = []
        for chunk_id, score in ranked:
            c = index.chunks[chunk_id]
            hits.append(Hit(c.page, c.title, c.section, c.anchor, (c.start_line, c.end_line),
                            snippet(c.text, query), round(score, 6)))
        return Answer(wiki, query, mode, index.indexed_sha, hits)

    def adopt(self, wiki: WikiName, generation: str, index: WikiIndex) -> None:
        """Take a freshly saved index straight from the writer, so the first query after a change
        does not reload it from disk. It answers semantic queries at once; its BM25 is built right
        after on a thread of its own (keyword queries arriving meanwhile wait for that one build
        instead of starting their own)."""
        with self._lock:
            self._loaded[wiki] = (generation, index, time.monotonic())
            self._loaded.move_to_end(wiki)
            while len(self._loaded) > self.max_loaded:
                self._loaded.popitem(last=False)
        # off the writer's thread: indexing other wikis goes on while this wiki's BM25 is built
        threading.Thread(target=index.keyword_index, name=f"bm25-{wiki}", daemon=True).start()

    def evict_idle(self) -> None:
        """Drop indexes nobody asked for lately (the worker calls this on a timer)."""
        now = time.monotonic()
        with self._lock:
            for wiki in [w for w, (_, _, used) in self._loaded.items() if now - used > self.idle_seconds]:
                del self._loaded[wiki]

    def _index(self, wiki: WikiName) -> WikiIndex | None:
        record = self.platform.get_wiki(wiki)
        if record is None:
            with self._lock:
                self._loaded.pop(wiki, None)
            return None
        index = self._current(wiki)
        # an index left by an earlier wiki of the same name answers nothing for the new one
        return index if index is not None and index.wiki_created == record.created else None

    def _current(self, wiki: WikiName) -> WikiIndex | None:
        with self._lock:
            cached = self._loaded.get(wiki)
            generation = self.store.generation(wiki)
            if cached and cached[0] == generation:
                self._loaded[wiki] = (cached[0], cached[1], time.monotonic())
                self._loaded.move_to_end(wiki)
                return cached[1]
            for _ in range(2):  # a save may swap generations while this one loads: try the new one
                try:
                    index, generation = self.store.load(wiki)
                except IndexCorrupt:
                    if self.store.generation(wiki) != generation:
                        continue
                    break
                except IndexMissing:
                    break
                self._loaded[wiki] = (generation, index, time.monotonic())
                while len(self._loaded) > self.max_loaded:
                    self._loaded.popitem(last=False)
                return index
        if self.on_missing is not None:
            self.on_missing(wiki)
        return cached[1] if cached else None
