"""One wiki's search index in memory: chunks, their vectors (FAISS, ID-mapped) and BM25.

Vectors are keyed by chunk id in an `IndexIDMap2`, so replacing one page removes and adds only
that page's ids. A chunk whose content hash is already indexed reuses its vector: edits and
renames re-embed only text that is really new.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import faiss
import numpy as np

from .chunking import Chunk
from .keyword import KeywordIndex


def new_vector_index(dim: int) -> faiss.IndexIDMap2:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))  # inner product of unit vectors: cosine


@dataclass
class WikiIndex:
    dim: int
    vectors: faiss.IndexIDMap2
    chunks: dict[int, Chunk] = field(default_factory=dict)
    indexed_sha: str | None = None
    wiki_created: float = 0.0  # tells a re-created wiki of the same name from the one indexed
    next_id: int = 0
    _keyword: tuple[KeywordIndex, list[int]] | None = field(default=None, repr=False)  # BM25, its chunk ids
    _keyword_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _by_page: dict[str, list[int]] = field(default_factory=dict, repr=False)
    _by_key: dict[str, set[int]] = field(default_factory=dict, repr=False)  # content hash -> chunk ids

    def __post_init__(self) -> None:
        for chunk_id, chunk in self.chunks.items():
            self._by_page.setdefault(chunk.page, []).append(chunk_id)
            self._by_key.setdefault(chunk.key, set()).add(chunk_id)

    @classmethod
    def empty(cls, dim: int, wiki_created: float = 0.0) -> WikiIndex:
        return cls(dim=dim, vectors=new_vector_index(dim), wiki_created=wiki_created)

    @property
    def pages(self) -> set[str]:
        return set(self._by_page)

    def known_vector(self, key: str) -> np.ndarray | None:
        """The vector already computed for a chunk with this content hash, if any (O(1))."""
        ids = self._by_key.get(key)
        return None if not ids else self.vectors.reconstruct(next(iter(ids)))

    def remove_page(self, page: str) -> None:
        ids = self._by_page.pop(page, [])
        if ids:
            self.vectors.remove_ids(np.asarray(ids, dtype=np.int64))
            for i in ids:
                key = self.chunks.pop(i).key
                self._by_key[key].discard(i)
                if not self._by_key[key]:
                    del self._by_key[key]
            self._keyword = None

    def set_page(self, page: str, chunks: list[Chunk], vectors: np.ndarray) -> None:
        """Replace everything indexed for `page` by `chunks` with their `vectors` (one row each)."""
        self.remove_page(page)
        if not chunks:
            return
        ids = np.arange(self.next_id, self.next_id + len(chunks), dtype=np.int64)
        self.vectors.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self.chunks.update(zip(ids.tolist(), chunks, strict=True))
        for chunk_id, chunk in zip(ids.tolist(), chunks, strict=True):
            self._by_key.setdefault(chunk.key, set()).add(chunk_id)
        self._by_page[page] = ids.tolist()
        self.next_id += len(chunks)
        self._keyword = None

    def semantic(self, query_vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if not self.chunks:
            return []
        scores, ids = self.vectors.search(query_vector.reshape(1, -1).astype(np.float32), min(k, len(self.chunks)))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != -1]

    def keyword(self, query: str, k: int) -> list[tuple[int, float]]:
        bm25, ids = self.keyword_index()
        return [(ids[row], score) for row, score in bm25.search(query, k)]

    def keyword_index(self) -> tuple[KeywordIndex, list[int]]:
        """BM25 over the chunks, built on first use after a change, once even if queries race."""
        built = self._keyword
        if built is None:
            with self._keyword_lock:
                built = self._keyword
                if built is None:
                    ids = sorted(self.chunks)
                    built = self._keyword = (KeywordIndex([self.chunks[i].embed_text for i in ids]), ids)
        return built
