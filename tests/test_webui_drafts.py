"""Otterwiki's per-user state (its drafts) in-process (werkzeug test client over the platform's
router, real Otterwiki, real repositories): keyed by an address the platform makes from the
account, never by the email a user types, while commits keep the author the platform intends."""
from __future__ import annotations

import io
import re
import sqlite3

import pytest
from werkzeug.test import Client

from wikibot.app import Platform, routes
from wikibot.gitd.core import Core
from wikibot.gitd.names import WikiName
from wikibot.gitd.records import Grant
from wikibot.testing.web import PASSWORD, PRIVATE, PUBLIC, csrf, sign_in, web_core
from wikibot.webui.otterwiki.state import STATE_FILE, forget_user, otterwiki_address

REVISION = re.compile(r'formData\.append\("revision", "([0-9a-f]*)"\)')


@pytest.fixture(scope="module")
def core(tmp_path_factory) -> Core:
    return web_core(tmp_path_factory.mktemp("drafts") / "data")


@pytest.fixture(scope="module")
def app(core) -> Platform:
    return Platform(routes(core))


def add_editor(core: Core, name: str, email: str, wiki: WikiName = PRIVATE) -> None:
    core.add_user(name, email=email, password=PASSWORD, tier="premium")
    core.store.set_grant(Grant(wiki=wiki, user=name, role="editor"))


def save_draft(client: Client, wiki: WikiName, page: str, text: str) -> None:
    editor = client.get(f"/{wiki}/{page}/edit")
    assert editor.status_code == 200, editor.text
    got = client.post(f"/{wiki}/{page}/draft", headers={"X-CSRFToken": csrf(editor.text)},
                      data={"content": text, "cursor_line": "0", "cursor_ch": "0",
                            "revision": REVISION.search(editor.text).group(1)})
    assert got.status_code == 200 and got.json["status"] != "draft discarded", got.text


def draft_rows(core: Core, wiki: WikiName) -> list[tuple[str, str, str]]:
    """(page, author address, text) of every draft in the wiki's Otterwiki database."""
    with sqlite3.connect(core.repos.path(wiki) / ".git" / "wikibot" / STATE_FILE) as db:
        return sorted(db.execute("SELECT pagepath, author_email, content FROM drafts").fetchall())


def resumed(client: Client, wiki: WikiName, page: str) -> str:
    """The editor with the visitor's draft of `page` taken up (Otterwiki's "continue editing")."""
    editor = client.get(f"/{wiki}/{page}/edit")
    assert editor.status_code == 200, editor.text
    got = client.post(f"/{wiki}/{page}/edit", data={"draft": "edit", "csrf_token": csrf(editor.text)})
    assert got.status_code == 200, got.text
    return editor.text + got.text


def test_an_editor_who_types_the_owners_email_cannot_see_continue_or_discard_the_owners_draft(core, app):
    owner, editor = sign_in(app, "olga"), sign_in(app, "eddie")
    save_draft(owner, PRIVATE, "Home", "# Home\n\nolga secret draft\n")
    core.update_profile("eddie", email="olga@example.org", full_name="")
    assert "olga secret draft" not in resumed(editor, PRIVATE, "Home")
    page = editor.get(f"/{PRIVATE}/Home/edit")
    assert editor.post(f"/{PRIVATE}/Home/draft/discard", headers={"X-CSRFToken": csrf(page.text)}).status_code == 200
    save_draft(editor, PRIVATE, "Home", "# Home\n\neddie own draft\n")
    assert "olga secret draft" in resumed(owner, PRIVATE, "Home")
    assert "eddie own draft" in resumed(editor, PRIVATE, "Home")
    rows = [row for row in draft_rows(core, PRIVATE) if row[0] == "Home"]
    assert rows == sorted([("Home", otterwiki_address(core.user("olga")), "# Home\n\nolga secret draft\n"),
                           ("Home", otterwiki_address(core.user("eddie")), "# Home\n\neddie own draft\n")])
    assert not any("example.org" in address for _, address, _ in draft_rows(core, PRIVATE))


def test_an_account_made_again_under_a_deleted_ones_name_does_not_see_its_drafts(core, app):
    add_editor(core, "rita", "rita@example.org")
    save_draft(sign_in(app, "rita"), PRIVATE, "Getting_Started", "# Getting started\n\nthe first rita\n")
    old = core.user("rita")
    core.delete_user("rita")
    add_editor(core, "rita", "rita@example.org")
    assert otterwiki_address(core.user("rita")) != otterwiki_address(old)
    assert "the first rita" not in resumed(sign_in(app, "rita"), PRIVATE, "Getting_Started")


def test_two_accounts_without_an_email_do_not_share_drafts(core, app):
    add_editor(core, "nea", "", wiki=PUBLIC)
    add_editor(core, "nob", "", wiki=PUBLIC)
    nea, nob = sign_in(app, "nea"), sign_in(app, "nob")
    save_draft(nea, PUBLIC, "Home", "# Home\n\nwords of nea\n")
    assert "words of nea" not in resumed(nob, PUBLIC, "Home")
    assert "words of nea" in resumed(nea, PUBLIC, "Home")


def test_a_deleted_users_drafts_are_forgotten_and_no_one_elses(core, app):
    add_editor(core, "gone", "gone@example.org", wiki=PUBLIC)
    core.store.set_grant(Grant(wiki=PRIVATE, user="gone", role="editor"))
    client = sign_in(app, "gone")
    save_draft(client, PUBLIC, "Home", "# Home\n\npublic draft of gone\n")
    save_draft(client, PRIVATE, "Home", "# Home\n\nprivate draft of gone\n")
    save_draft(sign_in(app, "olga"), PUBLIC, "Getting_Started", "# Getting started\n\nolga stays\n")
    user = core.user("gone")
    core.delete_user("gone")  # the platform's deletion forgets them (wiring's user cleanup)
    for wiki in (PUBLIC, PRIVATE):
        assert not [row for row in draft_rows(core, wiki) if row[1] == otterwiki_address(user)]
    assert ("Getting_Started", otterwiki_address(core.user("olga")), "# Getting started\n\nolga stays\n") \
        in draft_rows(core, PUBLIC)
    assert forget_user(core, user) == 0


def last_author(core: Core, wiki: WikiName) -> tuple[str, str]:
    commit = core.repo(wiki).log(core.repos.head(wiki), limit=1)[0]
    return commit.author, commit.email


def test_web_commits_carry_the_users_name_and_email_or_the_platform_address(core, app):
    add_editor(core, "wes", "wes@example.org")
    add_editor(core, "nil", "")
    for name, email in (("wes", "wes@example.org"), ("nil", "nil@users.wikibot")):
        client = sign_in(app, name)
        editor = client.get(f"/{PRIVATE}/Home/edit")
        base = re.search(r'name="wikibot_base" value="([0-9a-f]*)"', editor.text).group(1)
        got = client.post(f"/{PRIVATE}/Home/save", data={"csrf_token": csrf(editor.text), "wikibot_base": base,
                                                        "content": f"# Home\n\nsaved by {name}\n"})
        assert got.status_code == 302, got.text
        assert last_author(core, PRIVATE) == (name, email)  # the platform's commit path
        files = client.get(f"/{PRIVATE}/Home/attachments")
        got = client.post(f"/{PRIVATE}/Home/attachments", content_type="multipart/form-data",
                          data={"csrf_token": csrf(files.text), "message": "a file",
                                "file": (io.BytesIO(f"from {name}\n".encode()), f"{name}.txt")})
        assert got.status_code in (200, 302, 303), got.text
        assert last_author(core, PRIVATE) == (name, email)  # Otterwiki's own commit
        rename = client.get(f"/{PRIVATE}/Home/attachment/{name}.txt")
        got = client.post(f"/{PRIVATE}/Home/attachment/{name}.txt", data={"csrf_token": csrf(rename.text),
                                                                           "new_filename": f"{name}-renamed.txt",
                                                                           "message": "renamed"})
        assert got.status_code in (200, 302, 303), got.text
        assert core.repo(PRIVATE).read(core.repos.head(PRIVATE), f"home/{name}-renamed.txt") == \
            f"from {name}\n".encode()
        assert last_author(core, PRIVATE) == (name, email)  # Otterwiki's rename, through its storage's commit
        gone = client.get(f"/{PRIVATE}/Home/attachment/{name}-renamed.txt")
        got = client.post(f"/{PRIVATE}/Home/attachment/{name}-renamed.txt",
                          data={"csrf_token": csrf(gone.text), "delete": "1", "message": "deleted"})
        assert got.status_code in (200, 302, 303), got.text
        assert core.repo(PRIVATE).read(core.repos.head(PRIVATE), f"home/{name}-renamed.txt") is None
        assert last_author(core, PRIVATE) == (name, email)  # Otterwiki's delete
        deletion = core.repos.head(PRIVATE)
        form = client.get(f"/{PRIVATE}/-/revert/{deletion}")
        got = client.post(f"/{PRIVATE}/-/revert/{deletion}", data={"csrf_token": csrf(form.text), "message": "back"})
        assert got.status_code in (200, 302, 303), got.text
        assert core.repo(PRIVATE).read(core.repos.head(PRIVATE), f"home/{name}-renamed.txt") is not None
        assert last_author(core, PRIVATE) == (name, email)  # Otterwiki's revert


def test_a_save_ends_the_savers_draft_and_no_one_elses(core, app):
    add_editor(core, "sal", "olga@example.org")  # the owner's email, typed
    sal, owner = sign_in(app, "sal"), sign_in(app, "olga")
    save_draft(sal, PRIVATE, "Agent_Guide", "# Agent guide\n\ndraft of sal\n")
    save_draft(owner, PRIVATE, "Agent_Guide", "# Agent guide\n\ndraft of olga\n")
    editor = resumed(sal, PRIVATE, "Agent_Guide")
    assert "draft of sal" in editor
    base = re.search(r'name="wikibot_base" value="([0-9a-f]*)"', editor).group(1)
    got = sal.post(f"/{PRIVATE}/Agent_Guide/save", data={"csrf_token": csrf(editor), "wikibot_base": base,
                                                          "content": "# Agent guide\n\nsaved by sal\n"})
    assert got.status_code == 302, got.text
    assert [row[1:] for row in draft_rows(core, PRIVATE) if row[0] == "Agent_Guide"] == \
        [(otterwiki_address(core.user("olga")), "# Agent guide\n\ndraft of olga\n")]
