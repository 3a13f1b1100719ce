"""MCP connectors' OAuth against `wikibot serve`: the MCP SDK's own OAuth client end to end, and the
protocol step by step over HTTP (discovery, registration, PKCE, redirect and resource checks, codes used
once, refresh rotation, revocation, what a consent is bound to and when it ends)."""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import html
import json
import re
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import requests
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

from mcp import ClientSession
from wikibot.gitd.names import WikiName
from wikibot.testing.servers import Account, Server, start_server, stop_server
from wikibot.testing.web import PASSWORD

CALLBACK = "http://127.0.0.1:9/callback"  # never reached: the tests read the redirect's URL
CLAUDE = "https://claude.ai/api/mcp/auth_callback"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def field(text: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', text)
    assert found, f"no {name} field in: {text[:500]}"
    return html.unescape(found.group(1))


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


@dataclasses.dataclass
class Client:
    """A registered OAuth client, driving the flow as a connector and its user's browser would."""

    server: Server
    id: str
    secret: str | None
    redirect: str

    def authorize(self, browser: requests.Session, wiki: WikiName | str, *, challenge: str, scope: str | None = None,
                  redirect: str | None = None, state: str = "st4te", **extra: str) -> requests.Response:
        params = {"response_type": "code", "client_id": self.id, "redirect_uri": redirect or self.redirect,
                  "code_challenge": challenge, "code_challenge_method": "S256", "state": state,
                  "resource": wiki if isinstance(wiki, str) else f"{self.server.url}/mcp/{wiki}", **extra}
        if scope:
            params["scope"] = scope
        return browser.get(f"{self.server.url}/-/oauth/authorize", params=params, allow_redirects=False)

    def consent(self, browser: requests.Session, wiki: WikiName, decision: str = "approve", **kw) -> dict[str, str]:
        """Authorize, answer the consent page; the query the browser is sent back to the client with."""
        got = self.authorize(browser, wiki, **kw)
        assert got.status_code == 302, got.text
        page = browser.get(got.headers["Location"])
        assert urlsplit(page.url).path == "/-/oauth/consent", page.url
        answered = browser.post(f"{self.server.url}/-/oauth/consent",
                                data={"csrf_token": field(page.text, "csrf_token"),
                                      "request": field(page.text, "request"), "decision": decision})
        link = re.search(r'id="continue" class="button" href="([^"]*)"', answered.text)
        assert link, answered.text[:500]
        url = html.unescape(link.group(1))
        assert url.startswith(self.redirect + "?")
        return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}

    def token(self, **form: str) -> requests.Response:
        data = {"client_id": self.id, **form}
        if self.secret:
            data["client_secret"] = self.secret
        return requests.post(f"{self.server.url}/-/oauth/token", data=data)

    def exchange(self, code: str, verifier: str, **extra: str) -> requests.Response:
        return self.token(grant_type="authorization_code", code=code, code_verifier=verifier,
                          redirect_uri=self.redirect, **extra)

    def grant(self, browser: requests.Session, wiki: WikiName, **kw) -> dict:
        """The whole flow: the token answer (access and refresh tokens)."""
        verifier, challenge = pkce()
        answer = self.consent(browser, wiki, challenge=challenge, **kw)
        got = self.exchange(answer["code"], verifier)
        assert got.status_code == 200, got.text
        return got.json()


def register(server: Server, method: str = "client_secret_post", redirect: str = CALLBACK, **extra) -> Client:
    got = requests.post(f"{server.url}/-/oauth/register",
                        json={"redirect_uris": [redirect], "client_name": "Test connector",
                              "token_endpoint_auth_method": method, **extra})
    assert got.status_code == 201, got.text
    info = got.json()
    return Client(server, info["client_id"], info.get("client_secret"), redirect)


def signed_in(server: Server, user: str) -> requests.Session:
    browser = requests.Session()
    form = browser.get(f"{server.url}/-/login")
    got = browser.post(f"{server.url}/-/login", data={"username": user, "password": PASSWORD,
                                                      "csrf_token": field(form.text, "csrf_token")})
    assert got.ok and "/-/login" not in got.url, got.text[:300]
    return browser


def mcp_status(server: Server, wiki: WikiName, token: str) -> requests.Response:
    return requests.post(f"{server.url}/mcp/{wiki}", json=INIT,
                         headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"})


def call_tool(server: Server, wiki: WikiName, token: str, tool: str, **arguments) -> dict:
    """One tools/call over plain HTTP (the server is stateless: no session needed)."""
    got = requests.post(f"{server.url}/mcp/{wiki}", headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"},
                        json={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                              "params": {"name": tool, "arguments": arguments}})
    assert got.status_code == 200, got.text
    body = got.text
    if body.startswith("event:") or "data:" in body[:20]:
        body = next(line[5:] for line in body.splitlines() if line.startswith("data:"))
    return json.loads(body)["result"]


@pytest.fixture
def owner(make_user) -> Account:
    return make_user()


@pytest.fixture
def wiki(owner, make_wiki) -> WikiName:
    return make_wiki(owner, template="default")


# discovery
def test_an_unauthenticated_request_is_told_where_to_sign_in(server, wiki):
    got = requests.post(f"{server.url}/mcp/{wiki}", json=INIT, headers=MCP_HEADERS)
    assert got.status_code == 401
    challenge = got.headers["WWW-Authenticate"]
    metadata_url = f"{server.url}/.well-known/oauth-protected-resource/mcp/{wiki}"
    assert f'resource_metadata="{metadata_url}"' in challenge and 'scope="read write"' in challenge
    resource = requests.get(metadata_url).json()
    assert resource["resource"] == f"{server.url}/mcp/{wiki}"
    assert resource["authorization_servers"] == [server.url]
    issuer = requests.get(f"{server.url}/.well-known/oauth-authorization-server").json()
    assert issuer["issuer"] == server.url
    for endpoint in ("authorization", "token", "registration", "revocation"):
        assert issuer[f"{endpoint}_endpoint"].startswith(server.url + "/-/oauth/")
    assert issuer["code_challenge_methods_supported"] == ["S256"]
    assert {"none", "client_secret_post", "client_secret_basic"} <= set(issuer["token_endpoint_auth_methods_supported"])


def test_resource_metadata_says_nothing_of_whether_a_wiki_exists(server, wiki):
    other = WikiName(wiki.owner, "no-such-wiki")
    here = requests.get(f"{server.url}/.well-known/oauth-protected-resource/mcp/{wiki}").json()
    there = requests.get(f"{server.url}/.well-known/oauth-protected-resource/mcp/{other}").json()
    assert there["resource"] == f"{server.url}/mcp/{other}"
    assert {k: v for k, v in here.items() if k not in ("resource", "resource_name")} == \
        {k: v for k, v in there.items() if k not in ("resource", "resource_name")}
    assert requests.get(f"{server.url}/.well-known/oauth-protected-resource/mcp/x").status_code == 404


# the MCP SDK's own client, end to end
def test_the_sdk_oauth_client_connects_and_reads_a_page(server, owner, wiki):
    browser = requests.Session()
    arrived: dict[str, str] = {}

    class Memory:
        tokens = client = None

        async def get_tokens(self):
            return self.tokens

        async def set_tokens(self, tokens):
            self.tokens = tokens

        async def get_client_info(self):
            return self.client

        async def set_client_info(self, info):
            self.client = info

    def sign_in_and_approve(url: str) -> None:
        page = browser.get(url)
        assert urlsplit(page.url).path == "/-/login", page.url
        page = browser.post(f"{server.url}/-/login", data={"username": owner.name, "password": PASSWORD,
                                                            "csrf_token": field(page.text, "csrf_token"),
                                                            "next": field(page.text, "next")})
        assert urlsplit(page.url).path == "/-/oauth/consent" and "Test SDK client" in page.text, page.url
        assert str(wiki) in page.text and "127.0.0.1" in page.text
        answered = browser.post(f"{server.url}/-/oauth/consent", data={
            "csrf_token": field(page.text, "csrf_token"), "request": field(page.text, "request"),
            "decision": "approve"})
        link = html.unescape(re.search(r'id="continue" class="button" href="([^"]*)"', answered.text).group(1))
        arrived.update({k: v[0] for k, v in parse_qs(urlsplit(link).query).items()})

    async def redirect_handler(url: str) -> None:
        await asyncio.to_thread(sign_in_and_approve, url)

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=arrived["code"], state=arrived.get("state"))

    storage = Memory()

    async def run() -> tuple[list[str], str]:
        metadata = OAuthClientMetadata(client_name="Test SDK client", redirect_uris=[CALLBACK],
                                       token_endpoint_auth_method="client_secret_post")
        auth = OAuthClientProvider(f"{server.url}/mcp/{wiki}", metadata, storage, redirect_handler, callback_handler)
        async with httpx2.AsyncClient(auth=auth, timeout=60) as http, \
                streamable_http_client(f"{server.url}/mcp/{wiki}", http_client=http) as (read, write, *_), \
                ClientSession(read, write) as session:
            await session.initialize()
            tools = [t.name for t in (await session.list_tools()).tools]
            page = await session.call_tool("read_page", {"path": "Home"})
            return tools, page.content[0].text

    tools, text = asyncio.run(run())
    assert "read_page" in tools and "write_page" in tools
    assert text.startswith("Home (home.md) at revision")
    assert storage.tokens.scope == "write" and storage.tokens.refresh_token
    assert storage.tokens.expires_in == 24 * 3600  # the default: connectors refresh unreliably


# registration
def test_public_and_confidential_clients_register_and_are_never_deduplicated(server):
    public = register(server, "none")
    assert public.secret is None
    one, two = register(server, redirect=CLAUDE), register(server, redirect=CLAUDE)
    assert one.id != two.id and one.secret and two.secret and one.secret != two.secret


@pytest.mark.parametrize("uri", ["http://example.org/cb", "https://example.org/cb#frag", "ftp://x/cb",
                                 "https://user:pw@example.org/cb", "javascript:alert(1)"])
def test_a_redirect_uri_must_be_https_or_loopback(server, uri):
    got = requests.post(f"{server.url}/-/oauth/register", json={"redirect_uris": [uri], "client_name": "x"})
    assert got.status_code == 400 and got.json()["error"] in ("invalid_redirect_uri", "invalid_client_metadata")


def test_loopback_redirects_are_accepted(server):
    for uri in ("http://127.0.0.1:33418/callback", "http://localhost:8000/cb", "http://[::1]:1/cb"):
        register(server, "none", redirect=uri)


# the authorization request
def test_plain_pkce_missing_resource_and_foreign_resource_are_refused(server, owner, wiki):
    client = register(server)
    browser = signed_in(server, owner.name)
    _, challenge = pkce()
    plain = client.authorize(browser, wiki, challenge=challenge, code_challenge_method="plain")
    assert plain.status_code == 302 and "error=invalid_request" in plain.headers["Location"]
    params = {"response_type": "code", "client_id": client.id, "redirect_uri": client.redirect,
              "code_challenge": challenge, "state": "s"}
    missing = browser.get(f"{server.url}/-/oauth/authorize", params=params, allow_redirects=False)
    assert missing.status_code == 302 and "error=invalid_request" in missing.headers["Location"]
    for foreign in ("https://elsewhere.example/mcp/" + str(wiki), f"{server.url}/mcp/{wiki}/extra",
                    f"{server.url}/api/wikis/{wiki}"):
        got = client.authorize(browser, foreign, challenge=challenge)
        assert got.status_code == 302 and "error=invalid_target" in got.headers["Location"], foreign
        assert got.headers["Location"].startswith(client.redirect)


def test_an_unregistered_redirect_uri_is_never_redirected_to(server, owner, wiki):
    client = register(server)
    _, challenge = pkce()
    got = client.authorize(signed_in(server, owner.name), wiki, challenge=challenge,
                           redirect="https://attacker.example/cb")
    assert got.status_code == 400 and "attacker" not in got.headers.get("Location", "")


def test_a_visitor_signs_in_first_and_comes_back_to_the_consent(server, owner, wiki):
    client = register(server)
    browser = requests.Session()
    _, challenge = pkce()
    consent = browser.get(client.authorize(browser, wiki, challenge=challenge).headers["Location"],
                          allow_redirects=False)
    assert consent.status_code == 303 and consent.headers["Location"].startswith("/-/login?next=")
    login = browser.get(server.url + consent.headers["Location"])
    back = browser.post(f"{server.url}/-/login", data={"username": owner.name, "password": PASSWORD,
                                                        "csrf_token": field(login.text, "csrf_token"),
                                                        "next": field(login.text, "next")})
    assert urlsplit(back.url).path == "/-/oauth/consent" and "Test connector" in back.text


def test_deny_sends_access_denied_with_the_state(server, owner, wiki):
    client = register(server)
    _, challenge = pkce()
    answer = client.consent(signed_in(server, owner.name), wiki, "deny", challenge=challenge, state="keep-me")
    assert answer == {"error": "access_denied", "error_description": "the user denied access", "state": "keep-me"}


def test_a_stranger_gets_no_code_for_a_private_wiki(server, make_user, wiki):
    stranger = make_user()
    client = register(server)
    _, challenge = pkce()
    browser = signed_in(server, stranger.name)
    page = browser.get(client.authorize(browser, wiki, challenge=challenge).headers["Location"])
    assert page.status_code == 404 and "code=" not in page.text and "approve" not in page.text
    missing = browser.get(client.authorize(browser, WikiName(wiki.owner, "nothing-here"),
                                           challenge=challenge).headers["Location"])
    assert missing.status_code == 404 and page.text.replace(str(wiki), "") == \
        missing.text.replace(f"{wiki.owner}/nothing-here", "")


def test_a_viewer_can_give_read_only(server, make_user, owner, wiki):
    viewer = make_user()
    server.core.grant(wiki, viewer.name, "viewer")
    tokens = register(server).grant(signed_in(server, viewer.name), wiki)
    assert tokens["scope"] == "read"
    result = call_tool(server, wiki, tokens["access_token"], "write_page", path="New", content="# New\n")
    assert result["isError"] and "read" in result["content"][0]["text"]


def test_the_user_may_narrow_write_to_read(server, owner, wiki):
    client = register(server)
    verifier, challenge = pkce()
    browser = signed_in(server, owner.name)
    page = browser.get(client.authorize(browser, wiki, challenge=challenge).headers["Location"])
    answered = browser.post(f"{server.url}/-/oauth/consent", data={
        "csrf_token": field(page.text, "csrf_token"), "request": field(page.text, "request"),
        "decision": "approve", "read_only": "1"})
    code = parse_qs(urlsplit(html.unescape(re.search(r'href="([^"]*code=[^"]*)"', answered.text).group(1))).query)
    assert client.exchange(code["code"][0], verifier).json()["scope"] == "read"


def test_the_consent_form_needs_its_csrf_token(server, owner, wiki):
    client = register(server)
    _, challenge = pkce()
    browser = signed_in(server, owner.name)
    page = browser.get(client.authorize(browser, wiki, challenge=challenge).headers["Location"])
    forged = browser.post(f"{server.url}/-/oauth/consent", data={"request": field(page.text, "request"),
                                                                   "decision": "approve"})
    assert forged.status_code == 400 and "code=" not in forged.text


# the token endpoint
def test_a_wrong_verifier_or_redirect_or_client_secret_gets_no_token(server, owner, wiki):
    client = register(server)
    browser = signed_in(server, owner.name)
    verifier, challenge = pkce()
    code = client.consent(browser, wiki, challenge=challenge)["code"]
    assert client.exchange(code, "x" * 50).json()["error"] == "invalid_grant"
    wrong_redirect = client.token(grant_type="authorization_code", code=code, code_verifier=verifier,
                                  redirect_uri="http://127.0.0.1:9/other")
    assert wrong_redirect.status_code == 400
    impostor = dataclasses.replace(client, secret="0" * 64)
    assert impostor.exchange(code, verifier).status_code == 401
    other = register(server)
    assert dataclasses.replace(other, redirect=client.redirect).exchange(code, verifier).status_code == 400
    assert client.exchange(code, verifier).status_code == 200  # none of those used it up


def test_a_code_works_once_and_a_second_use_revokes_what_the_first_gave(server, owner, wiki):
    client = register(server)
    verifier, challenge = pkce()
    code = client.consent(signed_in(server, owner.name), wiki, challenge=challenge)["code"]
    first = client.exchange(code, verifier).json()
    assert mcp_status(server, wiki, first["access_token"]).status_code == 200
    again = client.exchange(code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert mcp_status(server, wiki, first["access_token"]).status_code == 401
    assert client.token(grant_type="refresh_token", refresh_token=first["refresh_token"]).status_code == 400


def test_a_token_request_for_another_resource_is_refused(server, owner, wiki, make_wiki):
    client = register(server)
    verifier, challenge = pkce()
    code = client.consent(signed_in(server, owner.name), wiki, challenge=challenge)["code"]
    other = make_wiki(owner)
    got = client.exchange(code, verifier, resource=f"{server.url}/mcp/{other}")
    assert got.status_code == 400 and got.json()["error"] == "invalid_target"


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_grant(server, owner, wiki):
    client = register(server, "none")
    tokens = client.grant(signed_in(server, owner.name), wiki)
    renewed = client.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    new = renewed.json()
    assert new["refresh_token"] != tokens["refresh_token"] and new["access_token"] != tokens["access_token"]
    assert mcp_status(server, wiki, tokens["access_token"]).status_code == 401  # the old access token died
    assert mcp_status(server, wiki, new["access_token"]).status_code == 200
    reused = client.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert mcp_status(server, wiki, new["access_token"]).status_code == 401  # the whole grant ended
    assert client.token(grant_type="refresh_token", refresh_token=new["refresh_token"]).status_code == 400


def test_a_refresh_token_is_never_an_access_token(server, owner, wiki):
    tokens = register(server).grant(signed_in(server, owner.name), wiki)
    assert mcp_status(server, wiki, tokens["refresh_token"]).status_code == 401


def test_revoking_either_token_ends_the_grant(server, owner, wiki):
    client = register(server)
    for kind in ("access_token", "refresh_token"):
        tokens = client.grant(signed_in(server, owner.name), wiki)
        got = requests.post(f"{server.url}/-/oauth/revoke", data={"token": tokens[kind], "client_id": client.id,
                                                                  "client_secret": client.secret})
        assert got.status_code == 200
        assert mcp_status(server, wiki, tokens["access_token"]).status_code == 401
        assert client.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"]).status_code == 400


def test_another_client_cannot_revoke_or_refresh(server, owner, wiki):
    client, other = register(server), register(server)
    tokens = client.grant(signed_in(server, owner.name), wiki)
    requests.post(f"{server.url}/-/oauth/revoke", data={"token": tokens["access_token"], "client_id": other.id,
                                                        "client_secret": other.secret})
    assert mcp_status(server, wiki, tokens["access_token"]).status_code == 200
    assert other.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"]).status_code == 400


# what a token is bound to
def test_the_token_works_on_its_wiki_only(server, owner, wiki, make_wiki):
    tokens = register(server).grant(signed_in(server, owner.name), wiki)
    access = tokens["access_token"]
    other = make_wiki(owner)
    elsewhere = mcp_status(server, other, access)
    assert elsewhere.status_code == 401 and "resource_metadata" in elsewhere.headers["WWW-Authenticate"]
    assert requests.get(f"{server.url}/{wiki}.git/info/refs?service=git-upload-pack",
                        auth=("x", access)).status_code == 403
    assert requests.get(f"{server.url}/api/wikis/{wiki}/search", params={"q": "home"},
                        headers={"Authorization": f"Bearer {access}"}).status_code == 403


def test_an_expired_access_token_is_refused_and_refresh_renews_it(server, owner, wiki):
    client = register(server)
    tokens = client.grant(signed_in(server, owner.name), wiki)
    store = server.core.store
    record = next(t for t in store.list_tokens(owner.name) if t.client == client.id and t.kind == "access")
    store.delete_token(record.id)
    store.add_token(dataclasses.replace(record, expires=time.time() - 1))
    expired = mcp_status(server, wiki, tokens["access_token"])
    assert expired.status_code == 401 and 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
    renewed = client.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json()
    assert mcp_status(server, wiki, renewed["access_token"]).status_code == 200


def test_removing_a_collaborator_or_deleting_the_wiki_ends_their_grants(server, make_user, owner, wiki):
    editor = make_user()
    server.core.grant(wiki, editor.name, "editor")
    client = register(server)
    theirs = client.grant(signed_in(server, editor.name), wiki)
    mine = client.grant(signed_in(server, owner.name), wiki)
    server.core.revoke(wiki, editor.name)
    assert mcp_status(server, wiki, theirs["access_token"]).status_code == 401
    server.core.grant(wiki, editor.name, "editor")  # given again: the old consent does not come back
    assert client.token(grant_type="refresh_token", refresh_token=theirs["refresh_token"]).status_code == 400
    assert mcp_status(server, wiki, mine["access_token"]).status_code == 200
    server.core.delete_wiki(wiki)
    assert not [t for t in server.core.store.list_tokens(owner.name) if t.client]


def test_registrations_are_limited_per_address(tmp_path):
    limited = start_server(tmp_path, {"WIKIBOT_OAUTH_REGISTRATIONS_PER_HOUR": "5"})
    try:
        statuses = [requests.post(f"{limited.url}/-/oauth/register",
                                  json={"redirect_uris": [CLAUDE], "client_name": "flood"}).status_code
                    for _ in range(6)]
    finally:
        stop_server(limited)
    assert statuses == [201] * 5 + [429]
