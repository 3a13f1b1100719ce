"""The dashboard end to end in headless Chromium against a real `wikibot serve` with sign-up by
invite: an admin makes an invite -> a newcomer signs up with it -> creates a wiki -> edits a page ->
sees the edit in the history (klaus) -> finds it with the dashboard's search -> makes a token and
clones with git -> revokes it (the next fetch is refused) -> deletes the wiki -> deletes the account.

Every main page is photographed at 390 px (a phone) and 1280 px wide, under
$WIKIBOT_TEST_OUTPUT/dashboard (default: test-output/dashboard).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from wikibot.gitd.names import WikiName
from wikibot.testing.servers import Server, start_server, stop_server, unique, wait_until
from wikibot.testing.web import chromium

PASSWORD = "correct horse battery"
TIMEOUT_MS = 60_000  # generous: the suite must pass on a busy machine
WIDTHS = (390, 1280)


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(os.environ.get("WIKIBOT_TEST_OUTPUT", "test-output")) / "dashboard"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture(scope="module")
def invite_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("dash-data"), extra_env={"WIKIBOT_SIGNUP": "invite"})
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def shoot(page, shots: Path, name: str) -> None:
    """The page at each width, whole; a page wider than the phone's screen would scroll sideways."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=shots / f"{name}-{width}.png", full_page=True)
        if width < 500:
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{name} is {overflow} px wider than a {width} px screen"
    page.set_viewport_size({"width": 1280, "height": 900})


def git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=check,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})


def test_invite_signup_wiki_edit_history_search_token_and_deletions(invite_server: Server, browser, shots, tmp_path):
    server = invite_server
    url = server.url
    admin_name, newcomer = unique("boss"), unique("new")
    server.core.add_user(admin_name, password=PASSWORD, admin=True, tier="premium")

    # the admin makes an invite link
    admin = browser.new_page()
    admin.set_default_timeout(TIMEOUT_MS)
    admin.goto(f"{url}/-/login")
    admin.fill("input[name=username]", admin_name)
    admin.fill("input[name=password]", PASSWORD)
    shoot(admin, shots, "01-sign-in")
    admin.click("form.card button[type=submit]")
    admin.wait_for_url(f"{url}/")
    admin.goto(f"{url}/-/admin")
    admin.click("text=Make an invite link")
    link = admin.locator("#invite-link").inner_text().strip()
    assert link.startswith(f"{url}/-/signup/")
    shoot(admin, shots, "02-admin")
    admin.close()

    # a newcomer, in a browser of their own, signs up with it
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(link)
    page.fill("#username", newcomer)
    page.fill("#email", f"{newcomer}@example.org")
    page.fill("#password", PASSWORD)
    page.fill("#password2", PASSWORD)
    shoot(page, shots, "03-sign-up")
    page.click("form.card button[type=submit]")
    page.wait_for_url(f"{url}/")
    page.wait_for_selector("text=You have no wikis yet")

    # creates a wiki
    page.click("text=New wiki")
    page.fill("#title", "Kitchen")
    page.fill("#slug", "kitchen")
    page.fill("#purpose", "Recipes and how we cook them.")
    shoot(page, shots, "04-new-wiki")
    page.click("text=Create wiki")
    page.wait_for_url(re.compile(re.escape(f"{url}/-/wikis/{newcomer}/kitchen/connect")))
    assert f"git clone {url}/{newcomer}/kitchen.git" in page.content()
    shoot(page, shots, "05-connect")
    wiki = WikiName(newcomer, "kitchen")
    page.goto(f"{url}/")
    page.wait_for_selector(f"a[href='/{wiki}/']")
    shoot(page, shots, "06-dashboard")

    # edits a page in the web wiki
    page.goto(f"{url}/{wiki}/Bread/edit")
    editor = page.locator(".cm-content")
    editor.click()
    page.keyboard.type("# Bread\n\nLeave the dough to prove overnight in the fridge so it rises slowly.\n")
    page.click("#save-page-btn")
    page.fill("#commit-message", "slow proving")
    page.locator("#modal-commit input[type=submit]").click()
    page.wait_for_url(f"{url}/{wiki}/Bread")
    page.wait_for_selector("text=prove overnight in the fridge")

    # sees it in the history
    page.goto(f"{url}/{wiki}/-/history/")
    page.wait_for_selector("text=slow proving")
    shoot(page, shots, "07-history")

    # finds it from the dashboard by a paraphrase
    def found() -> bool:
        page.goto(f"{url}/-/search?q=letting+dough+rise+in+the+refrigerator")
        return page.locator(f"a.hit[href^='/{wiki}/bread'], a.hit[href^='/{wiki}/Bread']").count() > 0

    wait_until(found, timeout=180, interval=1.0, what="the edited page found by the dashboard's search",
               server=server)
    shoot(page, shots, "08-search")

    # makes a token, clones with it, revokes it
    page.goto(f"{url}/-/tokens")
    page.check("input[name=scope][value=write]")
    page.fill("#note", "laptop")
    page.click("button:has-text('Create token')")
    secret = page.locator("#secret").inner_text().strip()
    assert secret.startswith("wbt_")
    shoot(page, shots, "09-tokens")
    clone = tmp_path / "clone"
    git("clone", "-q", server.clone_url(wiki, secret), str(clone))
    assert "prove overnight" in (clone / "bread.md").read_text()
    page.goto(f"{url}/-/tokens")
    page.click("button:has-text('Revoke')")
    page.wait_for_url(re.compile(re.escape(f"{url}/-/tokens?done=revoked")))
    refused = git("fetch", "-q", "origin", cwd=clone, check=False)
    assert refused.returncode != 0 and ("401" in refused.stderr or "Authentication failed" in refused.stderr), \
        refused.stderr

    # deletes the wiki, typing its name
    page.goto(f"{url}/-/wikis/{wiki}/settings")
    shoot(page, shots, "10-settings")
    page.fill("#delete input[name=confirm]", "kitchen")
    page.click("button:has-text('Delete wiki')")
    page.wait_for_url(f"{url}/?done=deleted")
    assert server.core.store.get_wiki(wiki) is None and not server.core.repos.path(wiki).exists()

    # deletes the account, typing the user name
    page.goto(f"{url}/-/account")
    shoot(page, shots, "11-account")
    page.fill("#delete input[name=confirm]", newcomer)
    page.click("button:has-text('Delete account')")
    page.wait_for_url(f"{url}/?done=account-deleted")
    assert server.core.store.get_user(newcomer) is None
    shoot(page, shots, "12-landing")
    assert page.locator("a[href='/-/login']").count() >= 1
    context.close()
