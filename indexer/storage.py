"""Index persistence: each save writes a new generation folder, then swaps one pointer file.

Readers follow `CURRENT` to a complete generation, so they never see half-written files, and
notice a newer generation by re-reading one small file. Every file's checksum is recorded in the
generation's `meta.json`; a missing or damaged file is reported as `IndexCorrupt` so the caller
rebuilds instead of crashing. Only the worker writes (under a per-wiki file lock).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import faiss

from wikibot.errors import InternalError, NotFound
from wikibot.gitd.locks import file_lock
from wikibot.gitd.names import WikiName, is_valid_name

from .chunking import Chunk
from .index import WikiIndex

FORMAT = 1
KEEP_SECONDS = 60.0  # older generations stay this long: a reader may still be loading one


class IndexMissing(NotFound):
    """No index was ever saved for this wiki."""


class IndexCorrupt(InternalError):
    """The saved index is unreadable or does not match its checksums."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class IndexStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, wiki: WikiName) -> Path:
        return self.root / wiki.owner / wiki.slug

    @contextmanager
    def writer(self, wiki: WikiName) -> Iterator[None]:
        """The wiki's index lock. Released with no index left (dropped, or never saved), it takes its file
        with it, and the owner's folder once empty (gitd/locks.py says why the lock stays exclusive)."""
        with file_lock(self.root / wiki.owner / f".{wiki.slug}.lock") as held:
            try:
                yield
            finally:
                if not self.path(wiki).exists():
                    held.remove()

    def generation(self, wiki: WikiName) -> str | None:
        """The name of the current generation (cheap: one small file), or None."""
        try:
            return (self.path(wiki) / "CURRENT").read_text().strip() or None
        except FileNotFoundError:
            return None

    def indexed_sha(self, wiki: WikiName) -> str | None:
        """The commit the current generation reflects, from its small meta file (no vectors read)."""
        generation = self.generation(wiki)
        if generation is None:
            raise IndexMissing(f"no index of {wiki} was saved")
        try:
            return json.loads((self.path(wiki) / generation / "meta.json").read_text())["indexed_sha"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorrupt(f"{wiki}: {generation} is unreadable: {exc}") from None

    def load(self, wiki: WikiName) -> tuple[WikiIndex, str]:
        """The current index and its generation name."""
        generation = self.generation(wiki)
        if generation is None:
            raise IndexMissing(f"no index of {wiki} was saved")
        folder = self.path(wiki) / generation
        try:
            meta = json.loads((folder / "meta.json").read_text())
            if meta.get("format") != FORMAT:
                raise IndexCorrupt(f"{wiki}: index format {meta.get('format')!r}, expected {FORMAT}")
            for name, checksum in meta["files"].items():
                if _sha256(folder / name) != checksum:
                    raise IndexCorrupt(f"{wiki}: {generation}/{name} does not match its checksum")
            chunks_doc = json.loads((folder / "chunks.json").read_text())
            vectors = faiss.read_index(str(folder / "vectors.faiss"))
            chunks = {int(i): Chunk(**{**c, "tags": tuple(c.get("tags", ()))}) for i, c in chunks_doc.items()}
        except IndexCorrupt:
            raise
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise IndexCorrupt(f"{wiki}: {generation} is unreadable: {exc}") from None
        if vectors.ntotal != len(chunks):
            raise IndexCorrupt(f"{wiki}: {vectors.ntotal} vectors for {len(chunks)} chunks")
        index = WikiIndex(dim=meta["dim"], vectors=vectors, chunks=chunks, indexed_sha=meta["indexed_sha"],
                          wiki_created=meta["wiki_created"], next_id=meta["next_id"])
        return index, generation

    def save(self, wiki: WikiName, index: WikiIndex) -> str:
        """Write `index` as a new generation and make it current; returns its name."""
        base = self.path(wiki)
        base.mkdir(parents=True, exist_ok=True)
        generation = f"gen-{time.time_ns()}"
        folder = base / f".{generation}.tmp"
        folder.mkdir()
        try:
            chunks = {str(i): asdict(c) for i, c in index.chunks.items()}
            _write_synced(folder / "chunks.json", json.dumps(chunks).encode())
            faiss.write_index(index.vectors, str(folder / "vectors.faiss"))
            meta = {"format": FORMAT, "indexed_sha": index.indexed_sha, "dim": index.dim,
                    "wiki_created": index.wiki_created, "next_id": index.next_id, "chunks": len(chunks),
                    "files": {name: _sha256(folder / name) for name in ("chunks.json", "vectors.faiss")}}
            _write_synced(folder / "meta.json", json.dumps(meta, indent=1).encode())
            os.replace(folder, base / generation)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        pointer = base / ".CURRENT.tmp"
        _write_synced(pointer, generation.encode())
        os.replace(pointer, base / "CURRENT")
        self._prune(base, generation)
        return generation

    def _prune(self, base: Path, current: str) -> None:
        """Remove superseded generations (and crashed writers' temp folders) once no reader can need them."""
        now = time.time()
        for old in [*base.glob("gen-*"), *base.glob(".gen-*.tmp")]:
            try:
                idle = now - old.stat().st_mtime
            except FileNotFoundError:
                continue
            if old.name != current and idle > KEEP_SECONDS:
                shutil.rmtree(old, ignore_errors=True)

    def drop(self, wiki: WikiName) -> None:
        """Remove the wiki's index; call it under `writer`, whose release then removes the lock file too."""
        shutil.rmtree(self.path(wiki), ignore_errors=True)

    def wikis(self) -> list[WikiName]:
        """The wikis with a saved index. Folders whose names no wiki can have (an admin's `notes.bak`)
        are none of the store's business: left alone."""
        if not self.root.is_dir():
            return []
        return sorted(WikiName(p.parent.name, p.name) for p in self.root.glob("*/*")
                      if is_valid_name(p.parent.name) and is_valid_name(p.name) and (p / "CURRENT").exists())
