"""Names of users and wikis (one strict pattern, so no name can address a path outside the root)
and of paths inside a wiki (nothing unsafe or invalid on common filesystems)."""
from __future__ import annotations

import re

NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,38}")
_BAD_CHARS = re.compile(r'[<>:"|?*\\\x00-\x1f\x7f]')
_RESERVED = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?", re.IGNORECASE)
# A checkout must be able to create every path: Linux refuses paths over PATH_MAX (4096 bytes), and
# a worktree that cannot be checked out stays behind HEAD. These caps leave room for the data dir.
MAX_PATH_BYTES = 1024
MAX_PATH_COMPONENTS = 32


class InvalidName(ValueError):
    """A user or wiki name that does not match the allowed pattern."""


def is_valid_name(name: str) -> bool:
    return bool(NAME_RE.fullmatch(name))


def check_name(name: str, what: str = "name") -> str:
    if not is_valid_name(name):
        raise InvalidName(
            f"invalid {what} {name!r}: use 1-39 lowercase letters, digits or '-', starting with a letter or digit"
        )
    return name


def split_wiki(full_name: str) -> tuple[str, str]:
    """Parse `OWNER/SLUG` into its two validated parts."""
    owner, sep, slug = full_name.partition("/")
    if not sep:
        raise InvalidName(f"invalid wiki {full_name!r}: expected OWNER/SLUG")
    return check_name(owner, "user name"), check_name(slug, "wiki name")


def path_problem(path: bytes) -> str | None:
    """Why `path` (from a tree) must not enter a wiki, or None if it is fine."""
    try:
        text = path.decode("utf-8")
    except UnicodeDecodeError:
        return "is not valid UTF-8"
    if text.startswith("/"):
        return "is absolute"
    if len(path) > MAX_PATH_BYTES:
        return f"is {len(path)} bytes long, over the limit of {MAX_PATH_BYTES}"
    parts = text.split("/")
    if len(parts) > MAX_PATH_COMPONENTS:
        return f"has {len(parts)} components, over the limit of {MAX_PATH_COMPONENTS}"
    for part in parts:
        bare = part.rstrip(". ").lower()
        if part in ("", ".", ".."):
            return "has an empty, '.' or '..' component"
        if bare == ".git" or bare == "git~1":
            return "has a .git component"
        if _BAD_CHARS.search(part):
            return "has a character invalid on common filesystems"
        if part != part.rstrip(". "):
            return "has a component ending in a dot or space"
        if _RESERVED.fullmatch(part):
            return "has a name reserved on Windows"
        if len(part.encode()) > 255:
            return "has a component longer than 255 bytes"
    return None
