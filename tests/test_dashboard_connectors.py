"""MCP connectors on the dashboard's tokens page, in-process (werkzeug client over the platform's router,
real store): a connector signed in through the real OAuth endpoints is listed apart from personal tokens,
its revoke button ends its access and refresh tokens at once, only its user may revoke it, the personal
token revoke never reaches its tokens, its self-chosen name is shown escaped; and `wikibot token list`."""
from __future__ import annotations

import argparse
import base64
import hashlib
import html
import re
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from werkzeug.test import Client

from wikibot import cli
from wikibot.app import Platform, routes
from wikibot.gitd.core import Core
from wikibot.gitd.names import WikiName
from wikibot.testing.web import PRIVATE, csrf, sign_in, web_core
from wikibot.webui.dashboard.common import NOTICES
from wikibot.webui.dashboard.tokens import CONNECTOR_REVOKED

CALLBACK = "http://127.0.0.1:9/callback"  # never reached: the tests read the continue link
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@dataclass(frozen=True)
class Connected:
    """What one connector holds after the flow, and the grant its tokens belong to."""

    client_id: str
    client_secret: str
    access: str
    refresh: str
    grant: str


@pytest.fixture(scope="module")
def core(tmp_path_factory) -> Core:
    return web_core(tmp_path_factory.mktemp("connectors") / "data", strangers=("sam",))


@pytest.fixture(scope="module")
def app(core) -> Platform:
    return Platform(routes(core))


@pytest.fixture(scope="module")
def olga(app) -> Client:
    return sign_in(app, "olga")


@pytest.fixture(scope="module")
def sam(app) -> Client:
    return sign_in(app, "sam")


def connect(app: Platform, core: Core, browser: Client, user: str, wiki: WikiName = PRIVATE,
            name: str = "Test connector") -> Connected:
    """The whole flow as a connector and its user's browser drive it: register, authorize with PKCE,
    approve on the consent page, exchange the code."""
    connector = Client(app)  # the app's own HTTP client: no session
    registered = connector.post("/-/oauth/register", json={"redirect_uris": [CALLBACK], "client_name": name,
                                                           "token_endpoint_auth_method": "client_secret_post"})
    assert registered.status_code == 201, registered.text
    client_id, client_secret = registered.json["client_id"], registered.json["client_secret"]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": CALLBACK,
                       "code_challenge": challenge, "code_challenge_method": "S256", "state": "st4te",
                       "resource": f"{core.config.public_url}/mcp/{wiki}"})
    authorized = browser.get(f"/-/oauth/authorize?{query}")
    assert authorized.status_code == 302, authorized.text
    consent = urlsplit(authorized.headers["Location"])
    assert consent.path == "/-/oauth/consent", authorized.headers["Location"]
    page = browser.get(f"{consent.path}?{consent.query}")
    assert page.status_code == 200, page.text
    blob = html.unescape(re.search(r'name="request" value="([^"]*)"', page.text).group(1))
    answered = browser.post("/-/oauth/consent", data={"csrf_token": csrf(page.text), "request": blob,
                                                      "decision": "approve"})
    link = re.search(r'id="continue" class="button" href="([^"]*)"', answered.text)
    assert link, answered.text[:500]
    code = parse_qs(urlsplit(html.unescape(link.group(1))).query)["code"][0]
    issued = connector.post("/-/oauth/token", data={"grant_type": "authorization_code", "code": code,
                                                    "code_verifier": verifier, "redirect_uri": CALLBACK,
                                                    "client_id": client_id, "client_secret": client_secret})
    assert issued.status_code == 200, issued.text
    access = issued.json["access_token"]
    grant = next(t.grant for t in core.store.list_tokens(user) if t.client == client_id)
    return Connected(client_id, client_secret, access, issued.json["refresh_token"], grant)


def mcp_status(app: Platform, token: str, wiki: WikiName = PRIVATE) -> int:
    return Client(app).post(f"/mcp/{wiki}", json=INIT,
                            headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}).status_code


def refresh(app: Platform, connected: Connected):
    return Client(app).post("/-/oauth/token", data={"grant_type": "refresh_token", "refresh_token": connected.refresh,
                                                    "client_id": connected.client_id,
                                                    "client_secret": connected.client_secret})


def revoke(browser: Client, grant: str, with_csrf: bool = True):
    data = {"csrf_token": csrf(browser.get("/-/tokens").text)} if with_csrf else {}
    return browser.post(f"/-/tokens/connectors/{grant}/revoke", data=data)


def personal_section(page: str) -> str:
    """The "Your tokens" table of the tokens page, without the connectors' section."""
    return page[page.index("<h2>Your tokens</h2>"):page.index('id="connectors"')]


def connectors_section(page: str) -> str:
    return page[page.index('id="connectors"'):]


def test_a_connector_is_listed_apart_from_personal_tokens(app, core, olga):
    made, _ = core.create_token("olga", "read", note="laptop")
    connected = connect(app, core, olga, "olga", name="Claude test")
    assert mcp_status(app, connected.access) == 200
    page = olga.get("/-/tokens").text
    row = re.search(rf'<tr id="grant-{connected.grant}">(.*?)</tr>', connectors_section(page), re.S)
    assert row, connectors_section(page)[:1000]
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row.group(1), re.S)]
    assert cells[:3] == ["Claude test", str(PRIVATE), "write"]
    assert f'action="/-/tokens/connectors/{connected.grant}/revoke"' in row.group(1)
    assert "ends its access at once" in connectors_section(page)
    personal = personal_section(page)
    assert f'id="token-{made.id}"' in personal
    records = [t for t in core.store.list_tokens("olga") if t.grant == connected.grant]
    assert {t.kind for t in records} == {"access", "refresh"}
    assert not any(t.id in personal for t in records) and "Claude test" not in personal


def test_revoking_a_connector_ends_its_access_and_refresh_tokens(app, core, olga):
    connected = connect(app, core, olga, "olga")
    assert revoke(olga, connected.grant, with_csrf=False).status_code == 400  # the form's CSRF check
    assert mcp_status(app, connected.access) == 200
    got = revoke(olga, connected.grant)
    assert got.status_code == 303 and got.headers["Location"] == f"/-/tokens?done={CONNECTOR_REVOKED}"
    assert mcp_status(app, connected.access) == 401
    refused = refresh(app, connected)
    assert refused.status_code == 400 and refused.json["error"] == "invalid_grant", refused.text
    page = olga.get(got.headers["Location"]).text
    assert NOTICES[CONNECTOR_REVOKED] in page and f'id="grant-{connected.grant}"' not in page
    assert not any(t.grant == connected.grant for t in core.store.list_tokens("olga"))
    assert revoke(olga, connected.grant).status_code == 404  # gone: nothing to revoke twice


def test_another_user_cannot_revoke_a_connector(app, core, olga, sam):
    connected = connect(app, core, olga, "olga")
    assert revoke(sam, connected.grant).status_code == 404
    assert revoke(sam, "no-such-grant").status_code == 404  # the same answer as for a grant that is not there
    assert f'id="grant-{connected.grant}"' not in sam.get("/-/tokens").text
    assert mcp_status(app, connected.access) == 200
    assert refresh(app, connected).status_code == 200


def test_the_personal_token_revoke_never_takes_a_connectors_token(app, core, olga):
    connected = connect(app, core, olga, "olga")
    form = {"csrf_token": csrf(olga.get("/-/tokens").text)}
    for record in [t for t in core.store.list_tokens("olga") if t.grant == connected.grant]:
        assert olga.post(f"/-/tokens/{record.id}/revoke", data=form).status_code == 404, record.kind
    assert mcp_status(app, connected.access) == 200
    assert refresh(app, connected).status_code == 200


def test_a_connectors_name_is_shown_escaped(app, core, olga):
    name = '<script>alert("x")</script><b>Evil</b>'
    connected = connect(app, core, olga, "olga", name=name)
    page = olga.get("/-/tokens").text
    row = re.search(rf'<tr id="grant-{connected.grant}">(.*?)</tr>', page, re.S).group(1)
    shown = re.search(r"<td>(.*?)</td>", row).group(1)
    assert "<" not in shown and html.unescape(shown) == name
    assert "<script>alert" not in page and "<b>Evil" not in page


def test_the_cli_lists_connectors_apart_from_personal_tokens(app, core, sam, capsys):
    made, _ = core.create_token("sam", "read", note="ci")
    connected = connect(app, core, sam, "sam", wiki=WikiName("olga", "pub"), name="Bidi \u202eevil\u202c app")
    assert refresh(app, connected).status_code == 200  # leaves a spent record besides the new ones
    assert {t.kind for t in core.store.list_tokens("sam") if t.client} == {"access", "refresh", "spent"}
    cli.cmd_token_list(core, argparse.Namespace(user="sam"))
    personal, connectors = capsys.readouterr().out.split("\n\n")
    lines = personal.splitlines()
    assert lines[0].split() == ["ID", "SCOPE", "WIKIS", "CREATED", "EXPIRES", "LAST", "USED", "NOTE"]
    assert [line.split()[0] for line in lines[1:]] == [made.id]  # no record of the connector's
    heading, header, row = connectors.splitlines()
    assert heading.startswith("1 MCP connector(s)") and header.split()[:4] == ["GRANT", "CLIENT", "WIKI", "SCOPE"]
    assert row.startswith(connected.grant) and "Bidi ?evil? app" in row and "olga/pub  read" in row
