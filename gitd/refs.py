"""Names every component shares for the wiki's refs."""
from __future__ import annotations

MAIN = "refs/heads/main"  # the branch that is the wiki
ZERO = "0" * 40  # git's "no object": a ref's old value when created, new value when deleted
PUSHABLE_PREFIXES = ("refs/heads/", "refs/tags/")  # refs/replace/* would rewrite what git shows
