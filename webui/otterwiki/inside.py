"""What runs inside Otterwiki's app, for the request the host is serving now: the before-request
hook that answers saves (through the platform's commit path), the search page (from the indexer's
answer, asked before Otterwiki's lock was taken) and the checks on uploads and renames; and the
author of Otterwiki's own commits, put back from the address it knows the visitor by (`state.py`).

Otterwiki serves one request at a time per process (the host's lock), so `current.visit` holds that
request's `Visit`; it is thread-local all the same, and None outside a request.
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from werkzeug.wrappers import Request

from wikibot.config import MB, TierLimits
from wikibot.gitd.core import Core
from wikibot.gitd.names import WikiName, path_problem
from wikibot.gitd.records import User, Wiki
from wikibot.gitd.repos import DEFAULT_BRANCH

from .. import HISTORY
from . import loader
from .save import BASE_FIELD, SaveOutcome, SaveRequest, normalise, save_page

SEARCH_LIMIT = 20
SEARCH_TIMEOUT = 15.0  # seconds the search page waits for the worker
UPLOADS = ("attachments", "inline_attachment", "edit_attachment")
# every method of Otterwiki's GitStorage (2.26.1) that makes a commit (uploads, renames, deletes, reverts)
COMMITTING = ("store", "commit", "revert", "delete", "rename")


@dataclass(frozen=True)
class Visit:
    """The request Otterwiki is serving now (one at a time per process): what the save hook needs."""

    core: Core
    wiki: Wiki
    user: User | None
    author: tuple[str, str]  # of commits: the user's name and email (state.commit_author)
    seen_as: tuple[str, str]  # who Otterwiki is told the visitor is: its drafts are keyed by it
    head: str | None  # HEAD before Otterwiki read anything
    limits: TierLimits  # the wiki owner's tier
    search: dict[str, Any] | None  # the search page's query and answer, asked before the lock was taken


class VisitHolder(threading.local):
    visit: Visit | None = None


current = VisitHolder()


def install_hooks(otter: loader.Otterwiki) -> None:
    """Once per process: the before-request hook (saves, search, upload and rename checks), this
    package's templates in Otterwiki's app and the History link's URL; the hook runs after Otterwiki's
    CSRF check, registered first."""
    if getattr(otter.app, "_wikibot_hooks", False):
        return
    app = otter.app

    @app.before_request
    def wikibot_pages() -> Any:
        from flask import request

        visit = current.visit
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
    app.jinja_env.globals["wikibot_history_url"] = lambda pagepath: history_url(otter, pagepath)
    for method in COMMITTING:
        setattr(otter.storage, method, _authored(getattr(otter.storage, method)))
    app._wikibot_hooks = True


def _authored(commit: Callable[..., Any]) -> Callable[..., Any]:
    """One of Otterwiki's storage methods that commit, taking the author Otterwiki was told (the
    address it keys drafts by) as the author the platform intends: the user's name and email."""
    @functools.wraps(commit)
    def authored(*args: Any, **kwargs: Any) -> Any:
        visit = current.visit
        if visit is not None:
            args = tuple(visit.author if arg == visit.seen_as else arg for arg in args)
            kwargs = {key: visit.author if arg == visit.seen_as else arg for key, arg in kwargs.items()}
        return commit(*args, **kwargs)

    return authored


def history_url(otter: loader.Otterwiki, pagepath: str) -> str:
    """The page's history in klaus: the log of its file on main (the page menu's History link)."""
    from flask import request

    return f"{request.script_root}{HISTORY}/tree/{DEFAULT_BRANCH}/{quote(otter.helper.get_filename(pagepath))}"


def _save(otter: loader.Otterwiki, visit: Visit) -> Any:
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
        page.discard_draft(visit.seen_as)
        otter.helper.toast(f"{page.pagename} saved." if outcome.changed else "Nothing changed.",
                           "success" if outcome.changed else "warning")
        return redirect(otter.helper.url_for("view", path=page.pagepath))
    return render_template("wikibot_refused_save.html", title=f"{page.pagename} was not saved",
                           pagename=page.pagename, pagepath=page.pagepath, content=content, commit=message,
                           reason=outcome.reason, diff=outcome.diff, conflict=outcome.conflict,
                           base_field=BASE_FIELD, base=outcome.head or ""), _refusal_status(outcome)


def _refusal_status(outcome: SaveOutcome) -> int:
    return 404 if outcome.gone else 409 if outcome.conflict else 422


def _check_upload(otter: loader.Otterwiki, visit: Visit) -> Any:
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


def _check_rename(otter: loader.Otterwiki, visit: Visit) -> Any:
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


def ask_search(core: Core, wiki: WikiName, environ: dict[str, Any], rest: str) -> dict[str, Any]:
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


def _search(otter: loader.Otterwiki, visit: Visit) -> Any:
    """The wiki's search box, answered by the indexer (the worker's query service)."""
    from flask import render_template

    found = visit.search or {"query": "", "mode": "hybrid", "hits": [], "error": ""}
    hits = [{**hit, "pagepath": otter.helper.get_pagename(hit["page"], full=True)} for hit in found["hits"]]
    modes = [("hybrid", "Meaning and words"), ("semantic", "Meaning"), ("keyword", "Words")]
    return render_template("wikibot_search.html", title="Search", query=found["query"], mode=found["mode"],
                           modes=modes, hits=hits, error=found["error"])


