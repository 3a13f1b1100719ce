"""Sign-up with an identity provider in headless Chromium, as a person would click it: the button's
form, the page that moves on to the provider (the CSP's `form-action 'self'` blocks a form's redirect
to another origin, which only a real browser enforces), the provider, the user-name page, the
dashboard. The provider is the test's own OIDC issuer on 127.0.0.1; the platform runs in-process."""
from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from wikibot.app import Platform, routes
from wikibot.config import IdentityProvider
from wikibot.testing.oidc_provider import OidcProvider, Person
from wikibot.testing.servers import free_port
from wikibot.testing.web import chromium, web_core

TIMEOUT_MS = 60_000  # generous: the suite must pass on a busy machine


@pytest.fixture
def site(tmp_path) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    person = Person("corp-sub-77", "nadia", "nadia@example.org", "Nadia Example")
    with OidcProvider("wikibot", "s3cret", (f"{base}/-/login/corp/callback",), person) as issuer:
        core = web_core(tmp_path / "data")
        provider = IdentityProvider(name="corp", kind="oidc", client_id="wikibot", client_secret="s3cret",
                                    label="Corp SSO", issuer=issuer.issuer)
        config = dataclasses.replace(core.config, base_url=base, providers=(provider,), signup="open")
        server = make_server("127.0.0.1", port, Platform(routes(dataclasses.replace(core, config=config))),
                             threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield base
        finally:
            server.shutdown()
            thread.join(timeout=30)


def test_a_person_signs_up_with_the_provider_in_a_browser(site):
    with chromium() as browser:
        page = browser.new_page()
        blocked: list[str] = []
        page.on("console", lambda message: blocked.append(message.text) if "Content Security" in message.text else None)
        page.goto(f"{site}/-/login", timeout=TIMEOUT_MS)
        page.click("text=Sign in with Corp SSO", timeout=TIMEOUT_MS)
        page.wait_for_selector("text=Choose your user name", timeout=TIMEOUT_MS)
        assert not blocked, blocked
        page.fill("input[name=username]", "nadia")
        page.click("button[type=submit]", timeout=TIMEOUT_MS)
        page.wait_for_selector("text=Your wikis", timeout=TIMEOUT_MS)
        assert page.url.rstrip("/") == site and not blocked, (page.url, blocked)
