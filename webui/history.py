"""Every wiki's history in klaus 3.0.1, at `/OWNER/WIKI/-/history/`: the log (of the wiki, a folder or
one page), commits with their diffs, blame, the tree and raw files.

klaus's `make_app` loads a fixed list of repositories at start and serves them under `/<repo>/...`.
Here one klaus app per process serves every wiki: per request the platform says who the visitor is
(the web session) and what they may read (`gitd.acl`, exactly as the web wiki decides it), then
hands klaus that wiki's repository in the WSGI environ. klaus sees SCRIPT_NAME `/OWNER/WIKI/-`, so
its repository segment is the word `history` and its own `url_for` builds every link inside the
wiki's history; `valid_repos`, a dict in klaus, is that one repository.

Read-only, and less than `make_app` offers: GET and HEAD only, no smart HTTP (make_app's dulwich
wrapping is not used), no repository list, no tarballs, no submodule pages (a push cannot bring
one). Wikis share one origin, so nothing of a wiki runs there: pages are shown as source, never
rendered as HTML (klaus would render Markdown if `markdown` were installed), and raw files are
served sandboxed with a type that cannot turn into a page. Big things have bounds klaus lacks: a
commit page diffs files within a byte and a line budget and lists up to a number of files, raw files
above a cap are refused with a message, the raw diff is cut, a file's views read no more of it than
klaus would show, a blame has a time limit, and log pages and revisions have lengths that can exist.
"""
from __future__ import annotations

import mimetypes
import re
import stat
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import quote

import flask
from dulwich.errors import NotGitRepository, NotTreeError
from dulwich.object_store import tree_lookup_path
from dulwich.objects import Blob, Commit, Tag
from dulwich.patch import write_object_diff
from jinja2 import ChoiceLoader, FileSystemLoader
from klaus import Klaus, views
from klaus.diff import render_diff
from klaus.repo import FancyRepo, synchronized
from klaus.utils import encode_for_git, guess_is_binary, subpaths
from werkzeug.exceptions import NotFound, ServiceUnavailable

from wikibot.gitd.acl import Action, Verdict, decide
from wikibot.gitd.core import Core
from wikibot.gitd.git_process import git_command, git_env
from wikibot.gitd.http_access import Answer, StartResponse
from wikibot.gitd.names import InvalidName, WikiName
from wikibot.gitd.records import Wiki
from wikibot.gitd.repos import DEFAULT_BRANCH
from wikibot.gitd.repository import Repository

from . import HISTORY
from .otterwiki.wsgi import run
from .sessions import Sessions

MB = 1024 * 1024
OUTER, SEGMENT = HISTORY.rsplit("/", 1)  # klaus is mounted at /OWNER/WIKI/-, its repository is "history"
VISIT = "wikibot.history"  # the environ key holding the request's `Visit`
TEMPLATES = Path(__file__).parent / "history_templates"
DIFF_FILE_LIMIT = 256 * 1024  # a side of a file's diff larger than this is not diffed (klaus shows files to 100 KB)
DIFF_BUDGET = 2 * MB  # bytes of files one commit page (or raw diff) reads; the files after it are listed only
RAW_LIMIT = 32 * MB  # the largest file the raw view serves (read whole, as klaus does); git clone has them all
VIEW_LIMIT = 100 * 1024  # klaus renders files up to this size; of a larger one it reads only this much and a byte
BLAME_SECONDS = 20.0  # the longest a blame may take (it reads every commit of the file); then the page says so
MAX_FILES = 1_000  # files one commit page lists (a push may change 100,000: 120 MB of HTML); the rest are counted
DIFF_LINES = 10_000  # diff lines one commit page shows (each is a table row: 44 MB of HTML for 2 MB of short lines)
MAX_REV = 255  # the longest branch, tag or id looked up: klaus tries each prefix of a path, at a cost of its length
LOG_PAGE = 30  # klaus's commits per log page (its index shows 10 before page 1)
MAX_PAGE = 1_000_000  # the last log page asked for: 30 million commits
PAGE_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'")
SAFE_METHODS = ("GET", "HEAD")
HEX = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class Visit:
    """What klaus needs from the platform for one request: the wiki and its open repository."""

    wiki: Wiki
    repo: WikiRepo
    home: str  # the wiki's web URL, `/OWNER/WIKI/`

    def page_link(self, path: str, rev: str, commit: bytes) -> str | None:
        """The wiki's web page for the file `path` klaus shows at `rev` (None for anything but a page):
        the page as it is now on main, else as it was at that commit."""
        if not path.endswith(".md"):
            return None
        page = quote(path[:-3])
        if rev == DEFAULT_BRANCH:
            return f"{self.home}{page}"
        return f"{self.home}{page}/view/{commit.decode()}"


class WikiRepo(FancyRepo):
    """klaus's repository wrapper for one wiki: named by the URL segment, `main` as its branch, the log
    read through the platform's read API (pathspecs taken literally: a page may be named `[ab].md`),
    and diffs within a budget."""

    name = SEGMENT  # what klaus's templates put in its URLs

    def __init__(self, path: Path, reader: Repository) -> None:
        super().__init__(str(path), None)
        self.reader = reader

    def get_default_branch(self) -> str | None:
        """The wiki is `main`, whatever other branches were pushed (klaus would prefer a `master`)."""
        return DEFAULT_BRANCH if self.reader.head() else super().get_default_branch()

    @synchronized
    def get_commit(self, rev: str) -> Any:
        """The commit `rev` names; KeyError for anything else (klaus would hand on a blob or tree a tag
        or an id names, and its views fail on it). A full commit id is the commit, as for git: klaus
        would first look for a branch and a tag of that name, two thirds of a commit page's lookup."""
        if len(rev) > MAX_REV:
            raise KeyError(rev)
        found = None
        if HEX.fullmatch(rev):
            try:
                found = self.dulwich_repo.object_store[rev.encode()]
            except KeyError:
                pass
        if not isinstance(found, Commit):
            found = super().get_commit(rev)
        if not isinstance(found, Commit):
            raise KeyError(rev)
        return found

    @synchronized
    def get_ref_names_ordered_by_last_commit(self, prefix: str, exclude: str | None = None) -> list[str]:
        """The branch or tag names under `prefix` that name a commit, newest first (klaus's order). A
        push may bring a tag of a blob: klaus's own sorting fails on it, and with it every page."""
        dated = []
        for name, sha in self.dulwich_repo.refs.as_dict(encode_for_git(prefix)).items():
            if exclude is not None and name == encode_for_git(exclude):
                continue
            try:
                found = self[sha]
                when = found.tag_time if isinstance(found, Tag) else None
                while isinstance(found, Tag):
                    found = self[found.object[1]]
            except KeyError:
                continue
            if isinstance(found, Commit):
                dated.append((when or found.commit_time, name.decode(errors="replace")))
        return [name for _, name in sorted(dated, key=lambda item: item[0], reverse=True)]

    @synchronized
    def get_blob_or_tree(self, commit: Any, path: str) -> Any:
        """klaus's lookup, but a file is a `_FileBlob`: klaus read a file whole for each of its views,
        even a page's log, which only asks whether it is a file (100 MB per request for a big one)."""
        try:
            mode, sha = tree_lookup_path(self.dulwich_repo.__getitem__, commit.tree, encode_for_git(path))
        except NotTreeError:
            raise KeyError(path) from None
        if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
            return _FileBlob(self.reader, commit.id.decode(), path, sha)
        return self[sha]

    def history(self, commit: Any, path: str | None = None, max_commits: int | None = None,
                skip: int = 0) -> list[Any]:
        """Like klaus's (`git log`), outside klaus's process-wide lock while git runs."""
        found = self.reader.log(commit.id.decode(), path or None, limit=max_commits or 1 << 30, skip=skip)
        return [self[entry.revision.encode()] for entry in found]

    def blame(self, commit: Any, path: str) -> list[str]:
        """klaus's `git blame` (the same command), outside klaus's process-wide lock while git runs (the
        blame of a long-edited page takes seconds), within BLAME_SECONDS, without reading each line's
        commit twice."""
        try:
            out = subprocess.check_output(git_command(Path(self.path), "blame", "-ls", "--root", commit.id.decode(),
                                                      "--", path), env=git_env(), timeout=BLAME_SECONDS)
        except subprocess.TimeoutExpired:
            raise ServiceUnavailable(f"The blame of {path} takes over {BLAME_SECONDS:.0f} seconds: clone the wiki "
                                     "with git to see it.") from None
        return [line[:40].decode() for line in out.strip().split(b"\n") if line]

    @synchronized
    def changes(self, commit: Any) -> list[dict[str, Any]]:
        """What `commit` changed against its first parent, file by file: paths, modes, and both sides'
        blobs, or why they were left out (`not_shown`). Blobs are read until DIFF_BUDGET bytes were."""
        parent = self[commit.parents[0]].tree if commit.parents else None
        budget = DIFF_BUDGET
        out = []
        for (old, new), (old_mode, new_mode), (old_sha, new_sha) in \
                self.dulwich_repo.object_store.tree_changes(parent, commit.tree):
            change: dict[str, Any] = {"old_path": old, "new_path": new, "old_mode": old_mode, "new_mode": new_mode,
                                      "old_sha": old_sha, "new_sha": new_sha, "old": None, "new": None,
                                      "not_shown": None}
            if budget <= 0:
                change["not_shown"] = f"Diff not shown: this commit changes more than {DIFF_BUDGET // MB} MB"
            else:
                change["old"], change["new"] = self._blob(old_sha), self._blob(new_sha)
                sizes = (change["old"].raw_length(), change["new"].raw_length())
                budget -= sum(sizes)
                if max(sizes) > DIFF_FILE_LIMIT:
                    change["old"] = change["new"] = None
                    change["not_shown"] = f"Diff not shown: the file is over {DIFF_FILE_LIMIT // 1024} KB"
            out.append(change)
        return out

    def _blob(self, sha: bytes | None) -> Blob:
        try:
            return self.dulwich_repo.object_store[sha] if sha else Blob.from_string(b"")
        except KeyError:  # klaus's answer to a missing object (a submodule's commit)
            return Blob.from_string(b"")

    def commit_diff(self, commit: Any) -> tuple[dict[str, int], list[dict[str, Any]]]:
        """klaus's commit page data, from `changes`: files left out say why instead of their diff, and
        files past MAX_FILES are only counted (`unlisted`)."""
        summary = {"nfiles": 0, "nadditions": 0, "ndeletions": 0}
        files = []
        lines = DIFF_LINES
        for change in self.changes(commit):
            summary["nfiles"] += 1
            if len(files) == MAX_FILES:
                continue
            names = {"old_filename": change["old_path"] or "/dev/null",
                     "new_filename": change["new_path"] or "/dev/null"}
            old, new = change["old"], change["new"]
            not_shown = change["not_shown"] or ("Binary diff not shown" if guess_is_binary(old) or guess_is_binary(new)
                                                else None)
            if not not_shown:
                additions, deletions, chunks = render_diff(old.splitlines(), new.splitlines())
                rows = sum(map(len, chunks))
                if rows > lines:  # the files after it that fit are shown
                    not_shown = f"Diff not shown: the diffs of this commit are over {DIFF_LINES:,} lines"
                else:
                    lines -= rows
            if not_shown:
                files.append({**names, "is_binary": True, "chunks": None, "not_shown": not_shown})
                continue
            summary["nadditions"] += additions
            summary["ndeletions"] += deletions
            files.append({**names, "is_binary": False, "chunks": chunks, "additions": additions,
                          "deletions": deletions})
        summary["unlisted"] = summary["nfiles"] - len(files)
        return summary, files

    def raw_commit_diff(self, commit: Any) -> bytes:
        """The commit as a patch (klaus's raw diff), within the same budget: files left out are named."""
        out = BytesIO()
        for change in self.changes(commit):
            if change["not_shown"]:
                path = (change["new_path"] or change["old_path"]).decode(errors="replace")
                out.write(f"# {path}: {change['not_shown']}\n".encode())
                continue
            read = {change["old_sha"]: change["old"], change["new_sha"]: change["new"]}  # the blobs, read once
            write_object_diff(out, read, (change["old_path"], change["old_mode"], change["old_sha"]),
                              (change["new_path"], change["new_mode"], change["new_sha"]))
        return out.getvalue()


class _FileBlob(Blob):
    """A file of a klaus page, read when a view first asks for its content, and then only its first
    VIEW_LIMIT + 1 bytes (enough for klaus to call a larger file too large to show, as it would)."""

    def __init__(self, reader: Repository, commit: str, path: str, sha: bytes) -> None:
        super().__init__()
        self._where = (reader, commit, path)
        self._oid = sha
        self._read: bytes | None = None

    def _content(self) -> bytes:
        if self._read is None:
            reader, commit, path = self._where
            found = list(reader.read_prefixes(commit, [path], VIEW_LIMIT + 1))
            self._read = found[0].data if found else b""
        return self._read

    @property
    def data(self) -> bytes:  # type: ignore[override]
        return self._content()

    @property
    def chunked(self) -> list[bytes]:  # type: ignore[override]
        return [self._content()]

    @property
    def id(self) -> bytes:  # type: ignore[override]
        return self._oid


class _Source:
    """Pages are shown as their source, never rendered as HTML (a page's raw HTML would run on the
    platform's origin), and no README is rendered into the log."""

    def get_readme_context(self) -> dict[str, Any]:
        return {"is_markup": None, "rendered_code": None}

    def render_code(self, render_markup: bool) -> str:
        return super().render_code(False)  # type: ignore[misc]


class _BlobView(_Source, views.FileView):
    def make_template_context(self, *args: Any) -> None:
        super().make_template_context(*args)
        self.context["is_markup"] = False


class _IndexView(_Source, views.IndexView):
    pass


class _HistoryView(_Source, views.HistoryView):
    """klaus's log with a page number that can exist: klaus makes `range(page)` for its page links
    (?page=10**9 filled the memory), and git takes no skip beyond its integers."""

    def make_template_context(self, *args: Any) -> None:
        super(views.HistoryView, self).make_template_context(*args)  # the tree, without klaus's log
        try:
            page = max(0, int(flask.request.args.get("page", "")))
        except ValueError:
            page = 0  # klaus's answer to a page that is not a number
        if page > MAX_PAGE:
            raise NotFound("No such page")
        skip = (page - 1) * LOG_PAGE + 10 if page else 0
        found = self.context["repo"].history(self.context["commit"], self.context["path"], LOG_PAGE + 1, skip)
        self.context.update({"page": page, "history": found[:LOG_PAGE], "more_commits": len(found) > LOG_PAGE,
                             "previous_pages": [0, 1, 2, None, *range(page - 3, page)] if page > 7 else range(page)})
        self.context.update(self.get_readme_context())


class _CommitContext:
    """A commit page's (and raw diff's) context without what they never show: the branches and tags
    (the page hides klaus's branch selector) and the root tree (a path after the id still must exist)."""

    view_name: str

    def make_template_context(self, repo: str, namespace: str | None, rev: str | None, path: str) -> None:
        wiki_repo, rev, path, commit = views._get_repo_and_rev(repo, namespace, rev, path)
        try:
            found = wiki_repo.get_blob_or_tree(commit, path) if path else None
        except KeyError:
            raise NotFound("File not found") from None
        self.context = {"view": self.view_name, "repo": wiki_repo, "namespace": namespace, "rev": rev,
                        "commit": commit, "branches": [], "tags": [], "path": path, "blob_or_tree": found,
                        "subpaths": list(subpaths(path)) if path else None, "base_href": None}


class _CommitView(_CommitContext, views.CommitView):
    pass


class _PatchView(_CommitContext, views.PatchView):
    pass


class _RawView(views.BaseRepoView):
    """A file as it is: up to RAW_LIMIT, typed so that a browser never runs it as a page of this origin."""

    def make_template_context(self, repo: str, namespace: str | None, rev: str | None, path: str) -> None:
        wiki_repo, rev, path, commit = views._get_repo_and_rev(repo, namespace, rev, path)
        try:
            mode, sha = tree_lookup_path(wiki_repo.__getitem__, commit.tree, encode_for_git(path))
        except (KeyError, NotTreeError):
            raise NotFound("File not found") from None
        if not stat.S_ISREG(mode):
            raise NotFound("Not a file")
        self.context = {"repo": wiki_repo, "path": path, "sha": sha}

    def get_response(self) -> flask.Response:
        repo, path, sha = self.context["repo"], self.context["path"], self.context["sha"]
        size = repo.reader.object_sizes([sha.decode()]).get(sha.decode(), 0)
        if size > RAW_LIMIT:
            return flask.Response(f"{path} is {size / MB:.1f} MB: the history shows files up to {RAW_LIMIT // MB} MB. "
                                  f"Clone the wiki with git to get it.\n", status=403, mimetype="text/plain")
        return flask.Response(repo[sha].as_raw_chunks(), content_type=raw_type(path),
                              headers={"Content-Security-Policy": "sandbox"})


def raw_type(path: str) -> str:
    """Text as plain text, images (but SVG, which can hold script) as themselves, anything else as bytes."""
    guessed, _ = mimetypes.guess_type(path)
    if guessed is None or guessed.startswith("text/") or guessed in ("application/json", "application/xml"):
        return "text/plain; charset=utf-8"
    if guessed.startswith("image/") and guessed != "image/svg+xml":
        return guessed
    return "application/octet-stream"


class _Views:
    """Each klaus view function once (Flask refuses two functions for one endpoint), with the
    overrides above."""

    history = _HistoryView.as_view("history", "history")
    index = _IndexView.as_view("index", "index")
    blob = _BlobView.as_view("blob", "blob")
    raw = _RawView.as_view("raw", "raw")
    commit = _CommitView.as_view("commit", "commit")
    patch = _PatchView.as_view("patch", "patch")
    blame = views.blame


ROUTES = [  # klaus's own rules, minus the repository list, robots.txt, tarballs, submodules, namespaces
    ("blob", "/<repo>/blob/<rev>/<path:path>"),
    ("blame", "/<repo>/blame/<rev>/<path:path>"),
    ("raw", "/<repo>/raw/<rev>/<path:path>"),
    ("commit", "/<repo>/commit/<path:rev>/"),
    ("patch", "/<repo>/commit/<path:rev>.diff"),
    ("patch", "/<repo>/commit/<path:rev>.patch"),
    ("index", "/<repo>/"),
    ("index", "/<repo>/<path:rev>"),
    ("history", "/<repo>/tree/<rev>/"),
    ("history", "/<repo>/tree/<rev>/<path:path>"),
]


class KlausApp(Klaus):
    """The process's one klaus app. Its repository is the request's, from the environ; its templates
    are klaus's with a few of ours in front (the header links to the wiki, no tarball link, diffs
    left out say why); its static files are at /OWNER/WIKI/-/history/static/."""

    def __init__(self) -> None:
        self.site_name = "wikibot"
        self.use_smarthttp = False
        self.ctags_policy = "none"
        flask.Flask.__init__(self, "klaus", static_url_path=f"/{SEGMENT}/static")
        self.context_processor(_wiki_context)
        self.setup_routes()

    @property
    def valid_repos(self) -> dict[str, WikiRepo]:  # type: ignore[override]
        return {SEGMENT: flask.request.environ[VISIT].repo}

    def setup_routes(self) -> None:
        for endpoint, rule in ROUTES:
            self.add_url_rule(rule, view_func=getattr(_Views, endpoint))

    @cached_property
    def jinja_loader(self) -> ChoiceLoader:  # type: ignore[override]
        return ChoiceLoader([FileSystemLoader(str(TEMPLATES)),
                             FileSystemLoader(str(Path(self.root_path) / "templates"))])


def _wiki_context() -> dict[str, Any]:
    visit: Visit = flask.request.environ[VISIT]
    return {"SITE_NAME": visit.wiki.title or visit.wiki.slug, "wiki_home": visit.home, "page_link": visit.page_link}


@dataclass
class _Open:
    repo: WikiRepo
    users: int = 0
    evicted: bool = False


@dataclass
class _OpenRepos:
    """The wikis' open repositories, least recently used first, at most `max_open`; keyed by the wiki's
    name and creation time (a wiki made again under its name never meets the old one's). A repository
    evicted while a request still uses it is closed when that request is done."""

    max_open: int
    _open: OrderedDict[tuple[WikiName, float], _Open] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, wiki: Wiki, opener: Callable[[], WikiRepo]) -> _Open:
        key = (wiki.name, wiki.created)
        with self._lock:
            entry = self._open.pop(key, None) or _Open(opener())
            entry.users += 1
            self._open[key] = entry
            while len(self._open) > self.max_open:
                _, old = self._open.popitem(last=False)
                old.evicted = True
                if old.users == 0:
                    old.repo.close()
        return entry

    def give_back(self, entry: _Open) -> None:
        with self._lock:
            entry.users -= 1
            if entry.evicted and entry.users == 0:
                entry.repo.close()


class History:
    """The WSGI app for `/OWNER/WIKI/-/history...` (PATH_INFO whole, as the platform routes it)."""

    def __init__(self, core: Core, sessions: Sessions, *, max_open: int = 16) -> None:
        self.core = core
        self.sessions = sessions
        self.klaus = KlausApp()
        self.repos = _OpenRepos(max_open)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        parts = path.split("/", 3)
        try:
            name = WikiName(parts[1], parts[2])
        except (InvalidName, IndexError):
            return Answer.text(404, "not found").send(start_response)
        rest = "/" + parts[3] if len(parts) > 3 else ""
        if not (rest + "/").startswith(HISTORY + "/") or any(part in (".", "..") for part in rest.split("/")):
            return Answer.text(404, "not found").send(start_response)
        query = environ.get("QUERY_STRING", "")
        query = f"?{query}" if query else ""
        if rest == HISTORY:
            return _redirect(start_response, f"{environ.get('SCRIPT_NAME', '')}/{name}{HISTORY}/{query}")
        user = self.sessions.user_of(self.sessions.load(environ))
        decision = decide(self.core.store, user, None, name, Action.READ)
        if decision.verdict is Verdict.CHALLENGE:  # anonymous: a private wiki and no wiki look the same
            return _redirect(start_response, "/-/login?next=" + quote(path + query))
        missing = Answer.text(404, f"wiki {name} not found")
        if not decision.allowed or decision.wiki is None:
            return missing.send(start_response)
        if environ.get("REQUEST_METHOD", "GET") not in SAFE_METHODS:
            return Answer.text(405, "the history is read-only", [("Allow", ", ".join(SAFE_METHODS))]) \
                .send(start_response)
        outer = environ.get("SCRIPT_NAME", "")
        try:  # an open repository is reused: no look at the disk for it on most requests
            entry = self.repos.take(decision.wiki, lambda: WikiRepo(self.core.repos.path(name), self.core.repo(name)))
        except NotGitRepository:  # a wiki whose repository is not there (being made or deleted)
            return missing.send(start_response)
        inner = {**environ, "SCRIPT_NAME": f"{outer}/{name}{OUTER}", "PATH_INFO": rest[len(OUTER):],
                 VISIT: Visit(decision.wiki, entry.repo, f"{outer}/{name}/")}
        try:
            status, headers, body = run(self.klaus, inner)  # read whole, so the repository is given back at once
        finally:
            self.repos.give_back(entry)
        start_response(status, _guarded(headers))
        return [body]


def _redirect(start_response: StartResponse, location: str) -> Iterable[bytes]:
    return Answer(303, b"", "text/plain; charset=utf-8",
                  (("Location", location), ("Cache-Control", "no-store"))).send(start_response)


def _guarded(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """No answer is sniffed into another type; pages load nothing from elsewhere (the raw view's
    sandbox policy stays as it is)."""
    out = [*headers, ("X-Content-Type-Options", "nosniff")]
    if not any(key.lower() == "content-security-policy" for key, _ in headers):
        out.append(("Content-Security-Policy", PAGE_CSP))
    return out
