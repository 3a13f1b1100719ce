"""The web wiki in-process (werkzeug test client over the platform's router, real Otterwiki, real
repositories): sign-in, every role on public and private wikis, spoofed headers, saves through
the platform (conflicts, limits, events), Otterwiki pages that are the platform's."""
from __future__ import annotations

import io
import re
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from werkzeug.test import Client

from wikibot.app import Platform, routes
from wikibot.bootstrap.create import create_wiki
from wikibot.gitd.commits import FileChange
from wikibot.gitd.core import Core
from wikibot.gitd.names import WikiName
from wikibot.hooks.post_receive import Publisher
from wikibot.testing.web import PASSWORD, PRIVATE, PUBLIC, SMALL, csrf, sign_in, web_core

ROLES = (None, "sam", "vera", "eddie", "olga")  # anonymous, stranger, viewer, editor, owner


@pytest.fixture(scope="module")
def core(tmp_path_factory) -> Core:
    return web_core(tmp_path_factory.mktemp("webui") / "data", strangers=("sam",))


@pytest.fixture(scope="module")
def app(core) -> Platform:
    return Platform(routes(core))


@pytest.fixture(scope="module")
def clients(app) -> dict[str | None, Client]:
    return {user: sign_in(app, user) for user in ROLES}


def editor_form(client: Client, wiki: WikiName, page: str) -> dict[str, str]:
    got = client.get(f"/{wiki}/{page}/edit")
    assert got.status_code == 200, got.text
    base = re.search(r'name="wikibot_base" value="([0-9a-f]*)"', got.text)
    assert base, "the editor's save form does not carry the revision it was opened at"
    return {"csrf_token": csrf(got.text), "wikibot_base": base.group(1)}


# sign-in
def test_login_form_has_the_contract_fields_and_signs_in_to_next(app):
    client = Client(app)
    form = client.get("/-/login?next=/olga/priv/")
    assert form.status_code == 200
    assert 'name="username"' in form.text and 'type="password"' in form.text
    got = client.post("/-/login", data={"username": "olga", "password": PASSWORD, "csrf_token": csrf(form.text),
                                        "next": "/olga/priv/"})
    assert (got.status_code, got.headers["Location"]) == (303, "/olga/priv/")
    cookie = got.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie and "Secure" not in cookie
    assert client.get("/olga/priv/").status_code == 200


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"])
def test_next_never_leaves_the_site(app, target):
    client = Client(app)
    form = client.get("/-/login")
    got = client.post("/-/login", data={"username": "olga", "password": PASSWORD, "csrf_token": csrf(form.text),
                                        "next": target})
    assert (got.status_code, got.headers["Location"]) == (303, "/")


def test_a_form_without_the_csrf_token_is_refused(app):
    client = Client(app)
    client.get("/-/login")
    assert client.post("/-/login", data={"username": "olga", "password": PASSWORD}).status_code == 400
    signed_in = sign_in(app, "olga")
    assert signed_in.post("/-/logout").status_code == 400  # a cross-site sign-out is refused too


def test_wrong_passwords_are_refused_then_limited_per_account(core, app):
    core.add_user("guessed", password=PASSWORD)
    client = Client(app)
    token = csrf(client.get("/-/login").text)
    statuses = [client.post("/-/login", data={"username": "guessed", "password": f"wrong {i}", "csrf_token": token},
                            environ_base={"REMOTE_ADDR": f"10.0.0.{i}"}).status_code for i in range(11)]
    assert statuses == [401] * 10 + [429]
    right = client.post("/-/login", data={"username": "guessed", "password": PASSWORD, "csrf_token": token},
                        environ_base={"REMOTE_ADDR": "10.0.1.1"})
    assert right.status_code == 429 and "try again in" in right.text  # even the right password waits


def test_sign_out_ends_the_session(app):
    client = sign_in(app, "vera")
    assert client.get("/olga/priv/").status_code == 200
    home = client.get("/")
    got = client.post("/-/logout", data={"csrf_token": csrf(home.text)})
    assert got.status_code == 303 and "Max-Age=0" in got.headers["Set-Cookie"]
    assert client.get("/olga/priv/").status_code == 303  # to the sign-in page again


def test_a_forged_session_cookie_is_anonymous(app):
    client = Client(app)
    client.set_cookie("wikibot_session", "eyJzIjoieCIsInUiOiJvbGdhIiwidCI6MX0.forged.sig")
    assert client.get("/olga/priv/").headers["Location"].startswith("/-/login")


# roles
PAGES = ["/", "/Home", "/Home/history", "/Home/blame", "/Home/attachments", "/-/changelog", "/-/index",
         "/Home/source"]
EDITING = ["/Home/edit", "/Home/rename", "/Home/delete"]
OWNING = ["/-/admin", "/-/admin/sidebar_preferences", "/-/admin/content_and_editing"]


def expected(user: str | None, wiki: WikiName, path: str) -> int:
    role = {"vera": "viewer", "eddie": "editor", "olga": "owner"}.get(user or "")
    if wiki == PRIVATE and role is None:
        return 303 if user is None else 404  # anonymous: sign in; a stranger: no such wiki
    if path in OWNING:
        return 200 if role == "owner" else 404
    if path in EDITING:
        return 200 if role in ("editor", "owner") else (303 if user is None else 403)
    return 200


@pytest.mark.parametrize("wiki", [PRIVATE, PUBLIC], ids=str)
@pytest.mark.parametrize("user", ROLES, ids=lambda u: u or "anonymous")
def test_every_page_answers_each_role_as_the_acl_says(clients, user, wiki):
    got = {path: clients[user].get(f"/{wiki}{path}").status_code for path in PAGES + EDITING + OWNING}
    assert got == {path: expected(user, wiki, path) for path in got}


def test_a_private_wiki_answers_a_stranger_as_a_missing_one(clients):
    for path in ["/", "/Home", "/Home/edit", "/-/admin"]:
        private, missing = clients["sam"].get(f"/olga/priv{path}"), clients["sam"].get(f"/olga/nothing{path}")
        assert (private.status_code, private.text.replace("priv", "X")) == \
            (missing.status_code, missing.text.replace("nothing", "X"))
        private, missing = clients[None].get(f"/olga/priv{path}"), clients[None].get(f"/olga/nothing{path}")
        assert private.status_code == missing.status_code == 303
        assert private.headers["Location"].replace("priv", "X") == missing.headers["Location"].replace("nothing", "X")


SPOOFED = {"X-Otterwiki-Name": "olga", "X-Otterwiki-Email": "olga@example.org",
           "X-Otterwiki-Permissions": "READ,WRITE,UPLOAD,ADMIN"}


@pytest.mark.parametrize("user", [None, "sam", "vera"], ids=lambda u: u or "anonymous")
def test_spoofed_otterwiki_headers_grant_nothing(clients, user):
    for wiki in (PRIVATE, PUBLIC):
        for path in EDITING + OWNING + ["/", "/Home"]:
            got = clients[user].get(f"/{wiki}{path}", headers=SPOOFED)
            assert got.status_code == expected(user, wiki, path), (wiki, path)


def test_a_viewer_cannot_save_even_with_a_valid_form(clients, core):
    head = core.repos.head(PUBLIC)
    form = clients["vera"].get(f"/{PUBLIC}/Home")
    got = clients["vera"].post(f"/{PUBLIC}/Home/save", data={"content": "vandalised", "csrf_token": csrf(form.text),
                                                             "wikibot_base": head}, headers=SPOOFED)
    assert got.status_code == 403 and core.repos.head(PUBLIC) == head


def test_otterwikis_own_account_pages_go_to_the_platform(clients):
    for path, location in [("/-/login", f"/-/login?next=/{PUBLIC}/"), ("/-/register", f"/-/login?next=/{PUBLIC}/"),
                           ("/-/lost_password", f"/-/login?next=/{PUBLIC}/"), ("/-/logout", "/"),
                           ("/-/settings", "/")]:
        got = clients["eddie"].get(f"/{PUBLIC}{path}")
        assert (got.status_code, got.headers.get("Location", "").replace("%2F", "/")) == (303, location), path
    for path in ["/-/admin/user_management", "/-/admin/permissions_and_registration", "/-/admin/mail_preferences",
                 "/-/admin/repository_management", "/.git/info/refs", "/-/api/v1/pull/x", "/-/housekeeping"]:
        assert clients["olga"].get(f"/{PUBLIC}{path}").status_code == 404, path


# saves
def test_a_web_save_is_one_commit_by_the_user_announced_as_a_web_event(core, clients):
    before = core.repos.head(PRIVATE)
    form = editor_form(clients["eddie"], PRIVATE, "Home")
    assert form["wikibot_base"] == before
    got = clients["eddie"].post(f"/{PRIVATE}/Home/save", data={**form, "content": "# Home\n\nSaved from the web.\n",
                                                                "commit": "a web edit"})
    assert (got.status_code, got.headers["Location"]) == (302, f"/{PRIVATE}/Home")
    repo = core.repo(PRIVATE)
    commit = repo.log(core.repos.head(PRIVATE), limit=1)[0]
    assert (commit.author, commit.email, commit.message.strip()) == ("eddie", "eddie@example.org", "a web edit")
    assert repo.first_parent(commit.revision) == before
    assert repo.read(commit.revision, "home.md") == b"# Home\n\nSaved from the web.\n"
    events = [e for e in Publisher(core.config.data_dir).queue.events_of(PRIVATE) if e.new_sha == commit.revision]
    assert [(e.source, e.actor) for e in events] == [("web", "eddie")]
    assert "Saved from the web." in clients["vera"].get(f"/{PRIVATE}/Home").text


def test_a_stale_save_is_a_conflict_that_keeps_the_text_and_changes_nothing(core, clients):
    form = editor_form(clients["eddie"], PUBLIC, "Home")
    pushed = core.commit(PUBLIC, [FileChange("home.md", b"# Home\n\nChanged by a push meanwhile.\n")],
                         message="meanwhile", author=("someone", "s@example.org"), actor="olga", source="mcp")
    mine = "# Home\n\nMy web text, typed for an hour.\n"
    got = clients["eddie"].post(f"/{PUBLIC}/Home/save", data={**form, "content": mine, "commit": "mine"})
    assert got.status_code == 409
    assert core.repos.head(PUBLIC) == pushed
    assert "My web text, typed for an hour." in got.text and "Changed by a push meanwhile." in got.text
    assert 'id="wikibot-diff"' in got.text
    again = re.search(r'name="wikibot_base" value="([0-9a-f]+)"', got.text).group(1)
    assert again == pushed  # saving from the conflict page is based on the page as it is now
    resaved = clients["eddie"].post(f"/{PUBLIC}/Home/save", data={"csrf_token": csrf(got.text), "wikibot_base": again,
                                                                  "content": mine, "commit": "mine, merged"})
    assert resaved.status_code == 302
    assert core.repo(PUBLIC).read(core.repos.head(PUBLIC), "home.md") == mine.encode()


def test_a_save_of_another_page_is_no_conflict(core, clients):
    form = editor_form(clients["olga"], PUBLIC, "Getting Started")
    core.commit(PUBLIC, [FileChange("home.md", b"# Home\n\nAnother page moved on.\n")], message="other",
                author=("someone", "s@example.org"), actor="olga", source="mcp")
    got = clients["olga"].post(f"/{PUBLIC}/Getting Started/save", data={**form, "content": "# Getting started\n\nok\n"})
    assert got.status_code == 302


def test_a_save_over_the_page_limit_is_refused_and_keeps_the_text(core, app):
    client = sign_in(app, "tina")
    head = core.repos.head(SMALL)
    form = editor_form(client, SMALL, "A Fifth Page")
    text = "# A fifth page\n\nWords I do not want to lose.\n"
    got = client.post(f"/{SMALL}/A Fifth Page/save", data={**form, "content": text, "commit": "new"})
    assert got.status_code == 422
    assert "4" in got.text and "page" in got.text.lower()  # the limit, said in the page
    assert "Words I do not want to lose." in got.text
    assert core.repos.head(SMALL) == head


def test_the_wiki_state_lives_in_its_repository_and_goes_with_it(core, clients):
    core.add_user("gone", password=PASSWORD, tier="premium")
    wiki = WikiName("gone", "w")
    create_wiki(core, wiki, template="default")
    client = sign_in(Platform(routes(core)), "gone")
    assert client.get(f"/{wiki}/").status_code == 200
    state = core.repos.path(wiki) / ".git" / "wikibot" / "otterwiki.sqlite3"
    assert state.is_file()
    core.delete_wiki(wiki)
    assert not state.exists() and not Path(core.repos.path(wiki)).exists()


# the prefix: every URL on every page type stays under /OWNER/WIKI/ or /-/
LINKED = {
    "links.md": b"# Links\n\n[[Home]], [[Getting Started|a wiki link with a label]], [absolute](/Home),\n"
                b"[into a folder](/Sub/Page), ![an image](/links/a/pic.png), <a href=\"/raw\">raw html</a>\n",
    "sub/page.md": b"# Sub page\n\nIn a folder, back to [[Links]].\n",
    "links/pic.png": b"\x89PNG\r\n\x1a\n" + bytes(64),
}
ATTRIBUTE_URL = re.compile(r"""\s(?:href|src|action|formaction|data-[\w-]+)\s*=\s*["']([^"']*)["']""")
SCRIPT_PATH = re.compile(r"""["'`](/[\w\-.][^"'`\s]*)["'`]""")
DESTRUCTIVE = ("/delete", "/rename", "/revert", "/logout")


def test_no_link_on_any_page_type_leaves_the_wiki(core, app):
    wiki = WikiName("olga", "crawl")
    create_wiki(core, wiki, template="default")
    core.commit(wiki, [FileChange(path, data) for path, data in LINKED.items()], message="pages with links",
                author=("olga", "olga@example.org"), actor="olga", source="mcp")
    client = sign_in(app, "olga")
    prefix = f"/{wiki}/"
    start = ["", "Links", "Sub/Page", "Links/edit", "Links/history", "Links/blame", "Links/attachments", "-/changelog",
             "-/index", "-/help", "-/about", "-/syntax", "-/admin", "-/admin/sidebar_preferences",
             "-/admin/content_and_editing", "-/search?query=links", "-/create", "Links/source", "Nothing Here"]
    queue, seen, escapes = [prefix + page for page in start], set(), {}
    while queue and len(seen) < 160:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        got = client.get(url)
        if not got.headers.get("Content-Type", "").startswith("text/html"):
            continue
        found = ATTRIBUTE_URL.findall(got.text)
        for script in re.findall(r"<script\b[^>]*>(.*?)</script>", got.text, flags=re.S):
            found += [literal for literal in SCRIPT_PATH.findall(script) if literal != "/--/"]  # a JS regex
        for link in found:
            link = link.strip()
            if not link or link.startswith(("#", "javascript:", "mailto:", "data:", "blob:")):
                continue
            parts = urlsplit(urljoin("http://localhost" + url, link))
            if parts.netloc not in ("", "localhost"):
                continue  # another site
            if not parts.path.startswith((prefix, "/-/")):
                escapes.setdefault(parts.path, url)
            elif parts.path.startswith(prefix) and not any(word in parts.path for word in DESTRUCTIVE):
                queue.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    assert len(seen) > 60, f"the crawl reached only {len(seen)} pages"
    assert escapes == {}, f"URLs outside the wiki's prefix (url: the page it was on): {escapes}"


# uploads and Otterwiki's own commits
def upload(client: Client, wiki: WikiName, page: str, name: str, data: bytes):
    form = client.get(f"/{wiki}/{page}/attachments")
    assert form.status_code == 200, form.text
    return client.post(f"/{wiki}/{page}/attachments", content_type="multipart/form-data",
                       data={"csrf_token": csrf(form.text), "message": f"upload {name}",
                             "file": (io.BytesIO(data), name)})


def test_an_upload_is_committed_by_the_user_and_announced(core, clients):
    head = core.repos.head(PRIVATE)
    got = upload(clients["eddie"], PRIVATE, "Home", "notes.txt", b"attached words\n")
    assert got.status_code in (200, 302, 303), got.text
    new = core.repos.head(PRIVATE)
    assert new != head and core.repo(PRIVATE).read(new, "home/notes.txt") == b"attached words\n"
    assert core.repo(PRIVATE).log(new, limit=1)[0].author == "eddie"
    events = [e for e in Publisher(core.config.data_dir).queue.events_of(PRIVATE) if e.new_sha == new]
    assert [(e.source, e.actor) for e in events] == [("web", "eddie <eddie@example.org>")]


def test_an_upload_over_the_per_file_limit_is_refused_and_changes_nothing(core, app):
    client = sign_in(app, "tina")  # her tier: 1 MB per file
    head = core.repos.head(SMALL)
    got = upload(client, SMALL, "Home", "big.bin", b"x" * (1024 * 1024 + 1))
    assert got.status_code == 303
    assert core.repos.head(SMALL) == head
    page = client.get(got.headers["Location"])
    assert "over the 1 MB per-file limit" in page.text


def test_an_uploaded_html_file_runs_no_script_on_the_platforms_origin(core, clients):
    got = upload(clients["eddie"], PRIVATE, "Home", "evil.html", b"<script>fetch('/olga/pub/')</script>")
    assert got.status_code in (200, 302, 303)
    served = clients["vera"].get(f"/{PRIVATE}/Home/a/evil.html")
    assert served.status_code == 200 and b"<script>" in served.data
    assert all("sandbox" in policy for policy in served.headers.getlist("Content-Security-Policy"))
    assert served.headers.getlist("Content-Security-Policy")  # whichever Otterwiki sends, ours is there


def test_the_first_page_of_an_empty_wiki_is_saved_from_the_web(core, app):
    core.add_user("nell", email="nell@example.org", password=PASSWORD, tier="premium")
    wiki, first = create_wiki(core, WikiName("nell", "blank"), template="empty")
    assert first is None and core.repos.head(wiki.name) is None
    client = sign_in(app, "nell")
    assert client.get(f"/{wiki.name}/").status_code in (200, 404)  # Otterwiki offers to create the page
    form = editor_form(client, wiki.name, "Home")
    assert form["wikibot_base"] == ""
    got = client.post(f"/{wiki.name}/Home/save", data={**form, "content": "# Home\n\nThe first words.\n"})
    assert got.status_code == 302
    head = core.repos.head(wiki.name)
    assert core.repo(wiki.name).read(head, "home.md") == b"# Home\n\nThe first words.\n"
    assert "The first words." in client.get(f"/{wiki.name}/").text


def test_a_resumed_draft_is_based_on_the_revision_it_was_started_at(core, clients):
    client = clients["eddie"]
    wiki = PRIVATE
    form = editor_form(client, wiki, "Getting_Started")
    draft = client.post(f"/{wiki}/Getting_Started/draft", headers={"X-CSRFToken": form["csrf_token"]},
                        data={"content": "# Getting started\n\nmy draft\n", "cursor_line": "0", "cursor_ch": "0",
                              "revision": re.search(r'formData\.append\("revision", "([0-9a-f]*)"\)',
                                                    client.get(f"/{wiki}/Getting_Started/edit").text).group(1)})
    assert draft.status_code == 200, draft.text
    pushed = core.commit(wiki, [FileChange("getting_started.md", b"# Getting started\n\nchanged meanwhile\n")],
                         message="meanwhile", author=("olga", "olga@example.org"), actor="olga", source="mcp")
    resumed = client.post(f"/{wiki}/Getting_Started/edit", data={"draft": "edit", "csrf_token": form["csrf_token"]})
    assert resumed.status_code == 200 and "my draft" in resumed.text
    base = re.search(r'name="wikibot_base" value="([0-9a-f]*)"', resumed.text).group(1)
    assert base != pushed
    got = client.post(f"/{wiki}/Getting_Started/save", data={"csrf_token": csrf(resumed.text), "wikibot_base": base,
                                                            "content": "# Getting started\n\nmy draft\n"})
    assert got.status_code == 409 and core.repos.head(wiki) == pushed


def test_a_wiki_deleted_and_made_again_under_its_name_shows_nothing_of_the_old_one(core, app):
    core.add_user("remy", email="remy@example.org", password=PASSWORD, tier="premium")
    name = WikiName("remy", "again")
    client = sign_in(app, "remy")
    create_wiki(core, name, template="empty")
    core.commit(name, [FileChange("home.md", b"# Home\n\nthe first life\n")], message="one",
                author=("remy", "remy@example.org"), actor="remy", source="mcp")
    admin = client.get(f"/{name}/-/admin")
    client.post(f"/{name}/-/admin", data={"csrf_token": csrf(admin.text), "update_preferences": "1",
                                          "site_name": "First Life Site"})
    assert "the first life" in client.get(f"/{name}/").text
    core.delete_wiki(name)
    create_wiki(core, name, template="empty")
    core.commit(name, [FileChange("home.md", b"# Home\n\nthe second life\n")], message="two",
                author=("remy", "remy@example.org"), actor="remy", source="mcp")
    page = client.get(f"/{name}/").text
    assert "the second life" in page and "the first life" not in page and "First Life Site" not in page


@pytest.mark.parametrize("path", ["/olga/priv/../pub/Home", "/olga/pub/../priv/Home", "/olga/pub/./Home",
                                  "/olga/pub/Home/../../priv/Home"])
def test_dot_segments_are_not_found(clients, path):
    for user in (None, "vera"):
        assert clients[user].get(path).status_code == 404


def test_a_save_that_waits_too_long_for_a_push_keeps_the_text(core, clients, monkeypatch):
    from wikibot.webui.otterwiki import host

    form = editor_form(clients["eddie"], PUBLIC, "Home")
    head = core.repos.head(PUBLIC)
    monkeypatch.setattr(host, "WIKI_LOCK_TIMEOUT", 0.5)
    with core.repos.lock(PUBLIC):  # a push holding the wiki
        got = clients["eddie"].post(f"/{PUBLIC}/Home/save", data={**form, "content": "words <kept> & safe\n"})
    assert got.status_code == 503 and core.repos.head(PUBLIC) == head
    assert "words &lt;kept&gt; &amp; safe" in got.text and 'name="wikibot_base"' in got.text
