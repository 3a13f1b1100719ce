"""The dashboard in-process (werkzeug test client over the platform's router, real store and
repositories): every route for every role, CSRF on every form, each confirmation, sign-up modes,
invites, tokens, account and admin operations, and what a deletion leaves (nothing)."""
from __future__ import annotations

import dataclasses
import re
import threading
import time

import pytest
from werkzeug.test import Client

from wikibot.app import Platform, routes
from wikibot.gitd.acl import BadToken, authenticate
from wikibot.gitd.core import Core
from wikibot.gitd.names import WikiName
from wikibot.gitd.secrets import check_password
from wikibot.testing.web import PASSWORD, PRIVATE, PUBLIC, csrf, sign_in, web_core
from wikibot.webui.dashboard.common import accounts_changing
from wikibot.webui.dashboard.search import InFlight
from wikibot.webui.dashboard.wikis import searched_wikis
from wikibot.webui.sessions import COOKIE
from wikibot.webui.signup import Invites

ROLES = (None, "sam", "vera", "eddie", "olga", "admin")  # anonymous, stranger, viewer, editor, owner, admin
GHOST = WikiName("olga", "ghost")  # no such wiki


@pytest.fixture(scope="module")
def core(tmp_path_factory) -> Core:
    core = web_core(tmp_path_factory.mktemp("dash") / "data", strangers=("sam",))
    core.add_user("admin", password=PASSWORD, admin=True, tier="premium", platform_account=True)
    return core


@pytest.fixture(scope="module")
def app(core) -> Platform:
    return Platform(routes(core))


@pytest.fixture(scope="module")
def clients(app) -> dict[str | None, Client]:
    return {user: sign_in(app, user) for user in ROLES}


def with_config(core: Core, **changes) -> Platform:
    return Platform(routes(dataclasses.replace(core, config=dataclasses.replace(core.config, **changes))))


def token_of(client: Client, path: str = "/-/account") -> str:
    return csrf(client.get(path).text)


def post(client: Client, path: str, data: dict | None = None, page: str = "/-/account"):
    return client.post(path, data={"csrf_token": token_of(client, page), **(data or {})})


def settings_path(wiki: WikiName, tail: str = "settings") -> str:
    return f"/-/wikis/{wiki.owner}/{wiki.slug}/{tail}"


# who sees what
def test_anonymous_sees_the_landing_page_and_is_sent_to_sign_in_everywhere_else(clients):
    landing = clients[None].get("/")
    assert landing.status_code == 200 and 'href="/-/login"' in landing.text and "Your wikis" not in landing.text
    for path in ("/-/new", "/-/tokens", "/-/account", "/-/admin", "/-/search?q=x", settings_path(PRIVATE),
                 settings_path(PRIVATE, "connect")):
        got = clients[None].get(path)
        assert got.status_code == 303 and got.headers["Location"].startswith("/-/login?next=/-/"), path


def test_the_dashboard_is_also_at_the_platforms_own_prefix(clients):
    assert clients["olga"].get("/-/").text == clients["olga"].get("/").text  # where wiki pages link to
    assert 'href="/-/login"' in clients[None].get("/-/").text


def test_the_dashboard_lists_owned_and_shared_wikis_with_role_and_usage(clients, core):
    core.store.set_usage(PRIVATE, 120, 5 * 1024 * 1024)
    olga = clients["olga"].get("/").text
    assert "/olga/priv/" in olga and "/olga/pub/" in olga and "owner" in olga
    assert 'value="120"' in olga and 'max="100000"' in olga  # pages against the premium tier's limit
    assert settings_path(PRIVATE) in olga and "/olga/priv/-/history/" in olga
    vera = clients["vera"].get("/").text
    assert "/olga/priv/" in vera and "viewer" in vera and settings_path(PRIVATE) not in vera
    assert "/olga/priv/" not in clients["sam"].get("/").text


@pytest.mark.parametrize("role", ROLES[1:])
def test_settings_are_the_owners_and_look_missing_to_everyone_else(clients, role):
    for wiki in (PRIVATE, PUBLIC, GHOST):
        got = clients[role].get(settings_path(wiki))
        expected = 200 if role == "olga" and wiki != GHOST else 404
        assert got.status_code == expected, (role, wiki)
    for tail, data in (("settings", {"title": "x"}), ("collaborators", {"user": "sam", "role": "viewer"}),
                       ("collaborators/remove", {"user": "vera"}), ("delete", {"confirm": "priv"})):
        if role == "olga":
            continue
        got = post(clients[role], settings_path(PRIVATE, tail), data)
        assert got.status_code == 404, (role, tail)


def test_connect_shows_clone_mcp_and_json_to_readers_only(clients, core):
    page = clients["vera"].get(settings_path(PRIVATE, "connect"))
    assert page.status_code == 200
    url = core.config.public_url
    assert f"git clone {url}/olga/priv.git" in page.text
    assert f"claude mcp add --transport http priv {url}/mcp/olga/priv" in page.text
    assert "&#34;mcpServers&#34;" in page.text and 'data-copy="json"' in page.text
    assert clients["sam"].get(settings_path(PRIVATE, "connect")).status_code == 404
    assert clients["sam"].get(settings_path(PUBLIC, "connect")).status_code == 200  # anyone reads a public wiki


def test_every_form_without_its_csrf_token_is_refused_and_changes_nothing(clients, core):
    before = (core.store.list_wikis(), core.store.list_grants(), core.store.list_tokens(), core.store.list_users())
    forms = [("/-/new", {"slug": "csrf"}), (settings_path(PRIVATE), {"title": "pwned", "visibility": "public"}),
             (settings_path(PRIVATE, "collaborators"), {"user": "sam", "role": "editor"}),
             (settings_path(PRIVATE, "collaborators/remove"), {"user": "vera"}),
             (settings_path(PRIVATE, "delete"), {"confirm": "priv"}), ("/-/tokens", {"scope": "write"}),
             ("/-/account/profile", {"email": "x@evil.example"}), ("/-/account/delete", {"confirm": "olga"}),
             ("/-/account/password", {"current_password": PASSWORD, "new_password": "x" * 9,
                                      "new_password2": "x" * 9}),
             ("/-/admin/users", {"name": "csrfuser"}), ("/-/admin/users/sam/disabled", {"disabled": "1"}),
             ("/-/admin/invites", {"tier": "free"})]
    for user in ("olga", "admin"):
        for path, data in forms:
            for token in (None, "0" * 64):
                got = clients[user].post(path, data={**data, **({"csrf_token": token} if token else {})})
                assert got.status_code == 400 and "expired or came from another site" in got.text, path
    assert (core.store.list_wikis(), core.store.list_grants(), core.store.list_tokens(),
            core.store.list_users()) == before


# wikis
def test_creating_a_wiki_with_the_clis_checks_and_messages(app, core):
    core.add_user("nina", password=PASSWORD)  # free: one wiki
    nina = sign_in(app, "nina")
    page = "/-/new"
    got = post(nina, page, {"slug": "bad name", "title": "X"}, page)
    assert got.status_code == 400 and "bad name" in got.text and 'value="X"' in got.text  # the typed text stays
    got = post(nina, page, {"slug": "-", "title": "X"}, page)
    assert got.status_code == 400
    got = post(nina, page, {"slug": "book", "template": "url", "url": "https://example.org/t.git"}, page)
    assert got.status_code == 400 and "premium" in got.text
    got = post(nina, page, {"slug": "book", "template": "nope"}, page)
    assert got.status_code == 400 and "unknown template" in got.text
    assert core.store.list_wikis("nina") == []
    got = post(nina, page, {"slug": "book", "title": "Book", "purpose": "reading notes", "public": "1",
                            "template": "default"}, page)
    assert got.status_code == 303 and got.headers["Location"] == "/-/wikis/nina/book/connect?done=created"
    wiki = core.store.get_wiki(WikiName("nina", "book"))
    assert (wiki.title, wiki.purpose, wiki.public) == ("Book", "reading notes", True)
    assert "home.md" in core.repo(wiki.name).page_files("HEAD")
    got = post(nina, page, {"slug": "second"}, page)
    assert got.status_code == 400 and "the limit of their tier" in got.text


def test_a_new_wikis_title_and_purpose_are_checked_as_its_settings_are(core):
    from wikibot.gitd.core import CoreError
    for title, purpose in (("t" * 201, ""), ("two\nlines", ""), ("", "p" * 2001), ("", "nul\x00")):
        with pytest.raises(CoreError):
            core.create_wiki(WikiName("olga", "checked"), title=title, purpose=purpose)
    assert core.store.get_wiki(WikiName("olga", "checked")) is None
    assert core.create_wiki(WikiName("olga", "checked"), title="Fine", purpose="two\nlines are fine").title == "Fine"
    core.delete_wiki(WikiName("olga", "checked"))


def test_settings_change_title_visibility_and_collaborators_within_the_tier(app, core):
    core.add_user("fred", password=PASSWORD)  # free: 3 collaborators
    for n in range(4):
        core.add_user(f"c{n}", password=PASSWORD)
    core.create_wiki(WikiName("fred", "w"))
    fred, wiki = sign_in(app, "fred"), WikiName("fred", "w")
    got = post(fred, settings_path(wiki), {"title": "Fred's", "purpose": "p", "visibility": "public"})
    assert got.status_code == 303
    assert (core.wiki(wiki).title, core.wiki(wiki).public) == ("Fred's", True)
    got = post(fred, settings_path(wiki), {"title": "t" * 300, "visibility": "private"})
    assert got.status_code == 400 and core.wiki(wiki).public  # refused whole
    assert 'value="private" checked' in got.text and 'value="' + "t" * 300 + '"' in got.text  # what was typed stays
    for n in range(3):
        assert post(fred, settings_path(wiki, "collaborators"), {"user": f"c{n}", "role": "viewer"}).status_code == 303
    got = post(fred, settings_path(wiki, "collaborators"), {"user": "c3", "role": "viewer"})
    assert got.status_code == 400 and "3 collaborator(s), the limit" in got.text and 'value="c3"' in got.text
    assert post(fred, settings_path(wiki, "collaborators"), {"user": "c0", "role": "editor"}).status_code == 303
    got = post(fred, settings_path(wiki, "collaborators"), {"user": "nobody", "role": "viewer"})
    assert got.status_code == 400 and "no such user" in got.text
    got = post(fred, settings_path(wiki, "collaborators"), {"user": "c1", "role": "owner"})
    assert got.status_code == 400 and "invalid role" in got.text
    assert post(fred, settings_path(wiki, "collaborators/remove"), {"user": "c2"}).status_code == 303
    assert {(g.user, g.role) for g in core.store.list_grants(wiki=wiki)} == {("c0", "editor"), ("c1", "viewer")}


def test_deleting_a_wiki_needs_its_slug_typed_and_then_takes_everything(app, core):
    core.add_user("dora", password=PASSWORD, tier="premium")
    from wikibot.bootstrap.create import create_wiki

    wiki = WikiName("dora", "gone")
    create_wiki(core, wiki)
    core.grant(wiki, "sam", "viewer")
    dora = sign_in(app, "dora")
    assert dora.get(f"/{wiki}/Home").status_code == 200  # its Otterwiki state exists
    for typed in ("", "Gone", "dora/gone", "priv"):
        got = post(dora, settings_path(wiki, "delete"), {"confirm": typed})
        assert got.status_code == 400 and "Nothing was deleted" in got.text, typed
        assert core.store.get_wiki(wiki) is not None and core.repos.exists(wiki)
    got = post(dora, settings_path(wiki, "delete"), {"confirm": "gone"})
    assert got.status_code == 303 and got.headers["Location"] == "/?done=deleted"
    assert core.store.get_wiki(wiki) is None and not core.repos.path(wiki).exists()
    assert core.store.list_grants(wiki=wiki) == []
    assert dora.get(f"/{wiki}/Home").status_code == 404
    create_wiki(core, wiki, template="empty")  # the name is free again, and the new wiki is empty
    assert core.repo(wiki).head() is None


# tokens
def test_a_token_is_shown_once_listed_without_its_secret_and_revoked_by_its_owner_only(app, core, clients):
    got = post(clients["eddie"], "/-/tokens", {"scope": "write", "wiki": str(PRIVATE), "expires": "30",
                                               "note": "laptop"}, "/-/tokens")
    assert got.status_code == 200
    secret = re.search(r'id="secret">(wbt_[A-Za-z0-9_-]+)<', got.text).group(1)
    user, token = authenticate(core.store, secret)
    assert (user.name, token.scope, token.wikis, token.note) == ("eddie", "write", (PRIVATE,), "laptop")
    listed = clients["eddie"].get("/-/tokens").text
    assert token.id in listed and secret not in listed and "laptop" in listed
    got = post(clients["eddie"], "/-/tokens", {"scope": "read", "wiki": "olga/ghost", "expires": "30"}, "/-/tokens")
    assert got.status_code == 400 and "no such wiki" in got.text
    got = post(clients["eddie"], "/-/tokens", {"scope": "admin", "expires": "30"}, "/-/tokens")
    assert got.status_code == 400 and "invalid scope" in got.text
    before = len(core.store.list_tokens("eddie"))
    got = post(clients["eddie"], "/-/tokens", {"scope": "read", "expires": "0.00001"}, "/-/tokens")
    assert got.status_code == 400 and "from the lists" in got.text  # only the listed expiries
    assert len(core.store.list_tokens("eddie")) == before
    assert post(clients["sam"], f"/-/tokens/{token.id}/revoke", page="/-/tokens").status_code == 404
    authenticate(core.store, secret)  # still works
    got = post(clients["eddie"], f"/-/tokens/{token.id}/revoke", page="/-/tokens")
    assert got.status_code == 303
    with pytest.raises(BadToken):
        authenticate(core.store, secret)


# account
def test_profile_and_password_change_and_the_old_sessions_end(app, core):
    core.add_user("pat", password=PASSWORD)
    pat, other = sign_in(app, "pat"), sign_in(app, "pat")
    assert post(pat, "/-/account/profile", {"full_name": "Pat Doe", "email": "pat@example.org"}).status_code == 303
    assert (core.user("pat").full_name, core.user("pat").email) == ("Pat Doe", "pat@example.org")
    got = post(pat, "/-/account/profile", {"full_name": "x", "email": "not an address"})
    assert got.status_code == 400 and core.user("pat").email == "pat@example.org"
    got = post(pat, "/-/account/password", {"current_password": "wrong one", "new_password": "n" * 10,
                                            "new_password2": "n" * 10})
    assert got.status_code == 400 and "current password is wrong" in got.text
    got = post(pat, "/-/account/password", {"current_password": PASSWORD, "new_password": "n" * 10,
                                            "new_password2": "m" * 10})
    assert got.status_code == 400 and "differ" in got.text
    got = post(pat, "/-/account/password", {"current_password": PASSWORD, "new_password": "short",
                                            "new_password2": "short"})
    assert got.status_code == 400 and "too short" in got.text
    got = post(pat, "/-/account/password", {"current_password": PASSWORD, "new_password": "n" * 10,
                                            "new_password2": "n" * 10})
    assert got.status_code == 303
    assert pat.get("/-/account").status_code == 200  # this browser stays signed in
    assert other.get("/-/account").status_code == 303  # the other one is signed out
    sign_in(app, "pat", "n" * 10)


def test_a_refused_profile_keeps_what_was_typed(app, core):
    core.add_user("kim", password=PASSWORD, email="kim@example.org")
    kim = sign_in(app, "kim")
    got = post(kim, "/-/account/profile", {"full_name": "Kim Typed", "email": "typed but wrong"})
    assert got.status_code == 400 and 'value="Kim Typed"' in got.text and 'value="typed but wrong"' in got.text
    assert core.user("kim").email == "kim@example.org"


def test_signing_out_ends_the_session_even_for_a_copy_of_its_cookie(app, core):
    core.add_user("sol", password=PASSWORD)
    sol = sign_in(app, "sol")
    copy = Client(app)
    copy.set_cookie(COOKIE, sol.get_cookie(COOKIE).value)
    assert copy.get("/-/account").status_code == 200
    assert post(sol, "/-/logout").status_code == 303
    assert copy.get("/-/account").status_code == 303 and sol.get("/-/account").status_code == 303
    again = sign_in(app, "sol")  # a sign-in after it is a new session
    assert again.get("/-/account").status_code == 200


def test_sign_out_everywhere_and_disabling_end_every_session_for_good(app, core, clients):
    core.add_user("tess", password=PASSWORD)
    here, there = sign_in(app, "tess"), sign_in(app, "tess")
    got = post(here, "/-/account/sessions/end")
    assert got.status_code == 303 and got.headers["Location"] == "/-/login?done=signed-out"
    assert here.get("/-/account").status_code == 303 and there.get("/-/account").status_code == 303
    assert "Every sign-in to your account was ended" in here.get("/-/login?done=signed-out").text
    kept = sign_in(app, "tess")
    assert post(clients["admin"], "/-/admin/users/tess/disabled", {"disabled": "1"}, "/-/admin").status_code == 303
    assert post(clients["admin"], "/-/admin/users/tess/disabled", {"disabled": "0"}, "/-/admin").status_code == 303
    assert kept.get("/-/account").status_code == 303  # enabled again, the old session stays ended
    assert sign_in(app, "tess").get("/-/account").status_code == 200


def test_the_current_password_is_guessed_no_faster_than_at_sign_in(app, core):
    core.add_user("gil", password=PASSWORD)
    gil = sign_in(app, "gil")
    wrong = {"current_password": "not it", "new_password": "n" * 10, "new_password2": "n" * 10}
    codes = [post(gil, "/-/account/password", wrong).status_code for _ in range(11)]
    assert codes == [400] * 10 + [429]
    right = {**wrong, "current_password": PASSWORD}
    got = post(gil, "/-/account/password", right)
    assert got.status_code == 429 and "Too many wrong passwords" in got.text  # even the right one, for a while
    assert check_password(core.user("gil").password_hash, PASSWORD)  # nothing changed
    assert sign_in(app, "gil").get("/-/account").status_code == 200  # its own counter: sign-in is not locked


def test_refused_signups_naming_an_account_never_lock_its_sign_in(core):
    opened = with_config(core, signup="open")
    core.add_user("nell", password=PASSWORD)
    for _ in range(12):
        visitor = Client(opened)
        visitor.post("/-/signup", data={"csrf_token": csrf(visitor.get("/-/signup").text), "username": "nell",
                                        "password": "p" * 10, "password2": "p" * 10},
                     environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert sign_in(opened, "nell").get("/-/account").status_code == 200


def test_an_odd_cookie_of_another_app_beside_ours_keeps_the_session(app, core):
    core.add_user("otto", password=PASSWORD)
    ours = sign_in(app, "otto").get_cookie(COOKIE).value
    for odd in ('prefs={"a":1}', "x=a b", "y=\\q"):
        got = Client(app, use_cookies=False).get("/-/account", headers={"Cookie": f"{odd}; {COOKIE}={ours}"})
        assert got.status_code == 200, odd


def test_a_name_no_account_can_have_is_refused_before_the_store(app):
    client = Client(app)
    got = client.post("/-/login", data={"username": "ol\x00ga", "password": "x", "csrf_token": csrf(client.get(
        "/-/login").text)})
    assert got.status_code == 401


def test_a_user_runs_one_dashboard_search_at_a_time():
    searching = InFlight()
    with searching.one("ann") as first:
        with searching.one("ann") as second, searching.one("bob") as other:
            assert (first, second, other) == (True, False, True)
    with searching.one("ann") as again:
        assert again


def test_two_administrators_disabling_each_other_at_once_leave_one(core, tmp_path):
    duo = web_core(tmp_path / "duo")
    for name in ("ada", "bea"):
        duo.add_user(name, password=PASSWORD, admin=True)
    app = Platform(routes(duo))
    ada, bea = sign_in(app, "ada"), sign_in(app, "bea")
    forms = {who: {"csrf_token": token_of(client, "/-/admin"), "disabled": "1"} for who, client in
             (("ada", ada), ("bea", bea))}
    answers: dict[str, int] = {}
    with accounts_changing(duo):  # both requests are in before either decides
        threads = [threading.Thread(target=lambda who=who, client=client, target=target: answers.__setitem__(
                       who, client.post(f"/-/admin/users/{target}/disabled", data=forms[who]).status_code))
                   for who, client, target in (("ada", ada, "bea"), ("bea", bea, "ada"))]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(answers.values()) == [303, 409], answers
    assert [u.name for u in duo.store.list_users() if u.admin and not u.disabled] != []


def test_deleting_an_account_needs_the_name_typed_and_takes_wikis_grants_tokens_and_sessions(app, core):
    core.add_user("gus", password=PASSWORD, tier="premium")
    core.create_wiki(WikiName("gus", "a"))
    core.create_wiki(WikiName("gus", "b"))
    core.store.set_grant(core.grant(PUBLIC, "gus", "editor"))
    _, secret = core.create_token("gus", "write")
    gus, again = sign_in(app, "gus"), sign_in(app, "gus")
    for typed in ("", "Gus", "olga"):
        got = post(gus, "/-/account/delete", {"confirm": typed})
        assert got.status_code == 400 and "Nothing was deleted" in got.text
    assert core.store.get_user("gus") is not None and len(core.store.list_wikis("gus")) == 2
    got = post(gus, "/-/account/delete", {"confirm": "gus"})
    assert got.status_code == 303 and "Max-Age=0" in got.headers["Set-Cookie"]
    assert core.store.get_user("gus") is None and core.store.list_wikis("gus") == []
    assert not core.repos.path(WikiName("gus", "a")).exists()
    assert core.store.list_grants(user="gus") == [] and core.store.list_tokens("gus") == []
    with pytest.raises(BadToken):
        authenticate(core.store, secret)
    assert again.get("/-/account").status_code == 303
    core.add_user("gus", password=PASSWORD)  # a namesake made later inherits nothing: not even the old sessions
    assert again.get("/-/account").status_code == 303 and core.store.list_grants(user="gus") == []


def test_the_only_admin_cannot_delete_their_account(app, core, tmp_path):
    solo = web_core(tmp_path / "solo")
    solo.add_user("root", password=PASSWORD, admin=True)
    root = sign_in(Platform(routes(solo)), "root")
    got = post(root, "/-/account/delete", {"confirm": "root"})
    assert got.status_code == 400 and "only administrator" in got.text and solo.store.get_user("root") is not None


# admin
@pytest.mark.parametrize("role", ["sam", "vera", "eddie", "olga"])
def test_admin_pages_do_not_exist_for_other_users(clients, role):
    assert clients[role].get("/-/admin").status_code == 404
    for path in ("/-/admin/users", "/-/admin/invites", "/-/admin/users/sam/tier", "/-/admin/users/sam/disabled"):
        assert post(clients[role], path, {"name": "x", "tier": "premium", "disabled": "1"}).status_code == 404


def test_admin_creates_users_sets_tiers_and_disables_accounts_at_once_everywhere(app, core, clients):
    admin = clients["admin"]
    got = post(admin, "/-/admin/users", {"name": "hugo", "email": "h@example.org", "tier": "free"}, "/-/admin")
    assert got.status_code == 200 and "hugo" in got.text
    password = re.search(r'id="new-password">([^<]+)<', got.text).group(1)
    hugo = sign_in(app, "hugo", password)
    got = post(admin, "/-/admin/users", {"name": "hugo"}, "/-/admin")
    assert got.status_code == 400 and "already exists" in got.text
    assert post(admin, "/-/admin/users/hugo/tier", {"tier": "premium"}, "/-/admin").status_code == 303
    assert core.user("hugo").tier == "premium"
    got = post(admin, "/-/admin/users/hugo/tier", {"tier": "gold"}, "/-/admin")
    assert got.status_code == 400 and "unknown tier" in got.text
    _, secret = core.create_token("hugo", "read")
    assert post(admin, "/-/admin/users/hugo/disabled", {"disabled": "1"}, "/-/admin").status_code == 303
    assert hugo.get("/-/account").status_code == 303  # signed out at once
    with pytest.raises(BadToken, match="disabled"):
        authenticate(core.store, secret)
    form = Client(app).get("/-/login")
    refused = Client(app).post("/-/login", data={"username": "hugo", "password": password,
                                                 "csrf_token": csrf(form.text)})
    assert refused.status_code in (400, 403)
    assert post(admin, "/-/admin/users/hugo/disabled", {"disabled": "0"}, "/-/admin").status_code == 303
    authenticate(core.store, secret)
    sign_in(app, "hugo", password)
    got = post(admin, "/-/admin/users/admin/disabled", {"disabled": "1"}, "/-/admin")
    assert got.status_code == 400 and not core.user("admin").disabled
    page = admin.get("/-/admin").text
    assert "olga/priv" in page and "hugo" in page


# sign-up
def test_signup_closed_by_default(app, core):
    visitor = Client(app)
    got = visitor.get("/-/signup")
    assert got.status_code == 403 and "closed" in got.text
    got = visitor.post("/-/signup", data={"csrf_token": csrf(visitor.get("/-/login").text), "username": "intruder",
                                          "password": "p" * 10, "password2": "p" * 10})
    assert got.status_code == 403 and core.store.get_user("intruder") is None


def test_an_invite_makes_one_account_once_and_a_forged_or_old_one_none(app, core, clients):
    invited = with_config(core, signup="invite")
    got = post(clients["admin"], "/-/admin/invites", {"tier": "premium"}, "/-/admin")
    link = re.search(r'id="invite-link">([^<]+)<', got.text).group(1)
    path = link.removeprefix(core.config.public_url)
    assert path.startswith("/-/signup/")
    visitor = Client(invited)
    assert visitor.get("/-/signup").status_code == 403  # invite mode: no link, no form
    form = visitor.get(path)
    assert form.status_code == 200 and 'name="username"' in form.text
    data = {"csrf_token": csrf(form.text), "username": "ivy", "email": "", "password": "p" * 10, "password2": "p" * 10}
    bad = visitor.post(path, data={**data, "username": "olga"})
    assert bad.status_code == 400 and "already exists" in bad.text
    got = visitor.post(path, data=data)
    assert got.status_code == 303 and visitor.get("/-/account").status_code == 200
    assert core.user("ivy").tier == "premium"
    again = Client(invited)
    reused = again.post(path, data={**data, "username": "ivy2", "csrf_token": csrf(again.get("/-/login").text)})
    assert reused.status_code == 400 and "used already" in reused.text and core.store.get_user("ivy2") is None
    forged = again.get(path[:-3] + ("aaa" if not path.endswith("aaa") else "bbb"))
    assert forged.status_code == 400 and "not a valid invite link" in forged.text
    assert Client(with_config(core, signup="closed")).get(path).status_code in (400, 403)
    old = Invites(b"k" * 32, days=0)
    token = old.make("admin")
    time.sleep(1.1)
    with pytest.raises(Exception, match="expired"):
        old.open(token, core.store)


def test_open_signup_makes_accounts_and_limits_them_per_address(core):
    opened = with_config(core, signup="open", signups_per_hour=2)
    made = []
    for n in range(3):
        visitor = Client(opened)
        form = visitor.get("/-/signup")
        assert form.status_code == 200
        got = visitor.post("/-/signup", data={"csrf_token": csrf(form.text), "username": f"open{n}",
                                              "password": "p" * 10, "password2": "p" * 10},
                           environ_base={"REMOTE_ADDR": "198.51.100.7"})
        made.append(got.status_code)
    assert made == [303, 303, 429]
    assert core.store.get_user("open1") is not None and core.store.get_user("open2") is None
    assert core.user("open0").tier == "free"


def test_failed_open_signups_are_limited_per_address_and_a_taken_name_costs_no_hash(core, monkeypatch):
    opened = with_config(core, signup="open", signups_per_hour=100)
    for n in range(5):
        core.add_user(f"taken{n}")
    hashed = []
    import wikibot.gitd.core as core_module
    monkeypatch.setattr(core_module, "hash_password", lambda p, real=core_module.hash_password: hashed.append(p)
                        or real(p))
    codes = []
    for n in range(51):
        visitor = Client(opened)
        form = visitor.get("/-/signup")
        taken = f"taken{n % 5}"  # 10 tries each: within the per-name limit
        got = visitor.post("/-/signup", data={"csrf_token": csrf(form.text), "username": taken,
                                              "password": "p" * 10, "password2": "p" * 10},
                           environ_base={"REMOTE_ADDR": "198.51.100.9"})
        codes.append(got.status_code)
    assert codes == [400] * 50 + [429] and "already exists" not in got.text and hashed == []


def test_an_invite_is_worth_nothing_once_its_maker_is_no_administrator(core, tmp_path):
    solo = web_core(tmp_path / "inv")
    solo.add_user("root", password=PASSWORD, admin=True)
    solo.add_user("second", password=PASSWORD, admin=True)
    invites = Invites(b"k" * 32, days=7)
    token = invites.make("second")
    assert invites.open(token, solo.store).by == "second"
    solo.set_disabled("second", True)
    with pytest.raises(Exception, match="no longer an administrator"):
        invites.open(token, solo.store)
    solo.set_disabled("second", False)
    solo.delete_user("second")
    with pytest.raises(Exception, match="no longer an administrator"):
        invites.open(token, solo.store)


# search
def test_search_asks_your_wikis_and_on_request_every_public_wiki_never_a_private_one(core, clients):
    sam, olga = core.user("sam"), core.user("olga")
    assert searched_wikis(core, sam, public=False) == []
    public = [w.name for w in searched_wikis(core, sam, public=True)]
    assert PUBLIC in public and PRIVATE not in public
    assert all(core.wiki(name).public for name in public)
    mine = [w.name for w in searched_wikis(core, olga, public=True)]
    assert len(mine) == len(set(mine)) and PRIVATE in mine  # her own first, once each
    page = clients["sam"].get("/-/search?q=x&in=public")
    assert 'name="in" value="public" checked' in page.text and "your wikis and public ones" in page.text


def test_search_without_a_worker_says_so_instead_of_failing(clients):
    got = clients["olga"].get("/-/search?q=anything")
    assert got.status_code == 200 and "unavailable" in got.text
