"""Reading pages for the index with bounded memory: one page at a time, at most a budget of each.

A wiki may hold hundreds of megabytes of text (repeated lines pack to almost nothing), so the
indexer never asks git for all changed pages at once: it streams `git cat-file --batch` one
request at a time and keeps only the first `limit` bytes of each blob, discarding the rest as it
arrives.
"""
from __future__ import annotations

import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from wikibot.gitd.repos import RepoError, git_command, git_env

DISCARD_BLOCK = 1 << 16


@dataclass(frozen=True)
class PageText:
    path: str
    text: str  # at most the budget, cut at a line end when the page is longer
    size: int  # the whole blob's size in bytes
    cut: bool  # the page is longer than the budget


def _read_exactly(stream, size: int, keep: int) -> bytes:
    """Read `size` bytes from `stream`, returning the first `keep` of them."""
    kept = stream.read(min(size, keep))
    left = size - len(kept)
    while left > 0:
        block = stream.read(min(left, DISCARD_BLOCK))
        if not block:
            raise RepoError("git cat-file ended in the middle of a blob")
        left -= len(block)
    return kept


def _text(data: bytes, size: int) -> str:
    """Decode a page; a page cut at the budget loses its last, partial line."""
    if len(data) < size:
        newline = data.rfind(b"\n")
        data = data[:newline + 1] if newline > 0 else data
    return data.decode("utf-8", "replace")


def read_pages(repo: Path, commit: str, paths: Iterable[str], limit: int) -> Iterator[PageText]:
    """The pages among `paths` at `commit` (missing ones and non-blobs are skipped), each cut to
    at most `limit` bytes. One git process; one request in flight, so no pipe can fill up."""
    proc = subprocess.Popen(git_command(repo, "cat-file", "--batch"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=git_env())
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for path in paths:
            if "\n" in path:
                continue  # cannot be asked for on one line; git never lists such a page anyway
            proc.stdin.write(f"{commit}:{path}\n".encode())
            proc.stdin.flush()
            header = proc.stdout.readline()
            if not header:
                raise RepoError(f"git cat-file stopped answering in {repo}")
            if header.endswith(b" missing\n") or header.endswith(b" ambiguous\n"):
                continue
            _, kind, size_field = header.rstrip(b"\n").rsplit(b" ", 2)
            size = int(size_field)
            data = _read_exactly(proc.stdout, size, limit)
            proc.stdout.read(1)  # the newline after each object
            if kind == b"blob":
                yield PageText(path, _text(data, size), size, len(data) < size)
    finally:
        proc.stdin.close()
        proc.stdout.close()
        proc.kill()
        proc.wait()
