"""Who is calling which wiki: established by the endpoint, read by every tool."""
from __future__ import annotations

from dataclasses import dataclass

from wikibot.gitd.records import Role, Token, User


@dataclass(frozen=True)
class Caller:
    """Who is calling which wiki, as established by the endpoint."""
    owner: str
    slug: str
    user: User
    token: Token
    role: Role | None

    @property
    def wiki(self) -> str:
        return f"{self.owner}/{self.slug}"

    @property
    def write_refusal(self) -> str | None:
        """Why this caller may not write, or None."""
        if self.role not in ("owner", "editor"):
            return (f"you have read-only access to {self.wiki}"
                    + (f" (role {self.role})" if self.role else "")
                    + "; ask the owner to make you an editor")
        if self.token.scope != "write":
            return "this token is read-only (scope 'read'); connect with a write token to change pages"
        return None
