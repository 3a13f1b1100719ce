"""Names every component shares for the wiki's refs."""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

MAIN = "refs/heads/main"  # the branch that is the wiki
ZERO = "0" * 40  # git's "no object": a ref's old value when created, new value when deleted
PUSHABLE_PREFIXES = ("refs/heads/", "refs/tags/")  # refs/replace/* would rewrite what git shows
# A ref is a file: its name must fit the filesystem with room for ".lock" and the data dir.
MAX_REF_BYTES = 1024
MAX_REF_COMPONENT_BYTES = 200


def ref_name_problem(name: bytes) -> str | None:
    """Why a push may not create or move the ref `name` (beyond git's own rules), or None."""
    if len(name) > MAX_REF_BYTES:
        return f"ref name is {len(name)} bytes long, over the limit of {MAX_REF_BYTES} bytes"
    if any(len(part) > MAX_REF_COMPONENT_BYTES for part in name.split(b"/")):
        return f"ref name has a component over {MAX_REF_COMPONENT_BYTES} bytes"
    if name.startswith(MAIN.encode() + b"/"):
        return "main is the wiki: no ref may be named refs/heads/main/..."
    return None


def remove_empty_folders(refs_dir: Path, name: bytes) -> None:
    """Remove the empty folders a failed move of `name` may have left (or found) in its way.

    That is `name` itself if it is a tree of empty folders, and each empty folder above it,
    stopping at `refs/heads` or `refs/tags`. Only empty folders go (`rmdir`): never a ref or a lock.
    """
    parts = name.decode("utf-8", "surrogateescape").split("/")[1:]  # refs_dir is `refs`
    if len(parts) < 2:
        return
    target = refs_dir.joinpath(*parts)
    if target.is_dir() and not target.is_symlink():
        for folder, _, _ in os.walk(target, topdown=False):
            _rmdir(Path(folder))
    for depth in range(len(parts) - 1, 1, -1):  # the folders between the namespace and the ref
        if not _rmdir(refs_dir.joinpath(*parts[:depth])):
            break


def _rmdir(folder: Path) -> bool:
    try:
        folder.rmdir()
    except OSError:  # not empty, gone, not a folder
        return False
    return True


def ref_clashes(created: Iterable[bytes], existing: Iterable[bytes]) -> dict[bytes, bytes]:
    """Refs about to be created that clash with another ref, each mapped to one it clashes with.

    A ref is a file under `.git/refs`, so `refs/heads/a` and `refs/heads/a/b` cannot both exist;
    git refuses such a pair, and dulwich fails half-way through moving refs. Two created refs that
    clash are both named: neither has a better claim.
    """
    new = set(created)
    names = new | set(existing)
    under: dict[bytes, bytes] = {}  # a folder of refs -> the first ref inside it
    for name in sorted(names):
        for folder in _folders(name):
            under.setdefault(folder, name)
    clashes: dict[bytes, bytes] = {}
    for name in sorted(new):
        other = under.get(name) or next((f for f in _folders(name) if f in names), None)
        if other is not None:
            clashes[name] = other
    return clashes


def _folders(name: bytes) -> list[bytes]:
    """`refs/heads/a/b` -> `refs/heads/a`, `refs/heads`, `refs`."""
    parts = name.split(b"/")
    return [b"/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]
