"""Who is calling which wiki: established by the endpoint, read by every tool."""
from __future__ import annotations

from dataclasses import dataclass

from wikibot.gitd.records import Role, Token, User


@dataclass(frozen=True)
class Caller:
    owner: str
    slug: str
    user: User
    token: Token
    role: Role | None
    write_refusal: str | None  # why this caller may not write (the ACL's answer), or None

    @property
    def wiki(self) -> str:
        return f"{self.owner}/{self.slug}"
