"""BM25 over a wiki's chunks (bm25s, English stopwords and Snowball stemming).

bm25s has no incremental update, so the keyword index is rebuilt from the chunk texts whenever
the chunk set changes; that costs well under the embedding of even one changed page.
"""
from __future__ import annotations

import threading

import bm25s
import numpy as np
import Stemmer
from bm25s.tokenization import Tokenizer


def _tokenizer() -> Tokenizer:
    return Tokenizer(stopwords="en", stemmer=Stemmer.Stemmer("english"))


class KeywordIndex:
    def __init__(self, texts: list[str]) -> None:
        self._lock = threading.Lock()
        self.tokenizer = _tokenizer()
        self.bm25: bm25s.BM25 | None = None
        if texts:
            ids = self.tokenizer.tokenize(texts, update_vocab=True, return_as="ids", show_progress=False)
            self.bm25 = bm25s.BM25()
            self.bm25.index((ids, self.tokenizer.get_vocab_dict()), show_progress=False)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """(row, score) of the best `k` rows with a positive score."""
        if self.bm25 is None:
            return []
        # False maps new words onto known stems (it caches them, hence the lock: PyStemmer and
        # bm25s's dictionaries are not meant for concurrent callers)
        with self._lock:
            [ids] = self.tokenizer.tokenize([query], update_vocab=False, return_as="ids", show_progress=False)
        empty = self.tokenizer.word_to_id.get("")
        ids = [i for i in ids if i != empty]
        if not ids:
            return []
        scores = self.bm25.get_scores(ids)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        return [(int(i), float(scores[i])) for i in sorted(top, key=lambda i: -scores[i]) if scores[i] > 0]
