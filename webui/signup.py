"""Who may make an account in the browser: `[accounts] signup` and the invite links admins make.

An invite is a link, not a record: its token is signed with the platform secret (itsdangerous), so
it cannot be forged or altered, carries when it was made (it expires after `invite_days`), and a
random id that the store marks spent in the same write that creates the account (single use,
even when two people open it at once).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from wikibot.config import Config
from wikibot.errors import WikibotError
from wikibot.gitd.store import Store


class BadInvite(WikibotError):
    """The invite link is malformed, altered, expired or spent."""


@dataclass(frozen=True)
class Invite:
    id: str
    by: str  # the admin who made it
    tier: str = "free"


class Invites:
    def __init__(self, secret: bytes, days: int) -> None:
        self._signer = URLSafeTimedSerializer(secret, salt="wikibot-invite")
        self.max_age = days * 86400

    def make(self, by: str, tier: str = "free") -> str:
        """A new invite's token (the part of the link after `/-/signup/`)."""
        return self._signer.dumps({"i": secrets.token_urlsafe(12), "b": by, "t": tier})

    def open(self, token: str, store: Store) -> Invite:
        try:
            data = self._signer.loads(token, max_age=self.max_age)
            invite = Invite(id=str(data["i"]), by=str(data["b"]), tier=str(data.get("t", "free")))
        except SignatureExpired:
            raise BadInvite("this invite link has expired: ask for a new one") from None
        except (BadSignature, KeyError, TypeError):
            raise BadInvite("this is not a valid invite link: check that it was copied whole") from None
        if store.find_used_invite(invite.id) is not None:
            raise BadInvite("this invite link has been used already")
        admin = store.get_user(invite.by)
        if admin is None or not admin.admin or admin.disabled:  # an invite is worth what its maker still is
            raise BadInvite("this invite link was made by someone who is no longer an administrator: ask for a new "
                            "one")
        return invite


def signup_refusal(config: Config, invite: Invite | None) -> str | None:
    """Why an account cannot be made now (None: it can)."""
    if config.signup == "open" or (config.signup == "invite" and invite is not None):
        return None
    if config.signup == "invite":
        return "Accounts are made with an invite link: ask an administrator for one."
    return "Sign-up is closed on this platform: an administrator makes accounts."
