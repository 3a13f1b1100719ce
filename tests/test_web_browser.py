"""The web wiki end to end in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright's
Python package; no browser is downloaded): sign in, open a wiki pushed with git, edit and save a
page, see the change in `git pull`, find it with the search box by a paraphrase, sign out.

Screenshots of each step go to $WIKIBOT_TEST_OUTPUT/browser (default: test-output/browser).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from wikibot.testing.servers import Server, commit_files, run_git, unique, wait_until
from wikibot.testing.web import chromium

PASSWORD = "correct horse battery"
TIMEOUT_MS = 60_000  # generous: the suite must pass on a busy machine


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(os.environ.get("WIKIBOT_TEST_OUTPUT", "test-output")) / "browser"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def test_sign_in_edit_pull_search_sign_out(server: Server, browser, shots: Path, tmp_path: Path):
    from wikibot.bootstrap.create import create_wiki
    from wikibot.gitd.names import WikiName

    user = unique("web")
    server.core.add_user(user, email=f"{user}@example.org", password=PASSWORD, tier="premium")
    token = server.core.create_token(user, "write")[1]
    wiki, _ = create_wiki(server.core, WikiName(user, "kitchen"), template="empty")
    clone = tmp_path / "clone"
    run_git("clone", "-q", server.clone_url(wiki.name, token), str(clone))
    commit_files(clone, {"home.md": "# Home\n\nOur kitchen notes. See [[Bread]].\n",
                         "bread.md": "# Bread\n\nMix flour and water; bake at 230 degrees.\n"}, "pages from git")
    run_git("push", "-q", "origin", "HEAD:main", cwd=clone)

    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{server.url}/-/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.screenshot(path=shots / "1-login.png")
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/")
    page.click(f"a[href='/{wiki.name}/']")
    page.wait_for_selector("text=Our kitchen notes")
    page.screenshot(path=shots / "2-wiki-home.png")

    page.goto(f"{server.url}/{wiki.name}/Bread")
    page.wait_for_selector("text=bake at 230 degrees")
    page.goto(f"{server.url}/{wiki.name}/Bread/edit")
    editor = page.locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.type("\n\nLeave the dough to prove overnight in the fridge so it rises slowly.\n")
    page.screenshot(path=shots / "3-editor.png")
    page.click("#save-page-btn")
    page.fill("#commit-message", "slow proving")
    page.locator("#modal-commit input[type=submit]").click()
    page.wait_for_url(f"{server.url}/{wiki.name}/Bread")
    page.wait_for_selector("text=prove overnight in the fridge")
    page.screenshot(path=shots / "4-saved.png")

    run_git("pull", "-q", "--ff-only", "origin", "main", cwd=clone)
    assert "prove overnight in the fridge" in (clone / "bread.md").read_text()
    assert run_git("log", "-1", "--format=%an|%s", cwd=clone).stdout.strip() == f"{user}|slow proving"

    def found_by_paraphrase() -> bool:
        page.goto(f"{server.url}/{wiki.name}/Home")
        page.fill("#search-query", "letting dough rise in the refrigerator")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        return page.locator(f"a.wikibot-hit[href^='/{wiki.name}/Bread']").count() > 0

    wait_until(found_by_paraphrase, timeout=180, interval=1.0, what="the saved page found by the search box",
               server=server)
    page.screenshot(path=shots / "5-search.png")

    page.goto(f"{server.url}/")
    page.click("text=Sign out")
    page.wait_for_url(f"{server.url}/")
    page.goto(f"{server.url}/{wiki.name}/Bread")
    page.wait_for_url(re.compile(re.escape(f"{server.url}/-/login?next=")))
    page.screenshot(path=shots / "6-signed-out.png")
    assert page.locator("input[name=password]").count() == 1
    page.close()
