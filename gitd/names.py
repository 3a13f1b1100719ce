"""Names of users and wikis: one strict pattern, so no name can ever address a path outside the root."""
from __future__ import annotations

import re

NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,38}")


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
