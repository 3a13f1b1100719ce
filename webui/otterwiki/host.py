"""Every wiki's Otterwiki, served from the one Otterwiki app of this process.

Process model: Otterwiki is not thread-safe, even for one wiki, and keeps its state in module-level
singletons. So each request holds one process-wide lock from re-pointing those singletons at its
wiki (repository, preferences database, config) until its answer is read: web-wiki requests of one
process run one at a time, while git, MCP and search requests keep the other threads (the note on
issue 13 has the measurements behind this choice).

Per request, in order: who the visitor is (the platform session) and what they may do (`gitd.acl`,
as every surface); the Otterwiki endpoint the URL reaches (by Otterwiki's own URL map), with those
that are the platform's business (sign-in, registration, users, mail, repository management, its
git server) answered before Otterwiki sees them, and readers' writes refused before any lock; the
body read whole and a search asked of the indexer, both before any lock; every client-sent
`x-otterwiki-*` header dropped and the platform's own set (READ always with WRITE); writes and
editors under the wiki's writer lock, always taken before Otterwiki's, and the wiki looked up again
once it is held (a deletion may have gone first: then the answer is a missing wiki's, a save's text
shown for copying, and nothing is made on disk); then, in HTML answers,
root-relative URLs rewritten into the wiki's prefix and the editor's base revision added. What runs
inside Otterwiki's app (saves, the search page, upload checks) is in `inside.py`.
"""
from __future__ import annotations

import hmac
import re
from collections import OrderedDict
from collections.abc import Iterable
from contextlib import nullcontext
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect
from werkzeug.wrappers import Request

from wikibot.config import MB, TierLimits
from wikibot.gitd.acl import Action, Verdict, decide
from wikibot.gitd.core import Core
from wikibot.gitd.http_access import StartResponse
from wikibot.gitd.locks import LockTimeout, file_lock
from wikibot.gitd.names import InvalidName, WikiName
from wikibot.gitd.records import Role, User, Wiki
from wikibot.gitd.repository import RevisionNotFound

from ..sessions import Sessions
from . import inside, loader, wsgi
from .save import BASE_FIELD
from .state import commit_author, otterwiki_address, state_file

PERMISSIONS: dict[Role | None, str] = {
    None: "READ",  # anonymous on a public wiki, or a signed-in reader without a grant
    "viewer": "READ",
    "editor": "READ,WRITE,UPLOAD",
    "owner": "READ,WRITE,UPLOAD,ADMIN",
}
ANONYMOUS = ("Anonymous", "anonymous@wikibot.invalid")
# Otterwiki's endpoints that are the platform's business: where each goes instead
TO_LOGIN = {"login", "register", "lost_password", "confirm_email", "recover_password", "request_confirmation_link"}
TO_HOME = {"logout", "settings", "user", "well_known_change_password"}
REFUSED = {"dotgit", "git_info_refs", "git_upload_pack", "git_receive_pack", "pull_webhook", "housekeeping",
           "security_check", "admin_user_management", "admin_permissions_and_registration",
           "admin_repository_management", "admin_mail_preferences", "plugin_url_request", "plugin_url_admin_request"}
OWNER_ONLY = {"admin", "admin_sidebar_preferences", "admin_content_and_editing"}
READER_POSTS = {"search"}  # the navigation bar's search box posts its form
FILES = {"get_attachment", "get_attachment_thumbnail"}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
WIKI_LOCK_TIMEOUT = 30.0  # seconds an editor or an Otterwiki write waits for a push or another write
EDITOR_REVISION = re.compile(rb'formData\.append\("revision", "([0-9a-f]*)"\)')  # Otterwiki's, in the editor
SAVE_FORM = re.compile(rb"""(<form\b[^>]*\bid=["']saveform["'][^>]*>)""")
FORCED = {  # whatever a wiki's preferences say
    "AUTH_METHOD": "PROXY_HEADER", "DISABLE_REGISTRATION": True, "GIT_WEB_SERVER": False,
    "GIT_REMOTE_PUSH_ENABLED": False, "GIT_REMOTE_PULL_ENABLED": False, "MAIL_SERVER": "",
    "EMAIL_NEEDS_CONFIRMATION": False, "SERVER_NAME": None, "DEBUG": False, "TESTING": False,
    "SESSION_COOKIE_NAME": "otterwiki_session", "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax", "WTF_CSRF_ENABLED": True,
    # every wiki shares one origin: no wiki may run HTML or script of its own in another's visitors' pages
    "HTML_EXTRA_HEAD": "", "HTML_EXTRA_BODY": "", "RENDERER_HTML_ALLOWLIST": "",
}


_Key = tuple[WikiName, float]  # a wiki's name and creation time


class _Gone(Exception):
    """The wiki was deleted (or deleted and made again) since the request's checks found it."""


class OtterwikiHost:
    """The WSGI app for `/OWNER/WIKI/...`."""

    def __init__(self, core: Core, sessions: Sessions, *, secret: bytes, max_open: int = 16) -> None:
        self.core = core
        self.sessions = sessions
        self.secret = secret
        self.max_open = max_open
        self.otterwiki = loader.load(core.config.cache_dir / "otterwiki")
        # per wiki, least recently used first; keyed by the wiki's name and creation time, so a wiki
        # deleted and made again under its name never meets the old one's repository or database
        self._repos: OrderedDict[_Key, Any] = OrderedDict()  # git.Repo
        self._engines: OrderedDict[_Key, Any] = OrderedDict()  # its Otterwiki database
        self._configs: dict[_Key, tuple[tuple, dict]] = {}
        inside.install_hooks(self.otterwiki)

    # routing and access
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        owner, slug, rest = wsgi.split(environ.get("PATH_INFO", ""))
        try:
            name = WikiName(owner, slug)
        except InvalidName:
            return wsgi.plain(start_response, 404, "not found")
        if rest == "":
            return wsgi.redirect(start_response, f"/{name}/" + wsgi.query(environ))
        if any(part in (".", "..") for part in rest.split("/")):  # no page or route has them: a traversal
            return wsgi.plain(start_response, 404, "not found")
        session = self.sessions.load(environ)
        user = self.sessions.user_of(session)
        decision = decide(self.core.store, user, None, name, Action.READ)
        if decision.verdict is Verdict.CHALLENGE:  # anonymous: a private wiki and no wiki look the same
            return self._missing(environ, start_response, name, None, rest)
        if not decision.allowed or decision.wiki is None or not self.core.repos.exists(name):
            return self._missing(environ, start_response, name, user, rest)
        method = environ.get("REQUEST_METHOD", "GET")
        endpoint, canonical = self._route(rest, method)
        if canonical is not None:  # Otterwiki's own spelling of the URL (`//` merged, a slash added)
            return wsgi.redirect(start_response, f"/{name}{canonical}" + wsgi.query(environ))
        if endpoint in TO_LOGIN:
            return wsgi.redirect(start_response, "/-/login?next=" + quote(f"/{name}/"))
        if endpoint in TO_HOME:
            return wsgi.redirect(start_response, "/")
        if endpoint in REFUSED or (endpoint in OWNER_ONLY and decision.role != "owner"):
            return wsgi.plain(start_response, 404, "not found")
        if endpoint == "draft" and method != "POST":  # Otterwiki saves (an empty) draft on GET too
            return wsgi.plain(start_response, 405, "drafts are saved with POST")
        writer = decision.role in ("owner", "editor")
        if method not in SAFE_METHODS and not writer and endpoint not in READER_POSTS:
            # answered before any lock and before the body is read: a reader cannot hold them up
            if user is None:
                return wsgi.redirect(start_response, _login(environ, name, rest))
            return wsgi.plain(start_response, 403, decision.write_refusal or "you have read-only access to this wiki")
        limits = self._limits(decision.wiki)
        try:
            body_stream = wsgi.buffered_body(environ, limits.max_repo_bytes + MB)
        except wsgi.TooLarge:
            return wsgi.plain(start_response, 413, f"too large: at most {limits.max_repo_mb} MB per request")
        environ = {**environ, "wsgi.input": body_stream}
        search = inside.ask_search(self.core, decision.wiki.name, environ, rest) if endpoint == "search" else None
        return self._serve(environ, start_response, decision.wiki, user, decision.role, rest, endpoint, limits,
                           search)

    def _route(self, rest: str, method: str) -> tuple[str | None, str | None]:
        """(the Otterwiki endpoint `rest` reaches or None, None), or (None, the path Otterwiki would
        redirect to) for another spelling of an endpoint's URL."""
        adapter = self.otterwiki.app.url_map.bind("localhost", script_name="/")
        try:
            endpoint, _ = adapter.match(rest, method)
        except RequestRedirect as moved:
            return None, "/" + moved.new_url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        except HTTPException:
            return None, None
        return endpoint, None

    def _serve(self, environ: dict[str, Any], start_response: StartResponse, wiki: Wiki, user: User | None,
               role: Role | None, rest: str, endpoint: str | None, limits: TierLimits,
               search: dict[str, Any] | None) -> Iterable[bytes]:
        inner = {key: value for key, value in environ.items() if not key.upper().startswith("HTTP_X_OTTERWIKI")}
        author = commit_author(user) if user else ANONYMOUS
        # Otterwiki keys drafts by the address it is told: one that only this account has (state.py)
        seen_as = (user.name, otterwiki_address(user)) if user else ANONYMOUS
        inner.update(SCRIPT_NAME=environ.get("SCRIPT_NAME", "") + f"/{wiki.name}", PATH_INFO=rest,
                     HTTP_X_OTTERWIKI_NAME=seen_as[0], HTTP_X_OTTERWIKI_EMAIL=seen_as[1],
                     HTTP_X_OTTERWIKI_PERMISSIONS=PERMISSIONS[role])
        method = environ.get("REQUEST_METHOD", "GET")
        editor = endpoint == "edit" or (endpoint == "view" and "edit" in parse_qs(environ.get("QUERY_STRING", ""),
                                                                                keep_blank_values=True))
        # Every write (a save, Otterwiki's own) and every editor (its text and its base must come from one
        # state of the wiki, never from between a push's ref update and its worktree sync) hold the wiki's
        # lock, always taken before Otterwiki's: the other order would let a save and an editor of one
        # process wait for each other
        locked = editor or method not in SAFE_METHODS
        otter = self.otterwiki
        try:
            with self.core.repos.lock(wiki.name, timeout=WIKI_LOCK_TIMEOUT) if locked else nullcontext(), \
                    otter.lock:
                if locked and not self.core.still_there(wiki):  # a deletion went first; nothing is read or made
                    raise _Gone()
                head = self.core.repos.head(wiki.name)
                self._point_at(wiki, limits)
                inside.current.visit = inside.Visit(self.core, wiki, user, author, seen_as, head, limits,
                                                    search)
                try:
                    status, headers, body = wsgi.run(otter.app, inner)
                finally:
                    inside.current.visit = None
                if editor:
                    base = self._base(wiki, body, head)
        except LockTimeout:
            if endpoint == "save":  # the user's text is never thrown away
                return wsgi.busy_save(start_response, environ)
            return wsgi.plain(start_response, 503, "the wiki is busy with another write; try again in a moment")
        except _Gone:
            if endpoint == "save" and method == "POST":
                return _deleted_save(start_response, environ, wiki.name)
            return self._missing(environ, start_response, wiki.name, user, rest)
        if user is None and status.startswith("403"):  # anonymous on a public wiki: sign in to do more
            return wsgi.redirect(start_response, _login(environ, wiki.name, rest))
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        if endpoint in FILES or self._is_file(wiki, rest):  # an uploaded file: served as it was, and no script
            # of it runs on this origin
            headers = [*headers, ("Content-Security-Policy", "sandbox"), ("X-Content-Type-Options", "nosniff")]
        elif content_type.startswith("text/html"):
            body = wsgi.into_prefix(body, f"/{wiki.name}/".encode())
            if editor:  # the save form remembers the revision this editor's text is based on
                field = f'<input type="hidden" name="{BASE_FIELD}" value="{base}">'.encode()
                body = SAVE_FORM.sub(lambda m: m.group(1) + field, body)
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]

    @staticmethod
    def _missing(environ: dict[str, Any], start_response: StartResponse, name: WikiName, user: User | None,
                 rest: str) -> Iterable[bytes]:
        """What a wiki that is not there answers: anonymous visitors sign in (a private wiki and no wiki
        look the same), others are told it is not found."""
        if user is None:
            return wsgi.redirect(start_response, _login(environ, name, rest))
        return wsgi.plain(start_response, 404, f"wiki {name} not found")

    def _is_file(self, wiki: Wiki, rest: str) -> bool:
        """Does `rest` name a file of the wiki other than a page (Otterwiki serves those as they are)?"""
        relative = rest.strip("/")  # PATH_INFO is decoded already
        if not relative or relative.lower().endswith(".md"):
            return False
        root = self.core.repos.path(wiki.name)
        return any((root / candidate).is_file() for candidate in (relative, relative.lower()))

    def _base(self, wiki: Wiki, editor: bytes, head: str | None) -> str:
        """The commit an editor's text is based on: the page's revision Otterwiki opened it at (a
        resumed draft's, which may be older than HEAD), resolved; "" for a page that did not exist."""
        found = EDITOR_REVISION.search(editor)
        if found is None:
            return head or ""
        if not found.group(1):
            return ""  # a new page (or a draft of one): when saved, it must still not exist
        try:
            return self.core.repo(wiki.name).resolve(found.group(1).decode())
        except RevisionNotFound:  # an ambiguous short id: HEAD, read before Otterwiki read the page
            return head or ""

    def _limits(self, wiki: Wiki) -> TierLimits:
        owner = self.core.store.get_user(wiki.owner)
        return self.core.config.limits(owner.tier if owner else "free")

    # one wiki's state in Otterwiki's singletons
    def _point_at(self, wiki: Wiki, limits: TierLimits) -> None:
        otter = self.otterwiki
        path = self.core.repos.path(wiki.name)
        storage = otter.storage
        storage.path = str(path)
        storage.repo = self._repo((wiki.name, wiki.created), path)
        otter.server.githttpserver.path = str(path)
        otter.db._app_engines[otter.app][None] = self._engine((wiki.name, wiki.created), path)
        otter.app.config.clear()
        otter.app.config.update(self._config(wiki, path, limits))

    def _repo(self, key: _Key, path: Path) -> Any:
        import git

        repo = self._repos.pop(key, None)
        if repo is None:
            try:
                repo = git.Repo(str(path))
            except (git.NoSuchPathError, git.InvalidGitRepositoryError):
                raise _Gone() from None  # deleted since the request's checks
        self._repos[key] = repo
        while len(self._repos) > self.max_open:
            _, old = self._repos.popitem(last=False)
            old.close()  # ends its `git cat-file` processes
        return repo

    def _engine(self, key: _Key, path: Path) -> Any:
        import sqlalchemy

        engine = self._engines.pop(key, None)
        if engine is None:
            state = state_file(path)
            try:
                state.parent.mkdir(exist_ok=True)  # never its parents: a deleted repository stays gone
            except FileNotFoundError:
                raise _Gone() from None
            engine = sqlalchemy.create_engine(f"sqlite:///{state}")
            otter = self.otterwiki
            otter.db._app_engines[otter.app][None] = engine
            with file_lock(state.with_name(f"{state.name}.lock")), otter.app.app_context():
                otter.db.create_all()  # two processes opening a new wiki at once: one creates the tables
        self._engines[key] = engine
        while len(self._engines) > self.max_open:
            old_key, old = self._engines.popitem(last=False)
            old.dispose()
            self._configs.pop(old_key, None)
        return engine

    def _config(self, wiki: Wiki, path: Path, limits: TierLimits) -> dict:
        """Otterwiki's config for this wiki: its defaults, the wiki's title, its preferences (read
        again whenever its database file changed, by this process or another), the platform's rules."""
        state = state_file(path)
        try:
            stat = state.stat()
            stamp: tuple = (stat.st_mtime_ns, stat.st_size, wiki.title, limits)
        except FileNotFoundError:
            stamp = (None, None, wiki.title, limits)
        cached = self._configs.get((wiki.name, wiki.created))
        if cached is not None and cached[0] == stamp:
            return cached[1]
        otter = self.otterwiki
        config = otter.app.config
        config.clear()
        config.update(otter.defaults)
        config.update(SITE_NAME=wiki.title or wiki.slug, REPOSITORY=str(path),
                      SQLALCHEMY_DATABASE_URI=f"sqlite:///{state}")
        otter.server.update_app_config()  # applies the preferences stored in the wiki's database
        key = hmac.new(self.secret, f"otterwiki:{wiki.name}".encode(), "sha256").hexdigest()  # one per wiki
        config.update(FORCED, SECRET_KEY=key, SESSION_COOKIE_PATH=f"/{wiki.name}/",
                      SESSION_COOKIE_SECURE=self.core.config.public_url.startswith("https://"),
                      MAX_CONTENT_LENGTH=limits.max_repo_bytes + MB)  # a bigger upload is cut off at once
        made = dict(config)
        self._configs[(wiki.name, wiki.created)] = (stamp, made)
        return made


def _login(environ: dict[str, Any], name: WikiName, rest: str) -> str:
    """Sign in, then come back to the URL asked for."""
    return "/-/login?next=" + quote(f"/{name}{rest}" + wsgi.query(environ))


def _deleted_save(start_response: StartResponse, environ: dict[str, Any], name: WikiName) -> Iterable[bytes]:
    """A save that reached a wiki deleted meanwhile: not found, and the user's text shown for copying."""
    text = Request(environ).form.get("content", "")
    page = (f'<!doctype html><meta charset="utf-8"><title>Not saved: the wiki was deleted</title>'
            f'<h1>Not saved: {escape(str(name))} was deleted</h1>'
            f'<p>The wiki was deleted while you were editing, so nothing was saved. Your text is below: '
            f'copy it to keep it.</p><textarea readonly rows="20" cols="90">{escape(text)}</textarea>')
    return wsgi.html_page(start_response, "404 Not Found", page, [("Cache-Control", "no-store")])
