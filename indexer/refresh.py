"""The writer: bring a wiki's index to its HEAD, re-embedding only what changed.

It diffs `indexed_sha..HEAD` (so a lost or repeated event heals itself), reads the changed
pages, reuses vectors of chunks whose content is already indexed, embeds the rest in one batch,
and saves a new generation. An index that is missing, corrupt, or from an earlier wiki of the
same name is rebuilt from the repository.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wikibot.gitd.core import Core
from wikibot.gitd.refs import MAIN
from wikibot.gitd.repos import RepoError, git, page_files, read_files
from wikibot.hooks.events import Event

from .chunking import Chunk, Chunker
from .index import WikiIndex
from .model import Model
from .storage import IndexCorrupt, IndexMissing, IndexStore

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]  # (chunks embedded so far, chunks to embed)
ENCODE_SLICE = 256  # progress granularity; each slice is still batched by the model


@dataclass(frozen=True)
class RefreshResult:
    wiki: str
    indexed_sha: str | None
    pages_changed: int = 0
    pages_deleted: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    seconds: float = 0.0
    rebuilt: bool = False
    chunks: int = 0  # in the index after the refresh


def read_pages(repo: Path, commit: str, paths: list[str]) -> dict[str, str]:
    """Contents of `paths` at `commit` as text, read in one `git cat-file --batch`."""
    return {path: body.decode("utf-8", "replace") for path, body in read_files(repo, commit, paths).items()}


class Indexer:
    def __init__(self, core: Core, store: IndexStore, model: Model,
                 on_saved: Callable[[str, str, WikiIndex], None] | None = None) -> None:
        self.core = core
        self.store = store
        self.model = model
        self.on_saved = on_saved  # the worker's searcher adopts each new index (never mutated after)
        self.chunker = Chunker(model, model.max_content_tokens)

    def __call__(self, event: Event) -> None:
        """Event consumer: any change to a wiki's main branch brings its index up to date."""
        if event.ref == MAIN:
            self.refresh(event.wiki)

    def reconcile(self) -> list[RefreshResult]:
        """Refresh every wiki whose HEAD differs from its indexed commit, and drop orphan indexes.

        Runs at worker start and periodically, so a refresh that failed (and was dead-lettered)
        heals even if no further change comes. One wiki's failure does not stop the others.
        """
        wikis = [w.full_name for w in self.core.store.list_wikis()]
        results = []
        for wiki in wikis:
            try:
                results.append(self.refresh(wiki))
            except Exception:
                log.exception("could not refresh the index of %s; retried at the next change or reconcile", wiki)
        for orphan in set(self.store.wikis()) - set(wikis):
            # re-checked now, under the index's lock: the list above may predate a wiki created since
            owner, slug = orphan.split("/", 1)
            with self.store.writer(orphan):
                if self.core.store.get_wiki(owner, slug) is None:
                    self.store.drop(orphan)
        return [r for r in results if r.pages_changed or r.pages_deleted or r.rebuilt]

    def refresh(self, wiki: str, *, from_scratch: bool = False, progress: Progress | None = None) -> RefreshResult:
        started = time.perf_counter()
        owner, slug = wiki.split("/", 1)
        record = self.core.store.get_wiki(owner, slug)
        if record is None or not self.core.repos.exists(owner, slug):
            with self.store.writer(wiki):
                self.store.drop(wiki)
            return RefreshResult(wiki, None)
        with self.store.writer(wiki):
            index = None if from_scratch else self._load(wiki, record.created)
            rebuilt = index is None
            if index is None:
                index = WikiIndex.empty(self.model.dimension, record.created)
            head = self.core.repos.head(owner, slug)
            if index.indexed_sha == head and not rebuilt:
                return RefreshResult(wiki, head, chunks=len(index.chunks))
            repo = self.core.repos.path(owner, slug)
            changed, deleted = self._changes(repo, index, head)
            pages = read_pages(repo, head, changed) if head else {}
            chunks = {page: self._chunk(wiki, page, text) for page, text in pages.items()}
            embedded, reused = self._apply(index, chunks, deleted, progress)
            index.indexed_sha = head
            generation = self.store.save(wiki, index)
        if self.on_saved is not None:
            self.on_saved(wiki, generation, index)
        result = RefreshResult(wiki, head, len(changed), len(deleted), embedded, reused,
                               time.perf_counter() - started, rebuilt, len(index.chunks))
        log.info("indexed %s at %s: %d page(s) changed, %d deleted, %d chunk(s) embedded, %d reused, %.2fs",
                 wiki, (head or "empty")[:12], result.pages_changed, result.pages_deleted, embedded, reused,
                 result.seconds)
        return result

    def _chunk(self, wiki: str, page: str, text: str) -> list[Chunk]:
        """One page's chunks; a page the chunker cannot handle is left out, never the whole wiki."""
        try:
            return self.chunker.chunk(page, text)
        except Exception:
            log.exception("%s: could not chunk %s; it is left out of the index until it changes", wiki, page)
            return []

    def _load(self, wiki: str, created: float) -> WikiIndex | None:
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
    def _changes(repo: Path, index: WikiIndex, head: str | None) -> tuple[list[str], list[str]]:
        """(pages to (re)index, pages to drop) between what is indexed and `head`."""
        if head is None:
            return [], sorted(index.pages)
        base = index.indexed_sha
        if base is not None:
            try:
                git(repo, "cat-file", "-e", f"{base}^{{commit}}")
            except RepoError:
                base = None  # history we no longer have: compare against everything
        if base is None:
            current = sorted(page_files(repo, head))
            return current, sorted(index.pages - set(current))
        out = git(repo, "diff", "--name-status", "-z", "--no-renames", base, head, "--", "*.md").split("\0")
        changed, deleted = [], []
        for status, path in zip(out[0::2], out[1::2], strict=False):
            if path.endswith(".md"):
                (deleted if status == "D" else changed).append(path)
        return changed, deleted

    def _apply(self, index: WikiIndex, chunks: dict[str, list[Chunk]], deleted: list[str],
               progress: Progress | None) -> tuple[int, int]:
        """Embed what is new, then swap pages in; returns (embedded, reused) chunk counts."""
        wanted = {c.key: c for page_chunks in chunks.values() for c in page_chunks}
        vectors = index.known_vectors(set(wanted))
        missing = [wanted[k] for k in wanted if k not in vectors]
        for start in range(0, len(missing), ENCODE_SLICE):
            part = missing[start:start + ENCODE_SLICE]
            for chunk, vector in zip(part, self.model.encode([c.embed_text for c in part]), strict=True):
                vectors[chunk.key] = vector
            if progress:
                progress(min(start + ENCODE_SLICE, len(missing)), len(missing))
        for page in deleted:
            index.remove_page(page)
        for page, page_chunks in chunks.items():
            rows = np.stack([vectors[c.key] for c in page_chunks]) if page_chunks else np.zeros((0, index.dim))
            index.set_page(page, page_chunks, rows)
        fresh = {c.key for c in missing}
        reused = sum(1 for page_chunks in chunks.values() for c in page_chunks if c.key not in fresh)
        return len(missing), reused
