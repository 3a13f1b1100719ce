"""What the web wiki's tests and benchmark share: form fields read from a page, signing in, and the
in-process platform most web tests start from."""
from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from werkzeug.test import Client

from wikibot.bootstrap.create import create_wiki
from wikibot.config import DEFAULT_TIERS, TierLimits
from wikibot.gitd.core import Core
from wikibot.gitd.names import WikiName
from wikibot.gitd.records import Grant
from wikibot.testing.servers import platform_config
from wikibot.wiring import open_core

PASSWORD = "correct horse battery"
PRIVATE = WikiName("olga", "priv")  # olga owns it; eddie edits it, vera views it
PUBLIC = WikiName("olga", "pub")  # the same, public
SMALL = WikiName("tina", "small")  # its owner's tier allows 4 pages (the starter pages) and 1 MB a file


def field(html: str, name: str) -> str:
    """The value of the form field `name` in a page."""
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"the page has no {name} field"
    return found.group(1)


def csrf(html: str) -> str:
    return field(html, "csrf_token")


def sign_in(app, user: str | None, password: str = PASSWORD) -> Client:
    """A werkzeug client of `app` signed in as `user` through /-/login (None: anonymous)."""
    client = Client(app)
    if user is not None:
        form = client.get("/-/login")
        got = client.post("/-/login", data={"username": user, "password": password, "csrf_token": csrf(form.text)})
        assert got.status_code == 303, got.text
    return client


def web_core(data: Path, strangers: tuple[str, ...] = ()) -> Core:
    """A platform on `data` with PRIVATE, PUBLIC and SMALL from the default template, their owners,
    editor eddie and viewer vera on the first two, and users with no grant (`strangers`)."""
    config = dataclasses.replace(platform_config(data),
                                 tiers={**DEFAULT_TIERS, "tiny": TierLimits(1, 4, 3, 50, 1)})
    core = open_core(config)
    core.initialise()
    for user in ("olga", "eddie", "vera", *strangers):
        core.add_user(user, email=f"{user}@example.org", password=PASSWORD, tier="premium")
    core.add_user("tina", password=PASSWORD, tier="tiny")
    create_wiki(core, PRIVATE, template="default")
    create_wiki(core, PUBLIC, template="default", public=True)
    create_wiki(core, SMALL, template="default")
    for wiki in (PRIVATE, PUBLIC):
        core.store.set_grant(Grant(wiki=wiki, user="eddie", role="editor"))
        core.store.set_grant(Grant(wiki=wiki, user="vera", role="viewer"))
    return core


CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright never downloads a browser here


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium driven by Playwright, for the browser tests; says how to get it if missing."""
    if not Path(CHROMIUM).exists():
        raise AssertionError(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


def timed(fn: Callable[[int], object], runs: int) -> list[float]:
    """Milliseconds each of `runs` calls `fn(i)` took, in call order."""
    times = []
    for i in range(runs):
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1000)
    return times
