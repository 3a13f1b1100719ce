"""The tokens a consent gives an MCP connector, as the platform's own token records.

A grant is one user's consent for one client on one wiki. Its access token is a token record like a
personal one (hashed, listed, revocable, gone with the account), marked with the client and limited
to the wiki, so the one access layer (`gitd.http_access`) accepts it on that wiki's MCP URL and
nowhere else. Its refresh token is a record of its own (kind "refresh", never accepted as access).
Each refresh rotates both: the refresh token used is kept as "spent", and a second use of it ends the
whole grant (RFC 9700 4.14: one of the two users of that token is a thief). What a grant allows is
asked again at every refresh: the user's role now, capped by the scope consented to.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace

from wikibot.gitd.acl import Action, decide
from wikibot.gitd.core import Core
from wikibot.gitd.names import WikiName
from wikibot.gitd.records import Scope, Token, User, Wiki
from wikibot.gitd.secrets import new_token_secret, token_hash

REFRESH_PREFIX = "wbr_"
MAX_GRANTS = 50  # per user; grants whose refresh expired make room first


class GrantRefused(Exception):
    """The grant cannot be made or renewed (no access any more, too many grants)."""


@dataclass(frozen=True)
class Issued:
    access: str
    refresh: str
    scope: Scope
    expires_in: int  # seconds the access token lasts


@dataclass(frozen=True)
class GrantView:
    """One grant as the dashboard lists it."""

    id: str
    client: str
    client_name: str
    wiki: WikiName
    scope: Scope
    created: float
    last_used: float | None
    expires: float  # when the grant ends unless the connector refreshes it


class Grants:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.access_seconds = core.config.oauth_access_hours * 3600
        self.refresh_seconds = core.config.oauth_refresh_days * 86400

    def allowed_scope(self, user: User, wiki: WikiName, asked: Scope) -> tuple[Wiki, Scope] | None:
        """The wiki and the scope `user` may give a connector on it now (never more than their role
        allows, nor than `asked`); None if they cannot read it."""
        decision = decide(self.core.store, user, None, wiki, Action.READ)
        if not decision.allowed or decision.wiki is None or decision.user is None:
            return None
        return decision.wiki, ("write" if asked == "write" and decision.write_refusal is None else "read")

    def issue(self, user: str, wiki: WikiName, wiki_created: float, client: str, client_name: str, scope: Scope,
              grant: str) -> Issued:
        """A new grant's tokens, the scope capped by the user's role now."""
        holder, scope = self._check(user, wiki, scope, wiki_created)
        held = self._grants_of(holder.name)
        if len(held) >= MAX_GRANTS:
            now = time.time()
            for tokens in held.values():
                if all(t.kind != "refresh" or (t.expires or 0) <= now for t in tokens):
                    self._delete(tokens)
            if len(self._grants_of(holder.name)) >= MAX_GRANTS:
                raise GrantRefused(f"you have {MAX_GRANTS} connectors already; revoke some on your tokens page")
        return self._tokens(holder.name, wiki, client, client_name, scope, grant, time.time(), None)

    def find_refresh(self, secret: str) -> Token | None:
        """The refresh token (or spent one) `secret` is, if any."""
        if not secret.startswith(REFRESH_PREFIX):
            return None
        token = self.core.store.find_token(token_hash(secret))
        return token if token is not None and token.kind in ("refresh", "spent") else None

    def find_access(self, secret: str) -> Token | None:
        token = self.core.store.find_token(token_hash(secret))
        return token if token is not None and token.client and token.kind == "access" else None

    def rotate(self, refresh: Token, scope: Scope) -> Issued:
        """New tokens for a grant in place of `refresh` (which becomes spent), the scope asked again.
        (A wiki deleted ended its grants, so the wiki of the name is the one consented to.)"""
        if not self.core.store.delete_token(refresh.id):  # another refresh with it went first
            raise GrantRefused("this refresh token was used already")
        tokens = [t for t in self._grant(refresh.user, refresh.grant) if t.id != refresh.id]
        try:
            holder, scope = self._check(refresh.user, refresh.wikis[0], scope)
        except GrantRefused:
            self._delete(tokens)
            raise
        last_used = max((t.last_used or 0 for t in tokens), default=0) or None
        self._delete(tokens)  # its access token and the refresh token spent before
        self.core.store.add_token(replace(refresh, id=secrets.token_hex(8), kind="spent"))  # to catch its reuse
        return self._tokens(holder.name, refresh.wikis[0], refresh.client, refresh.note, scope, refresh.grant,
                            refresh.created, last_used)

    def end(self, user: str, grant: str) -> bool:
        """Revoke every token of a grant; False if it had none."""
        tokens = self._grant(user, grant)
        self._delete(tokens)
        return bool(tokens)

    def of_user(self, user: str, names: dict[str, str] | None = None) -> list[GrantView]:
        """The user's live grants, newest first."""
        views = []
        for grant, tokens in self._grants_of(user).items():
            live = [t for t in tokens if t.kind in ("access", "refresh")]
            if not live:
                continue
            access = next((t for t in live if t.kind == "access"), None)
            refresh = next((t for t in live if t.kind == "refresh"), None)
            first = live[0]
            last_used = max((t.last_used or 0 for t in live), default=0) or None
            views.append(GrantView(grant, first.client, first.note, first.wikis[0], (access or first).scope,
                                   min(t.created for t in live), last_used,
                                   max(t.expires or 0 for t in (refresh, access) if t is not None)))
        return sorted(views, key=lambda v: -v.created)

    # the records
    def _check(self, user: str, wiki: WikiName, scope: Scope,
               wiki_created: float | None = None) -> tuple[User, Scope]:
        holder = self.core.store.get_user(user)
        if holder is None or holder.disabled:
            raise GrantRefused("the account is gone or disabled")
        allowed = self.allowed_scope(holder, wiki, scope)
        if allowed is None or (wiki_created is not None and allowed[0].created != wiki_created):
            raise GrantRefused(f"{user} has no access to {wiki} any more")
        return holder, allowed[1]

    def _tokens(self, user: str, wiki: WikiName, client: str, client_name: str, scope: Scope, grant: str,
                created: float, last_used: float | None) -> Issued:
        now = time.time()
        access, refresh = new_token_secret(), REFRESH_PREFIX + secrets.token_urlsafe(32)
        common = dict(user=user, scope=scope, wikis=(wiki,), created=created, note=client_name, client=client,
                      grant=grant)
        self.core.store.add_token(Token(id=secrets.token_hex(8), hash=token_hash(access), kind="access",
                                        expires=now + self.access_seconds, last_used=last_used, **common))
        self.core.store.add_token(Token(id=secrets.token_hex(8), hash=token_hash(refresh), kind="refresh",
                                        expires=now + self.refresh_seconds, **common))
        return Issued(access, refresh, scope, self.access_seconds)

    def _grants_of(self, user: str) -> dict[str, list[Token]]:
        found: dict[str, list[Token]] = {}
        for token in self.core.store.list_tokens(user):
            if token.client:
                found.setdefault(token.grant, []).append(token)
        return found

    def _grant(self, user: str, grant: str) -> list[Token]:
        return self._grants_of(user).get(grant, [])

    def _delete(self, tokens: list[Token]) -> None:
        for token in tokens:
            self.core.store.delete_token(token.id)

