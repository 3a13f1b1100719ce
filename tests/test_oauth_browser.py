"""An MCP connector's OAuth sign-in end to end with a real browser: the MCP SDK's OAuth client connects
to a wiki on `wikibot serve` and hands its authorization URL to headless Chromium, which signs in through
the login form, approves on the consent page and is sent on (by the continue page) to the connector's
redirect URI, a real listener on 127.0.0.1. Only a browser checks that the continue page really gets
there past the CSP, which requests-based tests (tests/test_oauth.py) cannot.

The consent page's screenshot goes to $WIKIBOT_TEST_OUTPUT/oauth (default: test-output/oauth).
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import requests
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from mcp import ClientSession
from wikibot.gitd.names import WikiName
from wikibot.testing.servers import Account, Server
from wikibot.testing.web import PASSWORD, chromium

CLIENT_NAME = "Browser test connector"
TIMEOUT_MS = 60_000  # generous: the suite must pass on a busy machine
TIMEOUT_S = TIMEOUT_MS / 1000
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class Callback:
    """The connector's redirect URI, really listening on 127.0.0.1 (port 0: no race for a free port),
    so the browser must arrive there; it keeps the query it was called with."""

    def __init__(self) -> None:
        self.query: dict[str, str] = {}
        self.arrived = threading.Event()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/callback"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        callback = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                url = urlsplit(self.path)
                if url.path != "/callback":  # e.g. the browser's /favicon.ico
                    self.send_error(404)
                    return
                callback.query.update({k: v[0] for k, v in parse_qs(url.query).items()})
                callback.arrived.set()
                body = b"<!doctype html><title>Connected</title><p id=done>Connected: you can close this window.</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # keep the test's output clean
                pass

        return Handler

    def code(self) -> AuthorizationCodeResult:
        """What the browser brought back; waits for it, and says so if it never came."""
        if not self.arrived.wait(TIMEOUT_S):
            raise AssertionError(f"timed out after {TIMEOUT_S:.0f}s waiting for the browser at {self.url}")
        assert "code" in self.query, f"the redirect brought no code: {self.query}"
        return AuthorizationCodeResult(code=self.query["code"], state=self.query.get("state"))


class Memory:
    """The SDK's token storage, in memory: the test reads the token it got."""

    tokens: OAuthToken | None = None
    client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


@pytest.fixture
def callback() -> Iterator[Callback]:
    listener = Callback()
    thread = threading.Thread(target=listener.http.serve_forever, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        listener.http.shutdown()
        listener.http.server_close()
        thread.join(timeout=30)


@pytest.fixture
def shots() -> Path:
    folder = Path(os.environ.get("WIKIBOT_TEST_OUTPUT", "test-output")) / "oauth"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@contextmanager
def waiting_for(page: Page, what: str) -> Iterator[None]:
    """A browser wait that times out says what it waited for and where the browser was."""
    try:
        yield
    except PlaywrightTimeout as exc:
        raise AssertionError(f"timed out after {TIMEOUT_S:.0f}s waiting for {what}; the browser is at {page.url}") \
            from exc


def sign_in_and_allow(url: str, server: Server, user: Account, wiki: WikiName, callback: Callback,
                      shots: Path) -> None:
    """What the person does in the browser the connector opened: sign in, read the consent page, Allow."""
    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        with waiting_for(page, "the login page (with next) the authorization URL leads to"):
            page.goto(url)
            page.wait_for_url(re.compile(re.escape(f"{server.url}/-/login?next=")))
        page.fill("input[name=username]", user.name)
        page.fill("input[name=password]", PASSWORD)
        with waiting_for(page, "the consent page after signing in"):
            page.click("form[action='/-/login'] button[type=submit]")
            page.wait_for_url(re.compile(re.escape(f"{server.url}/-/oauth/consent?request=")))
            page.wait_for_selector("#consent")
        assert page.inner_text("#client-name") == CLIENT_NAME
        assert page.inner_text("#redirect-host") == "127.0.0.1"
        assert str(wiki) in page.inner_text("#consent")
        page.screenshot(path=shots / "oauth-consent.png", full_page=True)
        with waiting_for(page, f"the continue page to send the browser to {callback.url}"):
            page.click("#approve")
            page.wait_for_url(re.compile(re.escape(callback.url + "?")))
            page.wait_for_selector("#done")


def test_a_connector_signs_in_through_the_browser_and_reads_a_page(server: Server, make_user, make_wiki,
                                                                   callback: Callback, shots: Path):
    user = make_user()
    wiki = make_wiki(user, template="default")
    other = make_wiki(user, template="default")
    storage = Memory()

    async def redirect_handler(url: str) -> None:
        await asyncio.to_thread(sign_in_and_allow, url, server, user, wiki, callback, shots)

    async def callback_handler() -> AuthorizationCodeResult:
        return await asyncio.to_thread(callback.code)

    async def connect() -> tuple[list[str], str]:
        metadata = OAuthClientMetadata(client_name=CLIENT_NAME, redirect_uris=[callback.url],
                                       token_endpoint_auth_method="client_secret_post")
        auth = OAuthClientProvider(f"{server.url}/mcp/{wiki}", metadata, storage, redirect_handler, callback_handler)
        async with httpx2.AsyncClient(auth=auth, timeout=TIMEOUT_S) as http, \
                streamable_http_client(f"{server.url}/mcp/{wiki}", http_client=http) as (read, write, *_), \
                ClientSession(read, write) as session:
            await session.initialize()
            tools = [tool.name for tool in (await session.list_tools()).tools]
            page = await session.call_tool("read_page", {"path": "Home"})
            return tools, page.content[0].text

    tools, text = asyncio.run(connect())
    assert callback.arrived.is_set() and callback.query.get("state"), callback.query
    assert "read_page" in tools and "write_page" in tools
    assert text.startswith("Home (home.md) at revision") and f"This wiki was created by {user.name}" in text, text
    assert storage.tokens is not None and storage.tokens.scope == "write"

    def mcp_status(target: WikiName) -> int:
        return requests.post(f"{server.url}/mcp/{target}", json=INIT, timeout=TIMEOUT_S,
                             headers={**MCP_HEADERS, "Authorization": f"Bearer {storage.tokens.access_token}"}
                             ).status_code

    assert mcp_status(wiki) == 200  # the token works where it was given, so the 401 below is about the wiki
    assert mcp_status(other) == 401
