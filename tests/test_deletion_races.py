"""A wiki deleted while a web save, a push, a clone, its index or its creation is under way: each is
told the wiki is gone (as any missing wiki answers) and none of them puts anything of it back on disk.

The real Core on a temp data dir, real repositories; the web through the werkzeug test client on the
platform app, pushes with the real git client against the platform's git app served on 127.0.0.1.
Where a race needs one interleaving, `GatedRepos` holds the racing request at the wiki's lock, after
every check it makes before taking it (a slow request), while the test deletes the wiki.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wsgi import LimitedStream

from wikibot.app import Platform, routes
from wikibot.bootstrap.create import create_wiki
from wikibot.gitd.change import MAIN
from wikibot.gitd.core import Core, NoSuchWiki
from wikibot.gitd.names import WikiName
from wikibot.gitd.repos import Repos
from wikibot.gitd.smart_http import GitHTTP
from wikibot.gitd.upload import PackCache, PackError
from wikibot.indexer.index import WikiIndex
from wikibot.indexer.model import Model
from wikibot.indexer.refresh import Indexer
from wikibot.indexer.storage import IndexStore
from wikibot.testing.servers import commit_files, platform_config, run_git
from wikibot.testing.web import PASSWORD, PRIVATE, PUBLIC, csrf, sign_in, web_core
from wikibot.wiring import open_core

WAIT = 30.0  # seconds: only reached when the code under test deadlocks
OLD = WikiName("ann", "old")


class GatedRepos(Repos):
    """Once `arm`ed, the next `lock` asked for by a thread other than the test's own (after `skip`
    such calls) says so and waits until the test lets it go on, then takes the lock as usual."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.test_thread = threading.current_thread()
        self.asked, self.go = threading.Event(), threading.Event()
        self._skip: int | None = None

    def arm(self, skip: int = 0) -> None:
        self._skip = skip

    @contextmanager
    def lock(self, name: WikiName, timeout: float | None = None) -> Iterator[None]:
        if self._skip is not None and threading.current_thread() is not self.test_thread:
            if self._skip == 0:
                self._skip = None
                self.asked.set()
                assert self.go.wait(WAIT), "the test never let the request go on"
            else:
                self._skip -= 1
        with super().lock(name, timeout=timeout):
            yield


def gated(core: Core) -> Core:
    return dataclasses.replace(core, repos=GatedRepos(core.repos.root, core.repos.locks, core.repos.hook_scripts))


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `fn` in a thread; its result or exception lands in the dict."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = fn()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def delete_while_held(core: Core, name: WikiName, thread: threading.Thread) -> None:
    """The racing request waits at the wiki's lock: delete the wiki, then let the request go on."""
    assert core.repos.asked.wait(WAIT), "the request never asked for the wiki's lock"
    core.delete_wiki(name)
    core.repos.go.set()
    thread.join(WAIT)
    assert not thread.is_alive()


def result(out: dict[str, Any]) -> Any:
    assert "result" in out, out.get("error")
    return out["result"]


def leftovers(core: Core, owner: str) -> list[Path]:
    """What is left of `owner` in the folders a wiki's deletion empties."""
    roots = (core.config.repos_dir, core.config.locks_dir, core.config.cache_dir / "packs", core.config.index_dir)
    return [root / owner for root in roots if (root / owner).exists()]


@pytest.fixture
def core(tmp_path: Path) -> Core:
    core = gated(open_core(platform_config(tmp_path / "data")))
    core.initialise()
    core.add_user("ann", password=PASSWORD, tier="premium")
    return core


# web saves
@pytest.fixture
def web(tmp_path: Path) -> tuple[Core, Platform]:
    core = gated(web_core(tmp_path / "data"))
    return core, Platform(routes(core))


def editor_form(client, wiki: WikiName, page: str) -> dict[str, str]:
    got = client.get(f"/{wiki}/{page}/edit")
    assert got.status_code == 200, got.text
    return {"csrf_token": csrf(got.text),
            "wikibot_base": re.search(r'name="wikibot_base" value="([0-9a-f]*)"', got.text).group(1)}


def test_a_web_save_racing_the_deletion_is_not_found_and_shows_the_text_to_copy(web):
    core, app = web
    client = sign_in(app, "eddie")
    form = editor_form(client, PRIVATE, "Home")
    core.repos.arm()
    saving, out = in_thread(lambda: client.post(f"/{PRIVATE}/Home/save",
                                                data={**form, "content": "# Home\n\nTyped <while> it went.\n"}))
    delete_while_held(core, PRIVATE, saving)

    got = result(out)
    assert got.status_code == 404, got.text
    assert "was deleted" in got.text and "Typed &lt;while&gt; it went." in got.text
    assert not core.repos.path(PRIVATE).exists() and not (core.config.locks_dir / "olga" / "priv.lock").exists()
    assert client.get(f"/{PRIVATE}/Home").status_code == 404  # as for any missing wiki


def test_a_web_save_is_not_committed_to_a_wiki_made_again_under_the_name_meanwhile(web):
    core, app = web
    client = sign_in(app, "eddie")  # an editor of the old wiki, none of the new one
    form = editor_form(client, PRIVATE, "A New Page")
    core.repos.arm()
    saving, out = in_thread(lambda: client.post(f"/{PRIVATE}/A New Page/save",
                                                data={**form, "content": "# Mine\n"}))
    assert core.repos.asked.wait(WAIT)
    core.delete_wiki(PRIVATE)
    _, head = create_wiki(core, PRIVATE, template="default")
    core.repos.go.set()
    saving.join(WAIT)

    got = result(out)
    assert got.status_code == 404 and "# Mine" in got.text
    assert core.repos.head(PRIVATE) == head


def test_an_editor_opened_by_an_anonymous_visitor_racing_the_deletion_signs_in_as_for_a_missing_wiki(web):
    core, app = web
    core.repos.arm()
    opening, out = in_thread(lambda: sign_in(app, None).get(f"/{PUBLIC}/Home/edit"))
    delete_while_held(core, PUBLIC, opening)

    got = result(out)
    assert got.status_code == 303 and got.headers["Location"].startswith("/-/login?next=")
    assert not core.repos.path(PUBLIC).exists()


def test_a_save_under_the_lock_of_a_deleted_wiki_keeps_the_text(tmp_path):
    from wikibot.webui.otterwiki.save import SaveRequest, save_page

    core = web_core(tmp_path / "data")
    request = SaveRequest(wiki=PRIVATE, filename="home.md", pagename="Home", content="# Kept\n", message="m",
                          base=core.repos.head(PRIVATE), author=("eddie", "eddie@example.org"), actor="eddie")
    core.delete_wiki(PRIVATE)
    with core.repos.lock(PRIVATE):  # as the host holds it
        outcome = save_page(core, request)
    assert not outcome.saved and outcome.gone and "deleted" in outcome.reason
    assert not core.repos.path(PRIVATE).exists()


# pushes
@pytest.fixture
def git_url(core: Core) -> Iterator[Callable[[WikiName, str], str]]:
    """The platform's git app on 127.0.0.1 (threads, like the real server's)."""
    git = GitHTTP(core)

    def bounded(environ: dict[str, Any], start_response: Any) -> Any:
        """A body that ends at its Content-Length, as gunicorn hands it over (werkzeug's server does not)."""
        if not environ.get("wsgi.input_terminated"):
            environ["wsgi.input"] = LimitedStream(environ["wsgi.input"], int(environ.get("CONTENT_LENGTH") or 0))
        return git(environ, start_response)

    server = make_server("127.0.0.1", 0, bounded, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        yield lambda wiki, token: f"http://user:{token}@127.0.0.1:{server.server_port}/{wiki}.git"
    finally:
        server.shutdown()
        serving.join(WAIT)


def push_racing_the_deletion(core: Core, url: str, clone: Path, then: Callable[[], object] = lambda: None) -> None:
    """`git push` of main and a new branch that waits at the lock while the wiki is deleted (and `then`
    runs): refused whole, as a missing wiki."""
    run_git("clone", "-q", url, str(clone))
    commit_files(clone, {"late.md": "# Late\n"}, "late")
    core.repos.arm()
    pushing, out = in_thread(lambda: run_git("push", "origin", "main", "main:refs/heads/side", cwd=clone,
                                             check=False))
    assert core.repos.asked.wait(WAIT), "the push never asked for the wiki's lock"
    core.delete_wiki(OLD)
    then()
    core.repos.go.set()
    pushing.join(WAIT)
    push = result(out)
    assert push.returncode != 0
    assert re.search(r"! \[remote rejected\] +main -> main \(no such wiki: ann/old\)", push.stderr), push.stderr
    assert "main -> side (no such wiki: ann/old)" in push.stderr


def test_a_push_racing_the_deletion_is_refused_and_puts_nothing_back(core, git_url, tmp_path):
    create_wiki(core, OLD, template="default")
    _, token = core.create_token("ann", scope="write")
    push_racing_the_deletion(core, git_url(OLD, token), tmp_path / "clone")
    assert not core.repos.path(OLD).exists() and leftovers(core, "ann") == []


def test_a_push_racing_the_deletion_never_lands_in_a_wiki_made_again_under_the_name(core, git_url, tmp_path):
    create_wiki(core, OLD, template="default")
    _, token = core.create_token("ann", scope="write")
    made: list[str | None] = []
    push_racing_the_deletion(core, git_url(OLD, token), tmp_path / "clone",
                             then=lambda: made.append(create_wiki(core, OLD, template="default")[1]))
    assert core.repos.head(OLD) == made[0]
    assert run_git("branch", "--list", "side", cwd=core.repos.path(OLD)).stdout == ""


# clones
def test_a_clone_building_its_pack_while_the_wiki_goes_leaves_no_folder(core):
    create_wiki(core, OLD, template="default")
    head = core.repos.head(OLD).encode()
    cache = PackCache(core.pack_cache_dir(OLD))
    stream = cache.stream(core.repos.path(OLD), [head], {MAIN.encode(): head}, False)
    first = next(stream)  # the pack is being built: its folder and temp file exist
    assert first.startswith(b"PACK") and core.pack_cache_dir(OLD).is_dir()
    core.delete_wiki(OLD)
    pack = first + b"".join(stream)  # the client still gets the whole pack
    assert hashlib.sha1(pack[:-20]).digest() == pack[-20:]
    assert leftovers(core, "ann") == []


def test_a_clone_of_a_wiki_deleted_after_its_refs_were_read_makes_no_folder(core):
    create_wiki(core, OLD, template="default")
    head = core.repos.head(OLD).encode()
    path = core.repos.path(OLD)
    core.delete_wiki(OLD)
    with pytest.raises(PackError):
        b"".join(PackCache(core.pack_cache_dir(OLD)).stream(path, [head], {MAIN.encode(): head}, False))
    assert leftovers(core, "ann") == []


# the index
def test_a_deleted_wiki_leaves_nothing_under_the_index_once_the_worker_heard_of_it(core):
    create_wiki(core, OLD, template="empty")
    other = WikiName("ann", "other")
    create_wiki(core, other, template="empty")
    store = IndexStore(core.config.index_dir)
    indexer = Indexer(core, store, Model(None, threads=1))
    for name in (OLD, other):
        with store.writer(name):
            store.save(name, WikiIndex.empty(indexer.model.dimension))
    core.delete_wiki(OLD)
    assert indexer.refresh(OLD).indexed_sha is None  # what the worker does with the deletion's event
    assert sorted(p.name for p in (core.config.index_dir / "ann").iterdir()) == [".other.lock", "other"]
    core.delete_wiki(other)
    indexer.refresh(other)
    assert leftovers(core, "ann") == [] and core.config.index_dir.is_dir()


# creation
def test_a_creation_whose_first_commit_races_the_deletion_is_told_the_wiki_is_gone(core, caplog):
    core.repos.arm(skip=2)  # the creation's own steps under the lock (hooks, re-check) pass; its first commit waits
    creating, out = in_thread(lambda: create_wiki(core, OLD, template="default"))
    with caplog.at_level(logging.ERROR):
        delete_while_held(core, OLD, creating)
    assert isinstance(out.get("error"), NoSuchWiki), out
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert leftovers(core, "ann") == []
