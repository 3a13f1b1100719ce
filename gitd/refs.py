"""Names every component shares for the wiki's refs."""
from __future__ import annotations

from collections.abc import Iterable

MAIN = "refs/heads/main"  # the branch that is the wiki
ZERO = "0" * 40  # git's "no object": a ref's old value when created, new value when deleted
PUSHABLE_PREFIXES = ("refs/heads/", "refs/tags/")  # refs/replace/* would rewrite what git shows


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
