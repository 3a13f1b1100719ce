"""Review of the web wiki (webui/): each test is a bug found by attacking it in-process, and fails
until that bug is fixed. Same setup as test_webui.py (werkzeug Client over the platform's router,
real Otterwiki, real repositories), with wikis of their own so the two files never interfere."""
from __future__ import annotations

import html
import io
import re
import sqlite3
import threading

import pytest
from werkzeug.test import Client

from wikibot.app import Platform, routes
from wikibot.bootstrap.create import create_wiki
from wikibot.gitd.commits import FileChange
from wikibot.gitd.core import Core
from wikibot.gitd.names import WikiName
from wikibot.testing.web import PASSWORD, PRIVATE, PUBLIC, SMALL, csrf, sign_in, web_core
from wikibot.webui.otterwiki.state import otterwiki_address, state_file

PUSHER = ("someone", "s@example.org")


@pytest.fixture(scope="module")
def core(tmp_path_factory) -> Core:
    return web_core(tmp_path_factory.mktemp("webui-review") / "data")


@pytest.fixture(scope="module")
def app(core) -> Platform:
    return Platform(routes(core))


def form_of(page: str) -> dict[str, str]:
    """The hidden fields a browser would send back from this editor page (the base only if it is there)."""
    fields = {"csrf_token": csrf(page)}
    base = re.search(r'name="wikibot_base" value="([0-9a-f]*)"', page)
    if base:
        fields["wikibot_base"] = base.group(1)
    return fields


def shown_text(page: str) -> str:
    found = re.search(r"<textarea[^>]*>(.*?)</textarea>", page, flags=re.S)
    assert found, "the editor shows no text"
    return html.unescape(found.group(1))


def page_at_head(core: Core, wiki: WikiName, filename: str) -> bytes:
    return core.repo(wiki).read(core.repos.head(wiki), filename) or b""


def push(core: Core, wiki: WikiName, filename: str, text: bytes) -> str:
    return core.commit(wiki, [FileChange(filename, text)], message="meanwhile", author=PUSHER, actor="olga",
                       source="mcp")


# data loss: saves that overwrite what they never showed
def test_the_editor_behind_otterwikis_own_edit_button_detects_a_push_meanwhile(core, app):
    """Otterwiki 2.26 links its Edit button to `/Page?edit`, not `/Page/edit`: that editor carries no
    wikibot_base, so the save is based on whatever HEAD is at save time and overwrites the push."""
    push(core, PUBLIC, "button.md", b"# Button\n\nfirst\n")
    client = sign_in(app, "eddie")
    view = client.get(f"/{PUBLIC}/Button")
    assert f'href="/{PUBLIC}/Button?edit"' in view.text  # what a user clicks
    editor = client.get(f"/{PUBLIC}/Button?edit")
    assert editor.status_code == 200
    push(core, PUBLIC, "button.md", b"# Button\n\nChanged by a push meanwhile.\n")
    got = client.post(f"/{PUBLIC}/Button/save", data={**form_of(editor.text), "content": "# Button\n\nmine\n"})
    assert got.status_code == 409, "a save from the Edit button silently overwrote a newer commit"
    assert b"Changed by a push meanwhile." in page_at_head(core, PUBLIC, "button.md")


def test_a_save_without_the_base_field_is_not_a_blind_overwrite(core, app):
    """A tab opened before the platform added the field, or any form without it: no base must not
    mean 'based on the newest commit'."""
    push(core, PUBLIC, "nobase.md", b"# No base\n\nChanged by a push.\n")
    client = sign_in(app, "eddie")
    token = csrf(client.get(f"/{PUBLIC}/Nobase/edit").text)
    got = client.post(f"/{PUBLIC}/Nobase/save", data={"csrf_token": token, "content": "# No base\n\nmine\n"})
    assert got.status_code in (409, 422) and "mine" in got.text  # refused, the text kept for another try
    assert b"Changed by a push." in page_at_head(core, PUBLIC, "nobase.md")


def test_an_editor_opened_while_a_push_syncs_the_worktree_cannot_undo_the_push(core, app, monkeypatch):
    """A push moves the ref, then resets the worktree. An editor opened in between reads the new
    HEAD (its base) but the old file (its text): saving it reverts the push without a conflict."""
    push(core, PUBLIC, "race.md", b"# Race\n\nold text\n")
    client = sign_in(app, "eddie")
    opened: dict[str, str] = {}
    original = core.repos.sync_worktree

    def lagging(name: WikiName) -> None:
        if name == PUBLIC and not opened:  # the ref has moved, the files not yet: a browser opens the editor
            def open_editor() -> None:
                opened["page"] = client.get(f"/{PUBLIC}/Race/edit").text
            reader = threading.Thread(target=open_editor)
            reader.start()
            reader.join(timeout=2)  # a fix may make it wait for the writer's lock: then it reads after the sync
            opened.setdefault("thread", reader)  # type: ignore[arg-type]
        original(name)

    monkeypatch.setattr(core.repos, "sync_worktree", lagging)
    push(core, PUBLIC, "race.md", b"# Race\n\npushed text\n")
    monkeypatch.setattr(core.repos, "sync_worktree", original)
    opened["thread"].join(timeout=30)  # type: ignore[attr-defined]
    page = opened["page"]
    edited = shown_text(page).rstrip("\n") + "\n\nmy addition\n"
    got = client.post(f"/{PUBLIC}/Race/save", data={**form_of(page), "content": edited})
    assert got.status_code == 409 or b"pushed text" in page_at_head(core, PUBLIC, "race.md"), \
        "the save reverted a push it was never shown"


def test_a_refused_save_resaved_from_the_refusal_page_is_no_false_conflict(core, app):
    """A save refused by a limit answers with base="" (the outcome's head is None), so the resave
    of a page that exists is then refused as 'changed by someone else' though nothing changed."""
    client = sign_in(app, "tina")
    editor = client.get(f"/{SMALL}/Home/edit")
    big = "# Home\n\n" + "x" * (1024 * 1024 + 10)  # over her 1 MB per-file limit
    refused = client.post(f"/{SMALL}/Home/save", data={**form_of(editor.text), "content": big})
    assert refused.status_code == 422
    again = client.post(f"/{SMALL}/Home/save", data={**form_of(refused.text), "content": "# Home\n\nshorter now\n"})
    assert again.status_code == 302, re.sub(r"\s+", " ", again.text)[:300]


def test_a_get_cannot_wipe_a_draft(core, app):
    """Otterwiki's /draft route saves on GET too (the form fields then empty), and GETs carry no
    CSRF check: any site can send a signed-in editor there (SameSite=Lax lets a navigation through)."""
    client = sign_in(app, "eddie")
    editor = client.get(f"/{PUBLIC}/Home/edit")
    saved = client.post(f"/{PUBLIC}/Home/draft", data={"csrf_token": csrf(editor.text), "content": "my precious draft",
                                                       "revision": ""})
    assert saved.status_code == 200
    client.get(f"/{PUBLIC}/Home/draft")  # e.g. <a href> or window.location from another site
    with sqlite3.connect(state_file(core.repos.path(PUBLIC))) as db:
        drafts = db.execute("SELECT content FROM drafts WHERE author_email = ?",
                            (otterwiki_address(core.user("eddie")),)).fetchall()
    assert drafts == [("my precious draft",)]


# Otterwiki's own commits skip the platform's policies and locks
def test_an_upload_cannot_add_a_page_over_the_page_limit(core, app):
    client = sign_in(app, "tina")
    before = core.repo(SMALL).tree_usage(core.repos.head(SMALL)).pages
    assert before == 4
    form = client.get(f"/{SMALL}/Home/attachments")
    client.post(f"/{SMALL}/Home/attachments", content_type="multipart/form-data",
                data={"csrf_token": csrf(form.text), "message": "m", "file": (io.BytesIO(b"# Fifth\n"), "fifth.md")})
    assert core.repo(SMALL).tree_usage(core.repos.head(SMALL)).pages <= 4


def test_an_upload_cannot_commit_a_path_a_push_would_refuse(core, app):
    client = sign_in(app, "eddie")
    form = client.get(f"/{PRIVATE}/Home/attachments")
    client.post(f"/{PRIVATE}/Home/attachments", content_type="multipart/form-data",
                data={"csrf_token": csrf(form.text), "message": "m", "file": (io.BytesIO(b"x"), "a:b.txt")})
    assert not page_at_head(core, PRIVATE, "home/a:b.txt")  # ':' is refused on every other path


def test_an_otterwiki_write_to_an_attachment_named_save_takes_the_wiki_lock(core, app):
    """Writes skip the host's lock when the path ends in /save (saves lock inside the commit); but
    `/Page/attachment/save` is edit_attachment, an Otterwiki commit, on a file named `save`."""
    push(core, PUBLIC, "home/save", b"an attachment called save\n")
    client = sign_in(app, "eddie")
    form = client.get(f"/{PUBLIC}/Home/attachment/save")
    assert form.status_code == 200
    head = core.repos.head(PUBLIC)
    done = threading.Event()

    def delete() -> None:
        client.post(f"/{PUBLIC}/Home/attachment/save", data={"csrf_token": csrf(form.text), "delete": "1",
                                                              "message": "delete it"})
        done.set()

    with core.repos.lock(PUBLIC):  # a push in progress
        writer = threading.Thread(target=delete)
        writer.start()
        done.wait(timeout=3)
        moved = core.repos.head(PUBLIC) != head
    writer.join(timeout=90)
    assert not moved, "Otterwiki committed while a push held the wiki's lock"


# path tricks
@pytest.mark.parametrize(("user", "path"), [
    ("olga", "//-/admin/repository_management"), ("olga", "//-/admin/user_management"),
    ("olga", "//-/admin/mail_preferences"), ("olga", "//-/housekeeping"), ("eddie", "//-/housekeeping"),
])
def test_a_doubled_slash_reaches_no_refused_otterwiki_page(app, user, path):
    """The block lists are regexes over the raw path; Werkzeug merges `//` when it routes."""
    got = sign_in(app, user).get(f"/{PUBLIC}{path}")
    assert got.status_code == 404, f"{user} reached {path}: {got.status_code}"


# resources
def test_a_slow_request_body_does_not_stop_every_wiki(core, app):
    """An anonymous POST to a public wiki runs Otterwiki (which reads the body for its CSRF check)
    while holding the process-wide Otterwiki lock and the wiki's writer lock: a client trickling
    its body stops every web wiki of the worker, and pushes to that wiki."""
    owner = sign_in(app, "olga")
    assert owner.get(f"/{PRIVATE}/").status_code == 200  # Otterwiki loaded: what follows is only the lock
    release = threading.Event()

    class Trickle(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            release.wait(timeout=20)
            return 0

    def slow_post() -> None:
        Client(app).post(f"/{PUBLIC}/Home/rename", environ_overrides={
            "wsgi.input": io.BufferedReader(Trickle()), "CONTENT_LENGTH": "10000",
            "CONTENT_TYPE": "application/x-www-form-urlencoded"})

    poster = threading.Thread(target=slow_post)
    poster.start()
    try:
        threading.Event().wait(0.5)
        answered: list[int] = []
        reader = threading.Thread(target=lambda: answered.append(owner.get(f"/{PRIVATE}/").status_code))
        reader.start()
        reader.join(timeout=5)
        assert answered == [200], "another wiki's page waited for an anonymous client's request body"
    finally:
        release.set()
        poster.join(timeout=30)
        reader.join(timeout=30)


def test_a_huge_user_name_is_not_stored_by_the_login_limiter(core, app):
    client = Client(app)
    token = csrf(client.get("/-/login").text)
    client.post("/-/login", data={"username": "n" * 60_000, "password": "wrong password", "csrf_token": token})
    with sqlite3.connect(core.config.cache_dir / "logins.sqlite3") as db:
        longest = db.execute("SELECT max(length(key)) FROM failures").fetchone()[0]
    assert longest is None or longest <= 300, f"a failed sign-in stored a {longest}-character key"


# sessions
def test_a_deleted_users_cookie_does_not_sign_in_a_new_user_of_that_name(core, app):
    core.add_user("leaver", password=PASSWORD, tier="premium")
    old = sign_in(app, "leaver")
    core.delete_user("leaver")
    core.add_user("leaver", password="another password entirely", tier="premium")
    diary = WikiName("leaver", "diary")
    create_wiki(core, diary, template="default")
    assert old.get(f"/{diary}/").status_code == 303, "the old account's cookie opened the new account's wiki"


# fidelity
def test_an_html_attachment_is_served_as_it_was_uploaded(core, app):
    data = b'<p>saved page</p><a href="/elsewhere">link</a><img src="/pic.png">\n'
    push(core, PRIVATE, "home/saved.html", data)
    client = sign_in(app, "vera")
    for path in (f"/{PRIVATE}/Home/a/saved.html", f"/{PRIVATE}/Home/saved.html"):
        got = client.get(path)
        assert got.status_code == 200 and got.data == data, path
