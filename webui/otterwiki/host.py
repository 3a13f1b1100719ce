"""Every wiki's Otterwiki, served from the one Otterwiki app of this process.

Process model: Otterwiki is not thread-safe, even for one wiki, and keeps its state in module-level
singletons. So each request holds one process-wide lock from re-pointing those singletons at its
wiki (repository, preferences database, config) until its response is complete: web-wiki requests
of one process run one at a time, while git, MCP and search requests keep the other threads (see
the note on issue 13 for the measurements behind this choice).

Per request, in order: who the visitor is (the platform session), what they may do (`gitd.acl`, as
every surface), Otterwiki pages that are the platform's business (sign-in, registration, users,
mail, repository management, its git server) answered or refused before Otterwiki sees them,
every client-sent `x-otterwiki-*` header dropped and the platform's own set (READ always with
WRITE), writes under the wiki's writer lock, saves through `save.py`, and root-relative URLs in
the HTML rewritten into the wiki's prefix.
"""
from __future__ import annotations

import hmac
import io
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, quote, unquote

from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect
from werkzeug.wrappers import Request

from wikibot.config import MB, TierLimits
from wikibot.gitd.acl import Action, Verdict, decide
from wikibot.gitd.core import Core
from wikibot.gitd.http_access import StartResponse
from wikibot.gitd.locks import LockTimeout, file_lock
from wikibot.gitd.names import InvalidName, WikiName, path_problem
from wikibot.gitd.records import Role, User, Wiki
from wikibot.gitd.repository import RevisionNotFound

from ..sessions import Sessions
from . import loader
from .save import BASE_FIELD, SaveRequest, normalise, save_page

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
URL_ATTRIBUTE = re.compile(rb"""(\s(?:href|src|action|formaction|data-[\w-]+)=["'])/(?!/)""")
EDITOR_REVISION = re.compile(rb'formData\.append\("revision", "([0-9a-f]*)"\)')  # Otterwiki's, in the editor
SAVE_FORM = re.compile(rb"""(<form\b[^>]*\bid=["']saveform["'][^>]*>)""")
SEARCH_LIMIT = 20
SEARCH_TIMEOUT = 15.0  # seconds the search page waits for the worker
UPLOADS = ("attachments", "inline_attachment", "edit_attachment")
STATE_FILE = "otterwiki.sqlite3"  # in the wiki's .git/wikibot/: goes when the wiki goes
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


@dataclass(frozen=True)
class _Visit:
    """The request Otterwiki is serving now (one at a time per process): what the save hook needs."""

    core: Core
    wiki: Wiki
    user: User | None
    author: tuple[str, str]
    head: str | None  # HEAD before Otterwiki read anything
    limits: TierLimits  # the wiki owner's tier
    search: dict[str, Any] | None  # the search page's query and answer, asked before the lock was taken


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
        _install_hooks(self.otterwiki)

    # routing and access
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        owner, slug, rest = _split(environ.get("PATH_INFO", ""))
        try:
            name = WikiName(owner, slug)
        except InvalidName:
            return _plain(start_response, 404, "not found")
        if rest == "":
            return _redirect(start_response, f"/{name}/" + _query(environ))
        if any(part in (".", "..") for part in rest.split("/")):  # no page or route has them: a traversal
            return _plain(start_response, 404, "not found")
        session = self.sessions.load(environ)
        user = self.sessions.user_of(session)
        decision = decide(self.core.store, user, None, name, Action.READ)
        login = "/-/login?next=" + quote(f"/{name}{rest}" + _query(environ))
        if decision.verdict is Verdict.CHALLENGE:  # anonymous: a private wiki and no wiki look the same
            return _redirect(start_response, login)
        if not decision.allowed or decision.wiki is None or not self.core.repos.exists(name):
            return _plain(start_response, 404, f"wiki {name} not found")
        method = environ.get("REQUEST_METHOD", "GET")
        endpoint, canonical = self._route(rest, method)
        if canonical is not None:  # Otterwiki's own spelling of the URL (`//` merged, a slash added)
            return _redirect(start_response, f"/{name}{canonical}" + _query(environ))
        if endpoint in TO_LOGIN:
            return _redirect(start_response, "/-/login?next=" + quote(f"/{name}/"))
        if endpoint in TO_HOME:
            return _redirect(start_response, "/")
        if endpoint in REFUSED or (endpoint in OWNER_ONLY and decision.role != "owner"):
            return _plain(start_response, 404, "not found")
        if endpoint == "draft" and method != "POST":  # Otterwiki saves (an empty) draft on GET too
            return _plain(start_response, 405, "drafts are saved with POST")
        writer = decision.role in ("owner", "editor")
        if method not in SAFE_METHODS and not writer and endpoint not in READER_POSTS:
            # answered before any lock and before the body is read: a reader cannot hold them up
            if user is None:
                return _redirect(start_response, login)
            return _plain(start_response, 403, decision.write_refusal or "you have read-only access to this wiki")
        limits = self._limits(decision.wiki)
        try:
            body_stream = _buffered_body(environ, limits.max_repo_bytes + MB)
        except _TooLarge:
            return _plain(start_response, 413, f"too large: at most {limits.max_repo_mb} MB per request")
        environ = {**environ, "wsgi.input": body_stream}
        search = _run_search(self.core, decision.wiki.name, environ, rest) if endpoint == "search" else None
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
        author = (user.name, user.email or f"{user.name}@users.wikibot") if user else ANONYMOUS
        inner.update(SCRIPT_NAME=environ.get("SCRIPT_NAME", "") + f"/{wiki.name}", PATH_INFO=rest,
                     HTTP_X_OTTERWIKI_NAME=author[0], HTTP_X_OTTERWIKI_EMAIL=author[1],
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
                head = self.core.repos.head(wiki.name)
                self._point_at(wiki)
                _visit.current = _Visit(self.core, wiki, user, author, head, limits, search)
                try:
                    status, headers, body = _run(otter.app, inner)
                finally:
                    _visit.current = None
                if editor:
                    base = self._base(wiki, body, head)
        except LockTimeout:
            if endpoint == "save":  # the user's text is never thrown away
                return _busy_save(start_response, environ)
            return _plain(start_response, 503, "the wiki is busy with another write; try again in a moment")
        if user is None and status.startswith("403"):  # anonymous on a public wiki: sign in to do more
            return _redirect(start_response, "/-/login?next=" + quote(f"/{wiki.name}{rest}" + _query(environ)))
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        if endpoint in FILES or self._is_file(wiki, rest):  # an uploaded file: served as it was, and no script
            # of it runs on this origin
            headers = [*headers, ("Content-Security-Policy", "sandbox"), ("X-Content-Type-Options", "nosniff")]
        elif content_type.startswith("text/html"):
            body = _into_prefix(body, f"/{wiki.name}/".encode())
            if editor:  # the save form remembers the revision this editor's text is based on
                field = f'<input type="hidden" name="{BASE_FIELD}" value="{base}">'.encode()
                body = SAVE_FORM.sub(lambda m: m.group(1) + field, body)
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]

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
    def _point_at(self, wiki: Wiki) -> None:
        otter = self.otterwiki
        path = self.core.repos.path(wiki.name)
        storage = otter.storage
        storage.path = str(path)
        storage.repo = self._repo((wiki.name, wiki.created), path)
        otter.server.githttpserver.path = str(path)
        otter.db._app_engines[otter.app][None] = self._engine((wiki.name, wiki.created), path)
        otter.app.config.clear()
        otter.app.config.update(self._config(wiki, path))

    def _repo(self, key: _Key, path: Path) -> Any:
        import git

        repo = self._repos.pop(key, None)
        if repo is None:
            repo = git.Repo(str(path))
        self._repos[key] = repo
        while len(self._repos) > self.max_open:
            _, old = self._repos.popitem(last=False)
            old.close()  # ends its `git cat-file` processes
        return repo

    def _engine(self, key: _Key, path: Path) -> Any:
        import sqlalchemy

        engine = self._engines.pop(key, None)
        if engine is None:
            state = path / ".git" / "wikibot"
            state.mkdir(parents=True, exist_ok=True)
            engine = sqlalchemy.create_engine(f"sqlite:///{state / STATE_FILE}")
            otter = self.otterwiki
            otter.db._app_engines[otter.app][None] = engine
            with file_lock(state / f"{STATE_FILE}.lock"), otter.app.app_context():
                otter.db.create_all()  # two processes opening a new wiki at once: one creates the tables
        self._engines[key] = engine
        while len(self._engines) > self.max_open:
            old_key, old = self._engines.popitem(last=False)
            old.dispose()
            self._configs.pop(old_key, None)
        return engine

    def _config(self, wiki: Wiki, path: Path) -> dict:
        """Otterwiki's config for this wiki: its defaults, the wiki's title, its preferences (read
        again whenever its database file changed, by this process or another), the platform's rules."""
        state = path / ".git" / "wikibot" / STATE_FILE
        limits = self._limits(wiki)
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


class _VisitHolder(threading.local):
    current: _Visit | None = None


_visit = _VisitHolder()


def _install_hooks(otter: loader.Otterwiki) -> None:
    """Once per process: the save hook in Otterwiki's app (after its CSRF check, which runs first)."""
    if getattr(otter.app, "_wikibot_hooks", False):
        return
    app = otter.app

    @app.before_request
    def wikibot_pages() -> Any:
        from flask import request

        visit = _visit.current
        if visit is None:
            return None
        if request.endpoint == "save" and request.method == "POST":
            return _save(otter, visit)
        if request.endpoint == "search":
            return _search(otter, visit)
        if request.endpoint in UPLOADS and request.method == "POST" and request.files:
            return _check_upload(otter, visit)
        if request.endpoint in ("rename", "edit_attachment") and request.method == "POST":
            return _check_rename(otter, visit)
        return None

    from jinja2 import ChoiceLoader, FileSystemLoader

    app.jinja_loader = ChoiceLoader([FileSystemLoader(str(Path(__file__).parent / "templates")), app.jinja_loader])
    app._wikibot_hooks = True


def _save(otter: loader.Otterwiki, visit: _Visit) -> Any:
    """A save from the editor (or from the refusal page): committed by the platform, or refused with
    the user's text kept."""
    from flask import redirect, render_template, request

    if not otter.auth.has_permission("WRITE"):
        return render_template("page404.html"), 403
    page = otter.wiki.Page((request.view_args or {}).get("path", ""))
    content = normalise(request.form.get("content", ""))
    message = request.form.get("commit", "").strip() or f"Update {page.pagename}"
    outcome = save_page(visit.core, SaveRequest(
        wiki=visit.wiki.name, filename=page.filename, pagename=page.pagename, content=content, message=message,
        base=request.form.get(BASE_FIELD), author=visit.author,
        actor=visit.user.name if visit.user else visit.author[0]))
    if outcome.saved:
        page.discard_draft(visit.author)
        otter.helper.toast(f"{page.pagename} saved." if outcome.changed else "Nothing changed.",
                           "success" if outcome.changed else "warning")
        return redirect(otter.helper.url_for("view", path=page.pagepath))
    return render_template("wikibot_refused_save.html", title=f"{page.pagename} was not saved",
                           pagename=page.pagename, pagepath=page.pagepath, content=content, commit=message,
                           reason=outcome.reason, diff=outcome.diff, conflict=outcome.conflict,
                           base_field=BASE_FIELD, base=outcome.head or ""), 409 if outcome.conflict else 422


def _check_upload(otter: loader.Otterwiki, visit: _Visit) -> Any:
    """Uploads obey what a push obeys: the owner's per-file, page and repository limits and the rules
    for paths. None lets one through."""
    from flask import jsonify, redirect, request
    from otterwiki.util import sanitize_filename
    from werkzeug.utils import secure_filename

    page = otter.wiki.Page((request.view_args or {}).get("pagepath", ""))
    files = [f for f in request.files.values() if f.filename]
    named = request.form.get("filename") or ""
    limits = visit.limits
    reason = None
    total = 0
    for upload in files:
        upload.stream.seek(0, 2)
        size = upload.stream.tell()
        upload.stream.seek(0)
        total += size
        stored = sanitize_filename(named or upload.filename) or secure_filename(named or upload.filename)
        problem = path_problem(f"{page.attachment_directoryname}/{stored}".encode())
        if problem:
            reason = f"the file name {stored!r} {problem}"
        elif size > limits.max_file_bytes:
            reason = f"{upload.filename} is {size / MB:.1f} MB, over the {limits.max_file_mb} MB per-file limit"
        if reason:
            break
    if reason is None and visit.head:
        usage = visit.core.repo(visit.wiki.name).tree_usage(visit.head)
        pages = sum(1 for f in files if (named or f.filename).lower().endswith(".md"))
        if pages and usage.pages + pages > limits.max_pages:
            reason = f"page limit {limits.max_pages} reached: a .md upload is a page"
        elif usage.disk_bytes + total > limits.max_repo_bytes:
            reason = (f"repository size limit {limits.max_repo_mb} MB reached: the upload would make it "
                      f"{(usage.disk_bytes + total) / MB:.1f} MB")
    if reason is None:
        return None
    if request.endpoint == "inline_attachment":  # the editor's paste/drop upload reads JSON
        return jsonify({"error": reason}), 413
    otter.helper.toast(f"Not uploaded: {reason}.", "error")
    return redirect(otter.helper.url_for("attachments", pagepath=page.pagepath)), 303


def _check_rename(otter: loader.Otterwiki, visit: _Visit) -> Any:
    """A page or attachment renamed obeys the rules for paths a push obeys. None lets it through."""
    from flask import redirect, request

    args = request.view_args or {}
    if request.endpoint == "rename":
        new = request.form.get("new_pagename") or ""
        target = otter.helper.get_filename(new) if new else ""
        back = otter.helper.url_for("rename", path=args.get("path", ""))
    else:
        page = otter.wiki.Page(args.get("pagepath", ""))
        new = request.form.get("new_filename") or ""
        target = f"{page.attachment_directoryname}/{new}" if new else ""
        back = otter.helper.url_for("attachments", pagepath=page.pagepath)
    problem = path_problem(target.encode()) if target else None
    if problem is None:
        return None
    otter.helper.toast(f"Not renamed: {new!r} {problem}.", "error")
    return redirect(back), 303


def _run_search(core: Core, wiki: WikiName, environ: dict[str, Any], rest: str) -> dict[str, Any]:
    """Ask the indexer for the search page, before the Otterwiki lock is taken (the worker may take a
    while): the query, the mode, and the hits or why there are none."""
    from wikibot.indexer.search import MODES, SearchError
    from wikibot.indexer.service import SearchUnavailable, remote_search

    values = Request(environ).values
    environ["wsgi.input"].seek(0)  # Otterwiki reads the form again (its CSRF check)
    query = (values.get("query") or unquote(rest.partition("/-/search/")[2])).strip()
    mode = values.get("mode", "hybrid")
    mode = mode if mode in MODES else "hybrid"
    answer: dict[str, Any] = {"query": query, "mode": mode, "hits": [], "error": ""}
    if query:
        try:
            answer["hits"] = remote_search(core.config.data_dir, wiki, query, mode, SEARCH_LIMIT,
                                           timeout=SEARCH_TIMEOUT)["hits"]
        except SearchError as exc:
            answer["error"] = str(exc)
        except SearchUnavailable:
            answer["error"] = "Search is starting up or unavailable right now; try again in a moment."
    return answer


def _search(otter: loader.Otterwiki, visit: _Visit) -> Any:
    """The wiki's search box, answered by the indexer (the worker's query service)."""
    from flask import render_template

    found = visit.search or {"query": "", "mode": "hybrid", "hits": [], "error": ""}
    hits = [{**hit, "pagepath": otter.helper.get_pagename(hit["page"], full=True)} for hit in found["hits"]]
    modes = [("hybrid", "Meaning and words"), ("semantic", "Meaning"), ("keyword", "Words")]
    return render_template("wikibot_search.html", title="Search", query=found["query"], mode=found["mode"],
                           modes=modes, hits=hits, error=found["error"])


class _TooLarge(Exception):
    """A request body over the cap."""


def _buffered_body(environ: dict[str, Any], cap: int) -> IO[bytes]:
    """The request body, read to its end before any lock is taken (a client sending it slowly then
    holds up no one but itself); at most `cap` bytes, in memory up to 1 MB, then in a temp file."""
    stream = environ.get("wsgi.input")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() or environ.get("wsgi.input_terminated")
    if stream is None or (length <= 0 and not chunked):
        return io.BytesIO()
    if length > cap:
        raise _TooLarge()
    buffer = tempfile.SpooledTemporaryFile(max_size=MB)
    left = length if length > 0 else cap + 1
    while left > 0:
        chunk = stream.read(min(left, 64 * 1024))
        if not chunk:
            break
        buffer.write(chunk)
        left -= len(chunk)
        if buffer.tell() > cap:
            raise _TooLarge()
    buffer.seek(0)
    return buffer


def _busy_save(start_response: StartResponse, environ: dict[str, Any]) -> Iterable[bytes]:
    """A save that could not get the wiki's lock in time: the same form again, the text in it."""
    form = Request(environ).form
    hidden = "".join(f'<input type="hidden" name="{escape(key)}" value="{escape(form.get(key, ""))}">'
                     for key in ("csrf_token", BASE_FIELD, "commit") if key in form)
    page = (f'<!doctype html><meta charset="utf-8"><title>Not saved yet</title><h1>Not saved yet</h1>'
            f'<p>The wiki is busy with another write. Nothing was saved; your text is below: save it again.</p>'
            f'<form method="post" action="">{hidden}<textarea name="content" rows="20" cols="90">'
            f'{escape(form.get("content", ""))}</textarea><p><button type="submit">Save</button></p></form>')
    body = page.encode()
    start_response("503 Service Unavailable", [("Content-Type", "text/html; charset=utf-8"),
                                               ("Content-Length", str(len(body))), ("Retry-After", "5")])
    return [body]


def _run(app: Any, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Call a WSGI app and read its whole answer (so the caller can release the lock after)."""
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answer["status"], answer["headers"] = status, list(headers)
        return lambda data: answer.setdefault("early", []).append(data)

    result = app(environ, start_response)
    try:
        body = b"".join([*answer.get("early", []), *result])
    finally:
        close = getattr(result, "close", None)
        if close:
            close()
    return answer["status"], answer["headers"], body


def _into_prefix(html: bytes, prefix: bytes) -> bytes:
    """Root-relative URLs in attributes (`href="/Page"`) point into the wiki, unless already there."""
    out = []
    last = 0
    for match in URL_ATTRIBUTE.finditer(html):
        end = match.end()  # just after the URL's leading "/"
        out.append(html[last:end])
        if not html.startswith(prefix, end - 1):
            out.append(prefix[1:])
        last = end
    out.append(html[last:])
    return b"".join(out)


def _split(path: str) -> tuple[str, str, str]:
    parts = path.split("/", 3)
    if len(parts) < 3:
        return "", "", ""
    return parts[1], parts[2], ("/" + parts[3]) if len(parts) > 3 else ""


def _query(environ: dict[str, Any]) -> str:
    query = environ.get("QUERY_STRING", "")
    return f"?{query}" if query else ""


def _redirect(start_response: StartResponse, location: str) -> Iterable[bytes]:
    start_response("303 See Other", [("Location", location), ("Content-Length", "0"), ("Cache-Control", "no-store")])
    return [b""]


def _plain(start_response: StartResponse, status: int, text: str) -> Iterable[bytes]:
    from http import HTTPStatus

    body = (text + "\n").encode()
    start_response(f"{status} {HTTPStatus(status).phrase}", [("Content-Type", "text/plain; charset=utf-8"),
                                                             ("Content-Length", str(len(body)))])
    return [body]
