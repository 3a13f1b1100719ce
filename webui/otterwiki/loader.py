"""The one place that imports Otterwiki: its app is a set of import-time singletons, made once per
process here and then re-pointed at one wiki per request by `host.py`.

Importing `otterwiki.server` builds the Flask app, opens the repository named in its settings and
commits a starter page into it when empty, so it is pointed at a scratch repository of its own
(never a wiki). Its authentication is chosen at import: PROXY_HEADER, so the platform, not
Otterwiki, says who the visitor is.
"""
from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from wikibot.errors import InternalError

_lock = threading.Lock()
_loaded: Otterwiki | None = None


@dataclass(frozen=True)
class Otterwiki:
    """Otterwiki's process-wide objects the host re-points per request."""

    app: Any  # the Flask app
    server: ModuleType  # otterwiki.server: storage, db, githttpserver, update_app_config
    wiki: ModuleType  # otterwiki.wiki: Page
    helper: ModuleType  # otterwiki.helper: toast, url_for
    auth: ModuleType  # otterwiki.auth: has_permission
    defaults: dict[str, Any]  # app.config right after import: every wiki starts from it
    # held from re-pointing the singletons at a wiki until that request's answer is read
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def storage(self) -> Any:
        return self.server.storage

    @property
    def db(self) -> Any:
        return self.server.db


def load(scratch: Path) -> Otterwiki:
    """Import Otterwiki once per process (thread-safe); `scratch` holds its throwaway repository."""
    global _loaded
    with _lock:
        if _loaded is None:
            _loaded = _import(scratch)
        return _loaded


def _import(scratch: Path) -> Otterwiki:
    import os

    repo = scratch / "repository"
    if not (repo / ".git").is_dir():
        repo.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, capture_output=True)
    settings = scratch / "settings.py"
    settings.write_text(
        f"REPOSITORY = {str(repo)!r}\n"
        f"SECRET_KEY = {os.urandom(24).hex()!r}\n"  # replaced per request by the platform's
        "AUTH_METHOD = 'PROXY_HEADER'\n"
        "SQLALCHEMY_DATABASE_URI = 'sqlite:///:memory:'\n"
        "DISABLE_REGISTRATION = True\n"
        "LOG_LEVEL = 'WARNING'\n"
        "LOG_LEVEL_WERKZEUG = 'WARNING'\n")
    previous = os.environ.get("OTTERWIKI_SETTINGS")
    os.environ["OTTERWIKI_SETTINGS"] = str(settings)
    try:
        import otterwiki.server  # first: it imports the others in the order they need
        from otterwiki import auth, helper, wiki
    finally:
        if previous is None:
            os.environ.pop("OTTERWIKI_SETTINGS", None)
        else:
            os.environ["OTTERWIKI_SETTINGS"] = previous
    if not isinstance(auth.auth_manager, auth.ProxyHeaderAuth):
        # an AUTH_METHOD in the environment won over the settings file: Otterwiki would ask for its own logins
        raise InternalError("Otterwiki did not start with PROXY_HEADER authentication (is AUTH_METHOD set in "
                            "the environment?); the web wiki refuses to serve without it")
    app = otterwiki.server.app
    return Otterwiki(app=app, server=otterwiki.server, wiki=wiki, helper=helper, auth=auth,
                     defaults=dict(app.config))
