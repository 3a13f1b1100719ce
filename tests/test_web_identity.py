"""Sign-in with an identity provider, in-process (werkzeug test client over the platform's web app)
against a real OpenID Connect provider and a fake GitHub that the test serves on 127.0.0.1: sign-up
(open, by invite, refused), sign-in keyed by the provider's subject, linking and unlinking, and
every way a callback or a token can be wrong, each refused with nothing made or linked."""
from __future__ import annotations

import dataclasses
import html
import itertools
import re
import time
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from werkzeug.test import Client, TestResponse

from wikibot.config import IdentityProvider
from wikibot.gitd.core import NO_PASSWORD, Core
from wikibot.gitd.records import Identity
from wikibot.oauth.server import make_provider
from wikibot.testing.oidc_provider import FakeGitHub, GitHubUser, OidcProvider, Person, new_key
from wikibot.testing.servers import free_port
from wikibot.testing.web import PASSWORD, csrf, field, sign_in, web_core
from wikibot.webui import WebUI, create_webui
from wikibot.webui.identity import FLOW_COOKIE, FLOW_PATH
from wikibot.webui.sessions import COOKIE

OIDC_CLIENT, OIDC_SECRET = "wikibot-test", "oidc client secret"
GITHUB_CLIENT, GITHUB_SECRET = "Iv1.github-test", "github client secret"
_subjects = itertools.count(1)


def subject(tag: str) -> str:
    """A subject no other test uses: the platform is shared by the module."""
    return f"{tag}-{next(_subjects)}"


@pytest.fixture(scope="module")
def core(tmp_path_factory) -> Core:
    core = web_core(tmp_path_factory.mktemp("identity") / "data")
    core.add_user("root", password=PASSWORD, admin=True)  # makes the invite links
    return core


def callback_of(core: Core, name: str) -> str:
    return f"{core.config.public_url}/-/login/{name}/callback"


@pytest.fixture(scope="module")
def oidc(core):
    with OidcProvider(OIDC_CLIENT, OIDC_SECRET, (callback_of(core, "corp"),), Person("nobody")) as provider:
        yield provider


@pytest.fixture(scope="module")
def github(core):
    with FakeGitHub(GITHUB_CLIENT, GITHUB_SECRET, (callback_of(core, "github"),), GitHubUser(1, "nobody")) as fake:
        yield fake


@pytest.fixture(autouse=True)
def cooperative(oidc, github):
    """Every test starts with providers that approve and sign correctly."""
    oidc.deny = github.deny = False
    oidc.signing_key, oidc.id_token_changes, oidc.profile_in_id_token = oidc.key, {}, True


def providers(oidc: OidcProvider, github: FakeGitHub) -> tuple[IdentityProvider, ...]:
    return (IdentityProvider(name="corp", kind="oidc", client_id=OIDC_CLIENT, client_secret=OIDC_SECRET,
                             label="Corp SSO", issuer=oidc.issuer),
            IdentityProvider(name="github", kind="github", client_id=GITHUB_CLIENT, client_secret=GITHUB_SECRET,
                             github_url=github.url, github_api_url=github.api_url))


def platform(core: Core, configured: tuple[IdentityProvider, ...], signup: str = "open", per_hour: int = 1000) -> WebUI:
    """The web app of `core` with these providers and sign-up mode (same store and secret, so sessions carry)."""
    config = dataclasses.replace(core.config, providers=configured, signup=signup, signups_per_hour=per_hour)
    core = dataclasses.replace(core, config=config)
    return create_webui(core, make_provider(core))


@pytest.fixture
def web(core, oidc, github) -> WebUI:
    return platform(core, providers(oidc, github))


def local(core: Core, url: str) -> str:
    """The path and query of a URL the provider sent the browser back to, which must be ours."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == core.config.public_url, f"sent back to another site: {url}"
    return f"{parts.path}?{parts.query}"


def onward(started: TestResponse) -> str:
    """Where the start's page sends the browser on (by itself, and by its link)."""
    assert started.status_code == 200, started.text
    refresh = re.search(r'<meta http-equiv="refresh" content="0; url=([^"]+)">', started.text)
    link = re.search(r'id="continue" class="button" href="([^"]+)"', started.text)
    assert refresh and link and refresh.group(1) == link.group(1), started.text
    return html.unescape(link.group(1))


def at_provider(client: Client, start: str) -> str:
    """Start a sign-in at `start`; the provider (over HTTP) approves; returns where it sends the browser back."""
    # a POST with the form's CSRF token, as the account page's Link button sends (a signed-in GET is refused)
    started = client.post(start, data={"csrf_token": csrf(client.get("/-/login").text)})
    answer = requests.get(onward(started), allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def test_a_signed_in_get_never_starts_a_link(core, web):
    client = sign_in(web, "olga")
    got = client.get("/-/login/corp?next=/-/account")
    assert got.status_code == 403 and "account page" in got.text and "Location" not in got.headers
    assert client.post("/-/login/corp").status_code == 400  # no CSRF token


def round_trip(core: Core, client: Client, start: str) -> TestResponse:
    """A whole trip to the provider and back to our callback."""
    return client.get(local(core, at_provider(client, start)))


def choose_name(client: Client, provider: str, page: TestResponse, username: str, **overrides: str) -> TestResponse:
    assert "Choose your user name" in page.text, page.text
    form = {"csrf_token": csrf(page.text), "pending": field(page.text, "pending"), "username": username,
            "email": field(page.text, "email"), **overrides}
    return client.post(f"/-/login/{provider}/signup", data=form)


def signed_in_as(web: WebUI, client: Client) -> str | None:
    cookie = client.get_cookie(COOKIE)
    if cookie is None:
        return None
    user = web.sessions.user_of(web.sessions.load({"HTTP_COOKIE": f"{COOKIE}={cookie.value}"}))
    return user.name if user else None


def links(core: Core, user: str) -> list[tuple[str, str, str]]:
    return [(i.provider, i.subject, i.label) for i in core.store.list_identities(user)]


def accounts(core: Core) -> dict[str, tuple[Identity, ...]]:
    """Every account with its linked identities: what a refused sign-in must leave as it was."""
    return {user.name: tuple(core.store.list_identities(user.name)) for user in core.store.list_users()}


def new_account(core: Core, web: WebUI, oidc: OidcProvider, name: str, person: Person) -> None:
    """An account made by signing up through the OIDC provider as `person`."""
    oidc.person = person
    client = Client(web)
    got = choose_name(client, "corp", round_trip(core, client, "/-/login/corp"), name)
    assert got.status_code == 303, got.text


def invite(web: WebUI, tier: str = "free") -> str:
    """A new invite link's token, made by an admin on the admin page."""
    admin = sign_in(web, "root")
    got = admin.post("/-/admin/invites", data={"tier": tier, "csrf_token": csrf(admin.get("/-/admin").text)})
    link = re.search(r'id="invite-link">[^<]*/-/signup/([^<]+)<', got.text)
    assert got.status_code == 200 and link, got.text
    return link.group(1)


# starting
def test_the_start_sends_the_browser_to_the_provider_with_state_nonce_and_pkce(core, web, oidc):
    client = Client(web)
    got = client.post("/-/login/corp?next=/olga/pub/", data={"csrf_token": csrf(client.get("/-/login").text)})
    where = urlsplit(onward(got))
    assert f"{where.scheme}://{where.netloc}{where.path}" == oidc.url + "/authorize"
    query = {k: v[0] for k, v in parse_qs(where.query).items()}
    assert query["client_id"] == OIDC_CLIENT and query["redirect_uri"] == callback_of(core, "corp")
    assert query["response_type"] == "code" and "openid" in query["scope"].split()
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
    flow = next(c for c in got.headers.getlist("Set-Cookie") if c.startswith(FLOW_COOKIE + "="))
    for attribute in ("HttpOnly", f"Path={FLOW_PATH}", "SameSite=Lax", "Max-Age=600"):
        assert attribute in flow, f"the flow cookie lacks {attribute}: {flow}"


def test_a_get_never_leaves_for_the_provider_so_another_site_cannot_sign_a_browser_in(web):
    client = Client(web)
    got = client.get("/-/login/corp?next=/olga/pub/")
    assert got.status_code == 303 and got.headers["Location"] == "/-/login?next=/olga/pub/"
    assert not any(c.startswith(FLOW_COOKIE + "=") for c in got.headers.getlist("Set-Cookie"))
    assert client.post("/-/login/corp").status_code == 400  # a form from another site has no CSRF token
    page = client.get("/-/login?next=/olga/pub/")  # the button there is a form of ours
    assert 'action="/-/login/corp"' in page.text and 'name="next" value="/olga/pub/"' in page.text


def test_an_unknown_provider_is_not_found(web):
    client = Client(web)
    assert client.get("/-/login/nope").status_code == 404
    assert client.get("/-/login/nope/callback?state=x&code=y").status_code == 404


# sign-up
def test_open_sign_up_makes_a_passwordless_account_linked_by_subject(core, web, oidc):
    sub = subject("ada")
    oidc.person = Person(sub, preferred_username="Ada.Lovelace", email="ada@example.org", name="Ada Lovelace")
    client = Client(web)
    page = round_trip(core, client, "/-/login/corp?next=/-/account")
    assert field(page.text, "username") == "ada-lovelace"  # the provider's handle, made a valid name: a suggestion
    assert field(page.text, "email") == "ada@example.org"
    assert core.store.get_user("ada-lovelace") is None  # nothing is made before the name is chosen
    got = choose_name(client, "corp", page, "ada")
    assert (got.status_code, got.headers["Location"]) == (303, "/-/account")
    user = core.store.get_user("ada")
    assert (user.password_hash, user.email, user.full_name) == (NO_PASSWORD, "ada@example.org", "Ada Lovelace")
    assert links(core, "ada") == [("corp", sub, "Ada.Lovelace")]
    assert signed_in_as(web, client) == "ada"
    assert client.get("/-/account").status_code == 200


def test_names_the_id_token_leaves_out_come_from_userinfo(core, web, oidc):
    oidc.profile_in_id_token = False
    oidc.person = Person(subject("uma"), preferred_username="uma", email="uma@example.org")
    oidc.seen.clear()
    page = round_trip(core, Client(web), "/-/login/corp")
    assert (field(page.text, "username"), field(page.text, "email")) == ("uma", "uma@example.org")
    assert "GET /userinfo" in oidc.seen


def test_a_taken_or_invalid_name_asks_again_and_the_pending_sign_up_survives(core, web, oidc):
    oidc.person = Person(subject("olga-again"), preferred_username="olga")
    client = Client(web)
    page = round_trip(core, client, "/-/login/corp")
    before = accounts(core)
    for name in ("olga", "Bad Name!", "login"):  # taken, invalid, reserved: the core's message says which
        again = choose_name(client, "corp", page, name)
        said = re.search(r'class="error" role="alert">([^<]*)<', again.text)
        assert again.status_code == 400 and said and name in said.group(1), again.text
        assert accounts(core) == before
        page = again
    assert choose_name(client, "corp", page, "olga-two").status_code == 303
    assert core.store.get_user("olga-two").password_hash == NO_PASSWORD


def test_an_invite_lets_a_provider_account_sign_up_once(core, oidc, github):
    web = platform(core, providers(oidc, github), signup="invite")
    token = invite(web, tier="premium")
    oidc.person = Person(subject("invited"), preferred_username="ivy")
    client = Client(web)
    got = choose_name(client, "corp", round_trip(core, client, f"/-/login/corp?invite={token}"), "ivy")
    assert got.status_code == 303, got.text
    assert core.store.get_user("ivy").tier == "premium"
    assert "ivy" in {spent.user for spent in core.store.list_used_invites()}
    before = accounts(core)
    oidc.person = Person(subject("second"), preferred_username="ivo")
    second = Client(web)
    again = second.post(f"/-/login/corp?invite={token}",  # the link is spent: said before leaving for the provider
                        data={"csrf_token": csrf(second.get("/-/login").text)})
    assert again.status_code == 400 and "used already" in again.text
    assert second.get(f"/-/login/corp?invite={token}").headers["Location"] == f"/-/signup/{token}"
    assert accounts(core) == before


def test_an_invite_spent_while_choosing_the_name_makes_no_account(core, oidc, github):
    web = platform(core, providers(oidc, github), signup="invite")
    token = invite(web)
    opened = []
    for tag in ("first", "second"):  # two provider accounts open the same link at once
        oidc.person = Person(subject(tag))
        client = Client(web)
        opened.append((client, round_trip(core, client, f"/-/login/corp?invite={token}")))
    (first, first_page), (second, second_page) = opened
    assert choose_name(first, "corp", first_page, "race-one").status_code == 303
    before = accounts(core)
    late = choose_name(second, "corp", second_page, "race-two")
    assert late.status_code == 400 and "used already" in late.text
    assert accounts(core) == before


@pytest.mark.parametrize("mode, says", [("invite", "invite link"), ("closed", "Sign-up is closed")])
def test_no_account_is_made_when_sign_up_is_not_allowed(core, oidc, github, mode, says):
    web = platform(core, providers(oidc, github), signup=mode)
    oidc.person = Person(subject("uninvited"), preferred_username="uninvited")
    before = accounts(core)
    client = Client(web)
    got = round_trip(core, client, "/-/login/corp")
    assert got.status_code == 403 and says in got.text and "pending" not in got.text
    assert accounts(core) == before and signed_in_as(web, client) is None


def test_open_sign_up_through_a_provider_is_limited_per_address(core, oidc, github):
    web = platform(core, providers(oidc, github), per_hour=1)
    address = {"REMOTE_ADDR": "10.7.7.7"}
    for number, status in ((1, 303), (2, 429)):
        oidc.person = Person(subject("flood"))
        client = Client(web)
        page = round_trip(core, client, "/-/login/corp")
        form = {"csrf_token": csrf(page.text), "pending": field(page.text, "pending"), "username": f"flood-{number}"}
        got = client.post("/-/login/corp/signup", data=form, environ_overrides=address)
        assert got.status_code == status, got.text
    assert core.store.get_user("flood-2") is None


# signing in again
def test_signing_in_again_follows_the_subject_not_the_email_or_handle(core, web, oidc):
    sub = subject("bea")
    new_account(core, web, oidc, "bea", Person(sub, preferred_username="bea", email="bea@example.org"))
    oidc.person = Person(sub, preferred_username="beatrix", email="bea@elsewhere.example")  # renamed at the provider
    client = Client(web)
    got = round_trip(core, client, "/-/login/corp?next=/olga/pub/")
    assert (got.status_code, got.headers["Location"]) == (303, "/olga/pub/")
    assert signed_in_as(web, client) == "bea"
    before = accounts(core)
    oidc.person = Person(subject("not-bea"), preferred_username="bea", email="bea@example.org")  # bea's old handle
    stranger = Client(web)
    page = round_trip(core, stranger, "/-/login/corp")
    assert page.status_code == 200 and "Choose your user name" in page.text  # someone new, not bea
    assert signed_in_as(web, stranger) is None and accounts(core) == before


def test_a_disabled_account_cannot_sign_in_with_its_provider(core, web, oidc):
    sub = subject("dora")
    new_account(core, web, oidc, "dora", Person(sub))
    core.set_disabled("dora", True)
    client = Client(web)
    got = round_trip(core, client, "/-/login/corp")
    assert got.status_code == 403 and "disabled" in got.text
    assert signed_in_as(web, client) is None
    core.set_disabled("dora", False)
    assert round_trip(core, client, "/-/login/corp").status_code == 303 and signed_in_as(web, client) == "dora"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x",
                                    "/\t/evil.example"])
def test_next_never_leaves_the_site(core, web, oidc, target):
    sub = subject("nina")
    core.store.add_identity(Identity(provider="corp", subject=sub, user="vera"))
    oidc.person = Person(sub)
    got = round_trip(core, Client(web), f"/-/login/corp?next={quote(target)}")
    assert (got.status_code, got.headers["Location"]) == (303, "/")


# linking and unlinking
def test_a_local_account_links_a_provider_then_signs_in_with_it(core, web, oidc):
    sub = subject("olga")
    oidc.person = Person(sub, preferred_username="olga-at-corp")
    client = sign_in(web, "olga")
    got = round_trip(core, client, "/-/login/corp?next=/-/account")
    assert (got.status_code, got.headers["Location"]) == (303, "/-/account")
    assert ("corp", sub, "olga-at-corp") in links(core, "olga")
    fresh = Client(web)
    assert round_trip(core, fresh, "/-/login/corp").status_code == 303 and signed_in_as(web, fresh) == "olga"


def test_a_subject_linked_to_another_account_is_not_linked_again(core, web, oidc):
    sub = subject("taken")
    core.store.add_identity(Identity(provider="corp", subject=sub, user="vera"))
    oidc.person = Person(sub)
    before = accounts(core)
    client = sign_in(web, "eddie")
    got = round_trip(core, client, "/-/login/corp?next=/-/account")
    assert got.status_code == 409 and "linked to another wikibot account" in got.text
    assert accounts(core) == before and signed_in_as(web, client) == "eddie"


def test_a_link_finished_after_the_session_ended_links_nothing(core, web, oidc):
    """A password change ends every session: a flow started in one (say, a stolen one) links nothing after."""
    core.add_user("lena", password=PASSWORD)
    oidc.person = Person(subject("intruder"))
    client = sign_in(web, "lena")
    back = local(core, at_provider(client, "/-/login/corp?next=/-/account"))
    core.change_password("lena", PASSWORD, PASSWORD + " changed")
    got = client.get(back)
    assert got.status_code == 400 and "Nothing was linked" in got.text
    assert core.store.list_identities("lena") == []


def test_unlinking_keeps_a_way_to_sign_in(core, web, oidc, github):
    sub = subject("cy")
    new_account(core, web, oidc, "cy", Person(sub))
    client = Client(web)
    round_trip(core, client, "/-/login/corp")
    assert signed_in_as(web, client) == "cy"

    def unlink(provider: str, who: str, token: bool = True) -> TestResponse:
        form = {"provider": provider, "subject": who}
        if token:
            form["csrf_token"] = csrf(client.get("/-/account").text)
        return client.post("/-/account/identities/remove", data=form)

    def linked() -> set[tuple[str, str]]:
        return {(i.provider, i.subject) for i in core.store.list_identities("cy")}

    core.store.add_identity(Identity(provider="retired", subject="cy-old", user="cy"))  # its provider is gone
    got = unlink("corp", sub)
    assert got.status_code == 400 and "only way you can sign in" in got.text and ("corp", sub) in linked()
    github.user = GitHubUser(700_000 + next(_subjects), "cy-gh")
    assert round_trip(core, client, "/-/login/github?next=/-/account").status_code == 303
    assert unlink("corp", sub, token=False).status_code == 400 and ("corp", sub) in linked()  # CSRF first
    elsewhere = Client(web)  # say, whoever took over the provider's account, signed in through it
    round_trip(core, elsewhere, "/-/login/corp")
    assert signed_in_as(web, elsewhere) == "cy"
    assert unlink("corp", sub).status_code == 303 and ("corp", sub) not in linked()
    assert signed_in_as(web, elsewhere) is None and signed_in_as(web, client) == "cy"
    gh = str(github.user.id)
    assert unlink("github", gh).status_code == 400 and ("github", gh) in linked()
    vera = subject("vera")
    core.store.add_identity(Identity(provider="corp", subject=vera, user="vera"))
    assert unlink("corp", vera).status_code == 404 and core.store.find_identity("corp", vera).user == "vera"
    core.change_password("cy", "", PASSWORD)  # a password is a way to sign in: now the last link can go
    client = sign_in(web, "cy")
    assert unlink("github", gh).status_code == 303 and ("github", gh) not in linked()


# what is refused, with nothing made
def test_a_callback_with_another_state_or_from_another_browser_is_refused(core, web, oidc):
    oidc.person = Person(subject("mallory"))
    before = accounts(core)
    client = Client(web)
    back = local(core, at_provider(client, "/-/login/corp"))
    forged = back.replace("state=", "state=x")
    got = client.get(forged)
    assert got.status_code == 400 and "not started in this browser" in got.text
    victim = Client(web)  # an attacker's callback opened in someone else's browser (login CSRF)
    victim.get("/-/login")
    got = victim.get(back)
    assert got.status_code == 400 and signed_in_as(web, victim) is None
    assert accounts(core) == before


def test_a_replayed_callback_is_refused(core, oidc, github):
    web = platform(core, providers(oidc, github), signup="closed")
    oidc.person = Person(subject("replay"))
    before = accounts(core)
    client = Client(web)
    started = client.post("/-/login/corp", data={"csrf_token": csrf(client.get("/-/login").text)})
    flow = client.get_cookie(FLOW_COOKIE, path=FLOW_PATH).value
    answer = requests.get(onward(started), allow_redirects=False, timeout=10)
    back = local(core, answer.headers["Location"])
    assert client.get(back).status_code == 403  # no account and none can be made: but the code is used
    again = client.get(back)  # the flow cookie went with the first answer
    assert again.status_code == 400 and "used already" in again.text
    client.set_cookie(FLOW_COOKIE, flow, path=FLOW_PATH)  # even with the cookie kept, the provider's code is spent
    third = client.get(back)
    assert third.status_code == 502 and "invalid_grant" in third.text
    assert accounts(core) == before


@pytest.mark.parametrize("changes", [
    {"nonce": "not-the-nonce-we-sent"},
    {"nonce": None},
    {"aud": "another-client"},
    {"aud": "another-client", "azp": OIDC_CLIENT},
    {"aud": [OIDC_CLIENT, "another-client"], "azp": "another-client"},
    {"iss": "https://issuer.example"},
    {"exp": int(time.time()) - 3600},
    {"sub": None, "email": "known@example.org"},  # email-only claims: no subject, no sign-in
    {"sub": ""},
], ids=["wrong-nonce", "no-nonce", "wrong-audience", "wrong-audience-right-azp", "issued-to-another-party",
        "wrong-issuer", "expired", "email-only", "empty-subject"])
def test_an_id_token_that_fails_a_check_signs_in_no_one(core, web, oidc, changes):
    known = subject("known")
    core.store.add_identity(Identity(provider="corp", subject=known, user="vera"))  # would sign in as vera if accepted
    oidc.person = Person(known, email="known@example.org")
    oidc.id_token_changes = changes
    before = accounts(core)
    client = Client(web)
    got = round_trip(core, client, "/-/login/corp")
    assert got.status_code == 502 and "did not confirm who you are" in got.text, got.text
    assert signed_in_as(web, client) is None and accounts(core) == before


@pytest.mark.parametrize("kid", ["key-1", "key-never-published"])
def test_an_id_token_signed_by_another_key_signs_in_no_one(core, web, oidc, kid):
    known = subject("forged")
    core.store.add_identity(Identity(provider="corp", subject=known, user="vera"))
    oidc.person = Person(known)
    oidc.signing_key = new_key(kid)
    client = Client(web)
    got = round_trip(core, client, "/-/login/corp")
    assert got.status_code == 502 and "token was not valid" in got.text, got.text
    assert signed_in_as(web, client) is None


def test_declined_consent_changes_nothing(core, web, oidc, github):
    before = accounts(core)
    for provider, fake in (("corp", oidc), ("github", github)):
        fake.deny = True
        client = Client(web)
        got = round_trip(core, client, f"/-/login/{provider}")
        assert got.status_code == 403 and "did not let" in got.text and "Sign-in cancelled" in got.text
        assert signed_in_as(web, client) is None
    assert accounts(core) == before


def test_the_pending_sign_up_is_signed_and_bound_to_the_browser(core, web, oidc):
    oidc.person = Person(subject("pat"))
    client = Client(web)
    page = round_trip(core, client, "/-/login/corp")
    pending = field(page.text, "pending")
    before = accounts(core)
    payload, _, signature = pending.rpartition(".")
    tampered = choose_name(client, "corp", page, "pat", pending=payload + "." + signature[::-1])
    assert tampered.status_code == 400 and "No account was made" in tampered.text
    other = Client(web)
    form = other.get("/-/login")
    got = other.post("/-/login/corp/signup", data={"csrf_token": csrf(form.text), "pending": pending,
                                                    "username": "pat"})
    assert got.status_code == 400 and accounts(core) == before
    assert client.post("/-/login/corp/signup", data={"pending": pending, "username": "pat"}).status_code == 400  # CSRF
    assert accounts(core) == before
    assert choose_name(client, "corp", page, "pat").status_code == 303
    before = accounts(core)
    assert choose_name(client, "corp", page, "pat-again").status_code == 400  # one pending sign-up, one account
    assert accounts(core) == before


def test_one_provider_account_signing_up_in_two_browsers_gets_one_account(core, web, oidc):
    oidc.person = Person(subject("twice"))
    first, second = Client(web), Client(web)
    first_page, second_page = round_trip(core, first, "/-/login/corp"), round_trip(core, second, "/-/login/corp")
    assert choose_name(first, "corp", first_page, "twice-one").status_code == 303
    before = accounts(core)
    late = choose_name(second, "corp", second_page, "twice-two")
    assert late.status_code == 409 and "sign in with Corp SSO" in late.text
    assert accounts(core) == before


def test_a_provider_that_cannot_be_reached_is_a_clear_page(core):
    gone = IdentityProvider(name="gone", kind="oidc", client_id="x", client_secret="y",
                            issuer=f"http://127.0.0.1:{free_port()}")
    web = platform(core, (gone,))
    client = Client(web)
    got = client.post("/-/login/gone", data={"csrf_token": csrf(client.get("/-/login").text)})
    assert got.status_code == 502 and "cannot be reached" in got.text
    flaky = OidcProvider("flaky-client", "flaky secret", (callback_of(core, "flaky"),), Person(subject("flaky")))
    with flaky:
        web = platform(core, (IdentityProvider(name="flaky", kind="oidc", client_id="flaky-client",
                                               client_secret="flaky secret", issuer=flaky.issuer),))
        client = Client(web)
        back = local(core, at_provider(client, "/-/login/flaky"))
    before = accounts(core)
    got = client.get(back)  # the provider went down before the code was exchanged
    assert got.status_code == 502 and "could not be reached" in got.text
    assert accounts(core) == before and signed_in_as(web, client) is None


# GitHub
def test_github_accounts_are_keyed_by_the_numeric_id_not_the_login(core, web, github):
    number = 9_000_000 + next(_subjects)
    github.user = GitHubUser(number, "Octo_Cat", "octo@example.org", "Octo Cat")
    github.seen.clear()
    client = Client(web)
    page = round_trip(core, client, "/-/login/github?next=/-/account")
    assert (field(page.text, "username"), field(page.text, "email")) == ("octo-cat", "octo@example.org")
    assert choose_name(client, "github", page, "octo").status_code == 303
    assert links(core, "octo") == [("github", str(number), "Octo_Cat")]
    assert {"POST /login/oauth/access_token", "GET /api/user"} <= set(github.seen)
    github.user = GitHubUser(number, "renamed-cat")  # a new login, the same person
    again = Client(web)
    assert round_trip(core, again, "/-/login/github").status_code == 303 and signed_in_as(web, again) == "octo"
    github.user = GitHubUser(number + 1, "Octo_Cat", "octo@example.org")  # the old login, someone else
    before = accounts(core)
    other = Client(web)
    assert "Choose your user name" in round_trip(core, other, "/-/login/github").text
    assert signed_in_as(web, other) is None and accounts(core) == before


def test_a_password_is_set_without_the_current_one_only_just_after_a_provider_sign_in(core, web, oidc):
    new_account(core, web, oidc, "pia", Person(subject("pia")))

    def browser(proved_ago: float) -> Client:
        """A browser signed in as pia, through the provider `proved_ago` seconds ago."""
        client = Client(web)
        session = web.sessions.new(core.user("pia"), proved=time.time() - proved_ago)
        client.set_cookie(COOKIE, web.sessions.set_cookie(session)[1].split(";")[0].split("=", 1)[1])
        return client

    def set_password(client: Client, new: str, current: str = "") -> TestResponse:
        return client.post("/-/account/password", data={"csrf_token": csrf(client.get("/-/account").text),
                                                          "current_password": current, "new_password": new,
                                                          "new_password2": new})

    stale = browser(700)  # say, a session stolen a while ago: it must not become a password of its own
    got = set_password(stale, "thief's password")
    assert got.status_code == 403 and "sign in with your linked provider again" in got.text
    assert core.user("pia").password_hash == NO_PASSWORD
    assert set_password(browser(5), "pia's own password").status_code == 303
    assert stale.get("/-/account").status_code == 303  # a new password ends the other sessions
    got = set_password(browser(700), "thief's password")
    assert got.status_code == 400 and "current password is wrong" in got.text  # asked unless just proven
    got = set_password(browser(5), "pia's new password")  # forgotten: a fresh provider sign-in replaces it
    assert got.status_code == 303
    assert sign_in(web, "pia", "pia's new password").get("/-/account").status_code == 200
