"""Names: of users and wikis (one strict pattern, so no name can address a path outside the root, and
none taken by a platform route), the wiki identity `WikiName`, and paths inside a wiki (nothing unsafe
or invalid on common filesystems)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from wikibot.errors import WikibotError

NAME_PATTERN = r"[a-z0-9][a-z0-9-]{0,38}"  # URL routes embed it; names never start with '-' or '.'
NAME_RE = re.compile(NAME_PATTERN)
# Names a user or wiki may not take, because the URL space gives them to the platform: `/NAME/...`
# is a user's (and `/OWNER/NAME/` a wiki's), so these would shadow a route or be shadowed by one.
# `/-/` (platform pages) and `/.well-known/` cannot be names at all.
RESERVED_NAMES = frozenset({
    "mcp", "api", "static", "admin", "settings", "healthz", "readyz", "metrics",  # platform routes
    "login", "logout", "signup", "register", "account", "dashboard",  # the web UI's own pages
    "oauth", "authorize", "token", "revoke", "consent", "callback", "userinfo", "jwks",  # OAuth endpoints
})
_BAD_CHARS = re.compile(r'[<>:"|?*\\\x00-\x1f\x7f]')
_RESERVED_FILES = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?", re.IGNORECASE)
# A checkout must be able to create every path: Linux refuses paths over PATH_MAX (4096 bytes), and
# a worktree that cannot be checked out stays behind HEAD. These caps leave room for the data dir.
MAX_PATH_BYTES = 1024
MAX_PATH_COMPONENTS = 32


class InvalidName(WikibotError):
    """A user or wiki name that does not match the allowed pattern, or is reserved."""


def is_valid_name(name: str) -> bool:
    return bool(NAME_RE.fullmatch(name))


def check_name(name: str, what: str = "name") -> str:
    if not is_valid_name(name):
        raise InvalidName(
            f"invalid {what} {name!r}: use 1-39 lowercase letters, digits or '-', starting with a letter or digit"
        )
    return name


def check_new_name(name: str, what: str = "name") -> str:
    """`check_name`, and not one of the RESERVED_NAMES: asked when a user or wiki is created (names
    taken before a word was reserved keep working)."""
    check_name(name, what)
    if name in RESERVED_NAMES:
        raise InvalidName(f"{what} {name!r} is reserved for the platform's own pages; choose another")
    return name


@dataclass(frozen=True, order=True)
class WikiName:
    """Which wiki: its owner and slug, both valid names. `str()` is the `OWNER/SLUG` people type."""

    owner: str
    slug: str

    def __post_init__(self) -> None:
        check_name(self.owner, "user name")
        check_name(self.slug, "wiki name")

    @classmethod
    def parse(cls, text: str) -> WikiName:
        """`OWNER/SLUG` -> WikiName; InvalidName says what is wrong."""
        owner, sep, slug = text.partition("/")
        if not sep:
            raise InvalidName(f"invalid wiki {text!r}: expected OWNER/SLUG")
        return cls(owner, slug)

    def __str__(self) -> str:
        return f"{self.owner}/{self.slug}"


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
        if _RESERVED_FILES.fullmatch(part):
            return "has a name reserved on Windows"
        if len(part.encode()) > 255:
            return "has a component longer than 255 bytes"
    return None
