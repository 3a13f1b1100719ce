"""The writer: bring a wiki's index to its HEAD, re-embedding only what changed.

It diffs `indexed_sha..HEAD` (so a lost or repeated event heals itself), reuses vectors of chunks
whose content is already indexed, and saves a new generation. An index that is missing, corrupt,
or from an earlier wiki of the same name is rebuilt from the repository.

A refresh is a `RefreshJob` done in slices (a few pages read, at most `slice_chunks` chunks
embedded), so the worker's scheduler can serve other wikis between slices, and memory holds one
slice of page text, never the whole change. A page longer than the budget is indexed as far as
the budget allows (its first `PAGE_TEXT_BUDGET` bytes, at most `MAX_CHUNKS_PER_PAGE` chunks).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field

import numpy as np

from wikibot.gitd.core import Core
from wikibot.gitd.names import WikiName
from wikibot.gitd.repository import Repository

from .chunking import Chunk, Chunker
from .index import WikiIndex
from .model import Model
from .pages import read_pages
from .storage import IndexCorrupt, IndexMissing, IndexStore

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]  # (pages done, pages to index)
PAGE_TEXT_BUDGET = 512 * 1024  # bytes of one page that are read and chunked
MAX_CHUNKS_PER_PAGE = 256  # ~5 s of embedding here: one page never holds the others up for long
SLICE_PAGES = 32  # pages read per slice
SLICE_BYTES = 4 * 1024 * 1024  # page text read per slice
SLICE_CHUNKS = 32  # chunks embedded per slice in the worker (one model batch, ~0.7 s on 2 cores)
ALONE_SLICE_CHUNKS = 256  # a refresh run on its own (a rebuild from the CLI): progress in larger steps
SAVE_EVERY = 60.0  # seconds: a long refresh saves what it has, so its first pages become findable


@dataclass(frozen=True)
class RefreshResult:
    wiki: WikiName
    indexed_sha: str | None
    pages_changed: int = 0
    pages_deleted: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    seconds: float = 0.0
    rebuilt: bool = False
    chunks: int = 0  # in the index after the refresh
    pages_cut: int = 0  # pages indexed only up to the budget


@dataclass
class _Pending:
    """A page chunked, waiting for some of its chunks' vectors."""

    page: str
    chunks: list[Chunk]


@dataclass
class RefreshJob:
    """One wiki's refresh from `index` (as loaded) to `head`; `step()` does one slice."""

    indexer: Indexer
    wiki: WikiName
    created: float
    index: WikiIndex
    head: str | None
    changed: list[str]
    deleted: list[str]
    rebuilt: bool
    progress: Progress | None = None
    started: float = field(default_factory=time.perf_counter)
    result: RefreshResult | None = None
    _next_page: int = 0
    _pending: list[_Pending] = field(default_factory=list)
    _todo: list[Chunk] = field(default_factory=list)  # chunks to embed, one per content hash
    _vectors: dict[str, np.ndarray] = field(default_factory=dict)  # for pending pages' chunks
    _embedded: int = 0
    _reused: int = 0
    _cut: int = 0
    _saved_at: float = field(default_factory=time.monotonic)

    @property
    def position(self) -> str:
        """How far the job is, in pages ("120/1000")."""
        return f"{self._next_page - len(self._pending)}/{len(self.changed)}"

    def step(self, slice_chunks: int = SLICE_CHUNKS) -> bool:
        """Read and chunk a few pages, embed at most `slice_chunks` chunks, index the pages whose
        vectors are all known; save when everything is done. Returns True when the job is done."""
        if self.result is not None:
            return True
        if not self._todo:
            self._read_some(slice_chunks)
        part, self._todo = self._todo[:slice_chunks], self._todo[slice_chunks:]
        if part:
            for chunk, vector in zip(part, self.indexer.model.encode([c.embed_text for c in part]), strict=True):
                self._vectors[chunk.key] = vector
            self._embedded += len(part)
        self._index_ready()
        if self._next_page < len(self.changed) or self._pending:
            if self.progress:
                self.progress(self._next_page - len(self._pending), len(self.changed))
            if time.monotonic() - self._saved_at > SAVE_EVERY:
                self._save(final=False)
            return False
        for page in self.deleted:  # last, so a renamed page could reuse the old path's vectors
            self.index.remove_page(page)
        self.index.indexed_sha = self.head
        self._save(final=True)
        if self.progress:
            self.progress(len(self.changed), len(self.changed))
        return True

    def _read_some(self, slice_chunks: int) -> None:
        """Chunk the next pages until the slice has enough to embed or enough text was read."""
        first = self._next_page
        paths = self.changed[first:first + SLICE_PAGES]
        if not paths or self.head is None:
            return
        position = {path: first + i for i, path in enumerate(paths)}
        repo = self.indexer.core.repo(self.wiki)
        read = 0
        with closing(read_pages(repo, self.head, paths, PAGE_TEXT_BUDGET)) as pages:
            for page in pages:
                self._chunk(page.path, page.text, page.cut, page.size)
                read += len(page.text)
                if read >= SLICE_BYTES or len(self._todo) >= slice_chunks:
                    self._next_page = position[page.path] + 1
                    return
        self._next_page = first + len(paths)

    def _chunk(self, page: str, text: str, cut: bool, size: int) -> None:
        chunks = self.indexer.chunk(self.wiki, page, text)
        if cut or len(chunks) > MAX_CHUNKS_PER_PAGE:
            self._cut += 1
            log.warning("%s: %s is %.1f MB; only its first %d chunk(s) are indexed", self.wiki, page,
                        size / 2**20, min(len(chunks), MAX_CHUNKS_PER_PAGE))
            chunks = chunks[:MAX_CHUNKS_PER_PAGE]
        todo = {c.key for c in self._todo}
        for chunk in chunks:
            if chunk.key in self._vectors or chunk.key in todo:
                continue
            known = self.index.known_vector(chunk.key)
            if known is not None:
                self._vectors[chunk.key] = known
                self._reused += 1
            else:
                self._todo.append(chunk)
                todo.add(chunk.key)
        self._pending.append(_Pending(page, chunks))

    def _index_ready(self) -> None:
        ready = [p for p in self._pending if all(c.key in self._vectors for c in p.chunks)]
        for pending in ready:
            rows = (np.stack([self._vectors[c.key] for c in pending.chunks]) if pending.chunks
                    else np.zeros((0, self.index.dim), dtype=np.float32))
            self.index.set_page(pending.page, pending.chunks, rows)
        if ready:
            waiting = {c.key for p in self._pending if p not in ready for c in p.chunks}
            self._pending = [p for p in self._pending if p not in ready]
            self._vectors = {k: v for k, v in self._vectors.items() if k in waiting}

    def _save(self, final: bool) -> None:
        """Save under the index lock, unless the wiki was deleted (or re-created) meanwhile."""
        store, platform = self.indexer.store, self.indexer.core.store
        with store.writer(self.wiki):
            record = platform.get_wiki(self.wiki)
            if record is None or record.created != self.created:
                store.drop(self.wiki)
                self.result = RefreshResult(self.wiki, None)
                return
            generation = store.save(self.wiki, self.index)
        self._saved_at = time.monotonic()
        if not final:
            log.info("indexed %s: %d of %d page(s) so far", self.wiki, self._next_page, len(self.changed))
            return
        if self.indexer.on_saved is not None:
            self.indexer.on_saved(self.wiki, generation, self.index)
        self.result = RefreshResult(self.wiki, self.head, len(self.changed), len(self.deleted), self._embedded,
                                    self._reused, time.perf_counter() - self.started, self.rebuilt,
                                    len(self.index.chunks), self._cut)
        log.info("indexed %s at %s: %d page(s) changed, %d deleted, %d chunk(s) embedded, %d reused, %.2fs",
                 self.wiki, (self.head or "empty")[:12], len(self.changed), len(self.deleted), self._embedded,
                 self._reused, self.result.seconds)


class Indexer:
    def __init__(self, core: Core, store: IndexStore, model: Model,
                 on_saved: Callable[[WikiName, str, WikiIndex], None] | None = None) -> None:
        self.core = core
        self.store = store
        self.model = model
        self.on_saved = on_saved  # the worker's searcher adopts each new index (never mutated after)
        self.chunker = Chunker(model, model.max_content_tokens)

    def stale(self) -> list[WikiName]:
        """Wikis whose HEAD differs from their indexed commit (read from each index's small meta
        file), after dropping orphan indexes. The worker runs this at start and periodically, so
        a refresh that failed heals even if no further change comes."""
        wikis = self.core.store.list_wikis()
        names = {w.name for w in wikis}
        for orphan in set(self.store.wikis()) - names:
            # re-checked now, under the index's lock: the list above may predate a wiki created since
            with self.store.writer(orphan):
                if self.core.store.get_wiki(orphan) is None:
                    self.store.drop(orphan)
        stale = []
        for wiki in wikis:
            head = self.core.repos.head(wiki.name)
            try:
                if self.store.indexed_sha(wiki.name) != head:
                    stale.append(wiki.name)
            except IndexMissing:
                if head is not None:  # a wiki with no commit yet has nothing to index
                    stale.append(wiki.name)
            except IndexCorrupt:
                stale.append(wiki.name)
        return stale

    def start(self, wiki: WikiName, *, from_scratch: bool = False, progress: Progress | None = None) -> RefreshJob:
        """Plan a refresh: what changed between the saved index and HEAD. Cheap: no page is read."""
        record = self.core.store.get_wiki(wiki)
        if record is None or not self.core.repos.exists(wiki):
            with self.store.writer(wiki):
                self.store.drop(wiki)
            job = RefreshJob(self, wiki, 0.0, WikiIndex.empty(self.model.dimension), None, [], [], False)
            job.result = RefreshResult(wiki, None)
            return job
        index = None if from_scratch else self._load(wiki, record.created)
        rebuilt = index is None
        if index is None:
            index = WikiIndex.empty(self.model.dimension, record.created)
        head = self.core.repos.head(wiki)
        job = RefreshJob(self, wiki, record.created, index, head, [], [], rebuilt, progress)
        if index.indexed_sha == head and not rebuilt:
            job.result = RefreshResult(wiki, head, chunks=len(index.chunks))
            return job
        job.changed, job.deleted = self._changes(self.core.repo(wiki), index, head)
        return job

    def refresh(self, wiki: WikiName, *, from_scratch: bool = False, progress: Progress | None = None) -> RefreshResult:
        """Run a whole refresh now, in this thread (the CLI, tests)."""
        job = self.start(wiki, from_scratch=from_scratch, progress=progress)
        while not job.step(ALONE_SLICE_CHUNKS):
            pass
        assert job.result is not None
        return job.result

    def chunk(self, wiki: WikiName, page: str, text: str) -> list[Chunk]:
        """One page's chunks; a page the chunker cannot handle is left out, never the whole wiki."""
        try:
            return self.chunker.chunk(page, text)
        except Exception:
            log.exception("%s: could not chunk %s; it is left out of the index until it changes", wiki, page)
            return []

    def _load(self, wiki: WikiName, created: float) -> WikiIndex | None:
        try:
            index, _ = self.store.load(wiki)
        except IndexMissing:
            return None
        except IndexCorrupt as exc:
            log.warning("rebuilding the index of %s: %s", wiki, exc)
            return None
        if index.wiki_created != created or index.dim != self.model.dimension:
            return None  # a deleted and re-created wiki, or another model: start over
        return index

    @staticmethod
    def _changes(repo: Repository, index: WikiIndex, head: str | None) -> tuple[list[str], list[str]]:
        """(pages to (re)index, pages to drop) between what is indexed and `head`."""
        if head is None:
            return [], sorted(index.pages)
        base = index.indexed_sha
        if base is None or not repo.has_commit(base):  # history we no longer have: compare against everything
            current = sorted(repo.page_files(head))
            return current, sorted(index.pages - set(current))
        return repo.changed_pages(base, head)
