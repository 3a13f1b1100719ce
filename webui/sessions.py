"""Web sign-in: a signed session cookie, CSRF tokens bound to it, and which were signed out.

The cookie holds a random session id, the signed-in user's name (None before sign-in) and when it
was issued, signed with the platform secret key (itsdangerous); HttpOnly, SameSite=Lax, Secure when
the public URL is https. Every visitor gets one, so the login form has a CSRF token too; signing in
issues a new id (no session fixation). A form's CSRF token is an HMAC of the session id: a page of
another site can neither read nor forge it. Who may do what on a wiki is decided by `gitd.acl`,
as for every other surface: this module only says who the visitor is.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.http import parse_cookie

from wikibot.gitd.records import User
from wikibot.gitd.store import Store
from wikibot.local_state import SharedFile

COOKIE = "wikibot_session"
MAX_AGE = 14 * 24 * 3600  # seconds a sign-in lasts
PROOF_SECONDS = 600  # how long a sign-in through a provider counts as proof for setting a password


@dataclass(frozen=True)
class WebSession:
    sid: str
    user: str | None = None
    issued: float = 0.0
    account: str = ""  # binds the session to the account as it was at sign-in (see `Sessions.account_mark`)
    fresh: bool = False  # made for this request: the response must set the cookie
    proved: float = 0.0  # when this browser last signed in through an identity provider (0: never)


class Sessions:
    """Reads and writes the session cookie; `user_of` checks the user still exists."""

    def __init__(self, secret: bytes, store: Store, signed_out: Path, *, secure: bool, max_age: int = MAX_AGE) -> None:
        self._signer = URLSafeTimedSerializer(secret, salt="wikibot-session")
        self._csrf_key = hmac.new(secret, b"wikibot-csrf", hashlib.sha256).digest()
        self._mark_key = hmac.new(secret, b"wikibot-account", hashlib.sha256).digest()
        self._signed_out = _SignedOut(signed_out)
        self.store = store
        self.secure = secure
        self.max_age = max_age

    def load(self, environ: dict[str, Any]) -> WebSession:
        """The request's session, or a new anonymous one when it has none (or a bad or old one)."""
        # werkzeug's parser, as Flask reads cookies: one odd cookie of another app on the host (`x=a b`,
        # JSON) must not hide ours, as it does from http.cookies
        value = parse_cookie(environ.get("HTTP_COOKIE", "")).get(COOKIE)
        if value is None:
            return self.new()
        try:
            data = self._signer.loads(value, max_age=self.max_age)
            return WebSession(sid=str(data["s"]), user=data.get("u"), issued=float(data["t"]),
                              account=str(data.get("a", "")), proved=float(data.get("p", 0.0)))
        except (BadSignature, KeyError, TypeError, ValueError):
            return self.new()

    def new(self, user: User | None = None, proved: float = 0.0) -> WebSession:
        return WebSession(sid=secrets.token_urlsafe(18), user=user.name if user else None, issued=time.time(),
                          account=self.account_mark(user) if user else "", fresh=True, proved=proved)

    @staticmethod
    def recently_proved(session: WebSession, seconds: float = PROOF_SECONDS) -> bool:
        """Whether this browser signed in through an identity provider in the last `seconds`: the proof
        an account without a known password gives before its password is set."""
        return time.time() - session.proved < seconds

    def account_mark(self, user: User) -> str:
        """Changes when the account is made again under its name or its password changes: a cookie
        from before then signs in no one."""
        return hmac.new(self._mark_key, f"{user.name}\0{user.created!r}\0{user.password_hash}".encode(),
                        hashlib.sha256).hexdigest()[:32]

    def user_of(self, session: WebSession) -> User | None:
        """The signed-in user; None if anonymous, or disabled, deleted, re-created or given a new password
        since, or if this session was signed out or all of the account's were ended after it began."""
        user = self.store.get_user(session.user) if session.user else None
        if (user is None or user.disabled or session.issued < user.sessions_after
                or not hmac.compare_digest(self.account_mark(user), session.account)
                or session.sid in self._signed_out):
            return None
        return user

    def sign_out(self, session: WebSession) -> None:
        """End this session wherever its cookie is (a copy taken from the browser signs in no one)."""
        if session.user:
            self._signed_out.add(session.sid, until=session.issued + self.max_age)

    def end_all(self, user: str) -> None:
        """End every session of `user` begun until now, in every browser (`sessions_after`)."""
        self.store.update_user(user, {"sessions_after": time.time()})

    def set_cookie(self, session: WebSession) -> tuple[str, str]:
        value = self._signer.dumps({"s": session.sid, "u": session.user, "t": session.issued, "a": session.account,
                                    "p": session.proved})
        return ("Set-Cookie", f"{COOKIE}={value}; Path=/; Max-Age={self.max_age}; HttpOnly; SameSite=Lax"
                + ("; Secure" if self.secure else ""))

    def clear_cookie(self) -> tuple[str, str]:
        return ("Set-Cookie", f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
                + ("; Secure" if self.secure else ""))

    def csrf_token(self, session: WebSession) -> str:
        return hmac.new(self._csrf_key, session.sid.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: WebSession, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), token or "")


class _SignedOut(SharedFile):
    """Session ids signed out before their cookie expires, kept until it would have."""

    SCHEMA = ("CREATE TABLE IF NOT EXISTS signed_out (sid TEXT PRIMARY KEY, until REAL NOT NULL)",
              "CREATE INDEX IF NOT EXISTS signed_out_by_time ON signed_out (until)")

    def add(self, sid: str, until: float) -> None:
        db = self._db()
        db.execute("DELETE FROM signed_out WHERE until < ?", (time.time(),))
        db.execute("INSERT OR REPLACE INTO signed_out (sid, until) VALUES (?, ?)", (sid, until))

    def __contains__(self, sid: str) -> bool:
        return self._db().execute("SELECT 1 FROM signed_out WHERE sid = ?", (sid,)).fetchone() is not None
