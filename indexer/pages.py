"""Reading pages for the index with bounded memory: one page at a time, at most a budget of each.

A wiki may hold hundreds of megabytes of text (repeated lines pack to almost nothing), so the
indexer never asks for all changed pages at once: the repository streams them one by one and
keeps only the first `limit` bytes of each (`Repository.read_prefixes`).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass

from wikibot.gitd.repository import Repository


@dataclass(frozen=True)
class PageText:
    path: str
    text: str  # at most the budget, cut at a line end when the page is longer
    size: int  # the whole blob's size in bytes
    cut: bool  # the page is longer than the budget


def _text(data: bytes, size: int) -> str:
    """Decode a page; a page cut at the budget loses its last, partial line."""
    if len(data) < size:
        newline = data.rfind(b"\n")
        data = data[:newline + 1] if newline > 0 else data
    return data.decode("utf-8", "replace")


def read_pages(repo: Repository, commit: str, paths: Iterable[str], limit: int) -> Iterator[PageText]:
    """The pages among `paths` at `commit` (missing ones and non-blobs are skipped), each cut to
    at most `limit` bytes."""
    with closing(repo.read_prefixes(commit, list(paths), limit)) as blobs:
        for blob in blobs:
            yield PageText(blob.path, _text(blob.data, blob.size), blob.size, blob.cut)
