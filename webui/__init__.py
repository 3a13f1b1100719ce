"""The web: the platform's pages (`/`, `/-/...`), every wiki's history in klaus
(`/OWNER/WIKI/-/history/...`) and every wiki's Otterwiki (the rest of `/OWNER/WIKI/...`).

`create_webui(core)` builds it with explicit arguments and no side effects at import; Otterwiki
and klaus are imported when first used (see `otterwiki/loader.py`, `history.py`).
"""
from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterable
from typing import Any

from wikibot.gitd.core import Core
from wikibot.gitd.http_access import Answer, StartResponse
from wikibot.gitd.names import InvalidName, WikiName
from wikibot.gitd.secrets import ensure_secret_key
from wikibot.local_state import AttemptLimiter
from wikibot.oauth.provider import WikiAuthProvider

from .dashboard import Limiters
from .pages import create_pages
from .sessions import Sessions
from .signup import Invites

HISTORY = "/-/history"  # under a wiki's prefix


class WebUI:
    """Routes `/` and `/-/…` to the platform's pages, `/OWNER/WIKI…` to the wiki's Otterwiki."""

    def __init__(self, core: Core, connectors: WikiAuthProvider) -> None:
        secret = ensure_secret_key(core.config.secret_key_path)
        self.sessions = Sessions(_derived(secret, "sessions"), core.store, core.config.signed_out_path,
                                 secure=core.config.public_url.startswith("https://"))
        cache = core.config.cache_dir
        limiters = Limiters(logins=AttemptLimiter(cache / "logins.sqlite3"),
                            signups=AttemptLimiter(cache / "signups.sqlite3", per_address=core.config.signups_per_hour,
                                                   window=3600.0),
                            passwords=AttemptLimiter(cache / "passwords.sqlite3"))
        self.pages = create_pages(core, self.sessions, limiters, Invites(_derived(secret, "invites"),
                                                                          core.config.invite_days), connectors)
        self.core = core
        self._secret = _derived(secret, "otterwiki")
        self._wikis: Any = None  # the OtterwikiHost, made on first use: importing Otterwiki takes a while
        self._history: Any = None  # the History app, made on first use (klaus imports its own world)
        self._making = threading.Lock()

    @property
    def wikis(self) -> Any:
        with self._making:
            if self._wikis is None:
                from .otterwiki import OtterwikiHost

                self._wikis = OtterwikiHost(self.core, self.sessions, secret=self._secret)
            return self._wikis

    @property
    def history(self) -> Any:
        with self._making:
            if self._history is None:
                from .history import History

                self._history = History(self.core, self.sessions)
            return self._history

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if path == "/" or path.startswith("/-/"):
            return self.pages(environ, start_response)
        if not is_wiki_path(path):  # answered without loading Otterwiki
            return Answer.text(404, "not found").send(start_response)
        rest = path.split("/", 3)[3] if path.count("/") >= 3 else ""
        if ("/" + rest + "/").startswith(HISTORY + "/"):
            return self.history(environ, start_response)
        return self.wikis(environ, start_response)


def is_wiki_path(path: str) -> bool:
    """`/OWNER/WIKI` or anything under it, for names that can exist."""
    parts = path.split("/", 3)
    if len(parts) < 3:
        return False
    try:
        WikiName(parts[1], parts[2])
    except InvalidName:
        return False
    return True


def _derived(secret: bytes, purpose: str) -> bytes:
    """A key of its own per use of the platform secret."""
    return hmac.new(secret, f"wikibot-webui:{purpose}".encode(), hashlib.sha256).digest()


def create_webui(core: Core, connectors: WikiAuthProvider) -> WebUI:
    """`connectors`: the OAuth provider MCP connectors sign in through (its consent page is here)."""
    return WebUI(core, connectors)
