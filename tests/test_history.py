"""Every wiki's history in klaus, at /OWNER/WIKI/-/history/: in-process through the platform's router
(werkzeug test client, real klaus, real repositories) for every role and view, the History link of
the web wiki and the way back, odd and hostile paths, big files; then end to end against `wikibot
serve`, with commits from a push, a web save and an MCP write."""
from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from fastmcp import Client as McpClient
from fastmcp.client.transports import StreamableHttpTransport
from werkzeug.test import Client

from wikibot.app import Platform, routes
from wikibot.bootstrap.create import create_wiki
from wikibot.gitd.commits import FileChange
from wikibot.gitd.core import Core
from wikibot.gitd.names import WikiName
from wikibot.testing.servers import Server, run_git
from wikibot.testing.web import PASSWORD, PRIVATE, PUBLIC, csrf, field, sign_in, web_core
from wikibot.webui import history

ROLES = (None, "sam", "adam", "vera", "eddie", "olga")  # anonymous, stranger, admin, viewer, editor, owner
READERS = {"vera", "eddie", "olga"}  # of the private wiki
ODD = "odd/[ab] ü.md"  # glob characters and a non-ASCII letter in a page's file name


@pytest.fixture(scope="module")
def core(tmp_path_factory) -> Core:
    core = web_core(tmp_path_factory.mktemp("history") / "data", strangers=("sam",))
    core.add_user("adam", email="adam@example.org", password=PASSWORD, admin=True)  # a platform admin, no grant
    for wiki in (PRIVATE, PUBLIC):
        core.commit(wiki, [FileChange("notes.md", b"# Notes\n\nfirst line\n")], message="notes: first",
                    author=("olga", "olga@example.org"), actor="olga", source="mcp")
        core.commit(wiki, [FileChange("notes.md", b"# Notes\n\nfirst line\nsecond line\n"),
                           FileChange("a.md", b"# A\n"), FileChange(ODD, b"# Odd\n")],
                    message="notes: second", author=("eddie", "eddie@example.org"), actor="eddie", source="mcp")
    return core


@pytest.fixture(scope="module")
def app(core) -> Platform:
    return Platform(routes(core))


@pytest.fixture(scope="module")
def clients(app) -> dict[str | None, Client]:
    return {user: sign_in(app, user) for user in ROLES}


def head(core: Core, wiki: WikiName) -> str:
    found = core.repos.head(wiki)
    assert found
    return found


def views(core: Core, wiki: WikiName) -> dict[str, str]:
    """One URL of each of klaus's views that are on, for `wiki`."""
    sha = head(core, wiki)
    base = f"/{wiki}/-/history"
    return {"index": f"{base}/", "log": f"{base}/tree/main/", "page log": f"{base}/tree/main/notes.md",
            "commit": f"{base}/commit/{sha}/", "patch": f"{base}/commit/{sha}.diff",
            "blob": f"{base}/blob/main/notes.md", "blame": f"{base}/blame/main/notes.md",
            "raw": f"{base}/raw/main/notes.md", "static": f"{base}/static/klaus.css",
            "at a commit": f"{base}/blob/{sha}/notes.md"}


# who sees what
@pytest.mark.parametrize("wiki", [PRIVATE, PUBLIC], ids=str)
@pytest.mark.parametrize("user", ROLES, ids=lambda u: u or "anonymous")
def test_every_view_answers_each_role_as_the_wiki_does(core, clients, user, wiki):
    for view, url in views(core, wiki).items():
        got = clients[user].get(url)
        if wiki == PUBLIC or user in READERS:
            assert got.status_code == 200, (view, got.text[:300])
        elif user is None:  # sent to sign in, and back here after
            assert (got.status_code, got.headers["Location"]) == (303, "/-/login?next=" + quote(url)), view
        else:  # a stranger, and an admin without a grant: no such wiki
            assert (got.status_code, got.text) == (404, f"wiki {wiki} not found\n"), view


def test_a_private_wiki_answers_as_a_missing_one(core, clients):
    gone = WikiName(PRIVATE.owner, "nothing")
    for url in views(core, PRIVATE).values():
        for user in ("sam", "adam", None):
            private = clients[user].get(url + "?page=1")
            missing = clients[user].get(url.replace(str(PRIVATE), str(gone)) + "?page=1")
            assert private.status_code == missing.status_code
            assert private.text.replace(str(PRIVATE), "X") == missing.text.replace(str(gone), "X")
            assert private.headers.get("Location", "").replace(str(PRIVATE), "X") == \
                missing.headers.get("Location", "").replace(str(gone), "X")


def test_the_history_is_read_only_and_serves_no_git(core, clients):
    base = f"/{PRIVATE}/-/history"
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for url in (f"{base}/", f"{base}/git-receive-pack", f"{base}/blob/main/notes.md"):
            got = clients["olga"].open(url, method=method, data=b"0000")
            assert (got.status_code, got.headers["Allow"]) == (405, "GET, HEAD"), (method, url)
        assert clients[None].open(f"{base}/", method=method).status_code == 303  # who first, as for reads
        assert clients["sam"].open(f"{base}/", method=method).status_code == 404
    for url in (f"{base}/info/refs?service=git-upload-pack", f"{base}/info/refs?service=git-receive-pack",
                f"{base}/objects/info/packs", f"{base}/tarball/main/", f"/{PRIVATE}/-/history/~x/"
                f"history/", f"{base}/robots.txt/"):
        got = clients["olga"].get(url)
        assert got.status_code == 404, url
        assert "git-upload-pack" not in got.headers.get("Content-Type", ""), url
    assert clients["olga"].head(f"{base}/").status_code == 200
    assert "Commit History" in clients["olga"].get(f"{base}/HEAD").text  # a revision, not git's HEAD file


def test_the_bare_history_url_gets_its_slash(clients):
    got = clients["olga"].get(f"/{PRIVATE}/-/history?page=1")
    assert (got.status_code, got.headers["Location"]) == (303, f"/{PRIVATE}/-/history/?page=1")


# what the views show
def test_the_log_lists_commits_with_their_authors(core, clients):
    log = clients["vera"].get(f"/{PRIVATE}/-/history/tree/main/").text
    assert log.index("notes: second") < log.index("notes: first") < log.index("Create priv from template default")
    authors = [" ".join(found.split()) for found in re.findall(r"<span class=line2>\s*<span>([^<]*)</span>", log)]
    assert authors[:2] == ["eddie (commit: wikibot)", "olga (commit: wikibot)"]  # who wrote, who committed


def test_a_page_log_lists_only_the_commits_of_that_file_even_with_glob_characters(core, clients):
    core.commit(PUBLIC, [FileChange("b.md", b"# B\n")], message="b only", author=("olga", "olga@example.org"),
                actor="olga", source="mcp")
    odd = clients[None].get(f"/{PUBLIC}/-/history/tree/main/{quote(ODD)}")
    assert odd.status_code == 200
    assert "notes: second" in odd.text and "b only" not in odd.text  # "[ab]" is not a glob here
    notes = clients[None].get(f"/{PUBLIC}/-/history/tree/main/notes.md").text
    assert "notes: first" in notes and "notes: second" in notes and "Create pub" not in notes


def test_a_commit_shows_its_diff_and_the_raw_diff_applies(core, clients, tmp_path):
    sha = core.repo(PRIVATE).log(head(core, PRIVATE), path="notes.md", limit=1)[0].revision
    page = clients["eddie"].get(f"/{PRIVATE}/-/history/commit/{sha}/")
    assert "notes: second" in page.text and "second line" in page.text and "3 changed file(s)" in page.text
    assert "eddie authored" in page.text and "wikibot committed" in page.text
    added = re.search(r'<a href="#(\d+)-R-(\d+)">(\d+)</a></td>\s*<td class="add">\s*<span id="[^"]+">\s*'
                      r'<a name="[^"]+"></a>\s*<span class=line>second line', page.text)
    assert added and added.group(3) == "4" and added.group(2) == "3"  # line 4, as blame counts; klaus's anchor stays
    patch = clients["eddie"].get(f"/{PRIVATE}/-/history/commit/{sha}.patch")
    assert patch.headers["Content-Type"].startswith("text/plain") and "+second line" in patch.text
    clone = tmp_path / "clone"
    parent = core.repo(PRIVATE).first_parent(sha)
    assert parent
    subprocess.run(["git", "clone", "-q", str(core.repos.path(PRIVATE)), str(clone)], check=True)
    run_git("checkout", "-q", parent, cwd=clone)
    (tmp_path / "p.diff").write_bytes(patch.data)
    run_git("apply", "--check", str(tmp_path / "p.diff"), cwd=clone)


def test_blame_tree_and_raw(core, clients):
    sha = head(core, PRIVATE)
    blame = clients["vera"].get(f"/{PRIVATE}/-/history/blame/main/notes.md").text
    assert "second line" in blame and len(set(re.findall(r"/commit/([0-9a-f]{40})/", blame))) >= 2
    tree = clients["vera"].get(f"/{PRIVATE}/-/history/tree/main/odd").text
    assert "[ab] ü.md" in tree
    raw = clients["vera"].get(f"/{PRIVATE}/-/history/raw/{sha}/notes.md")
    assert raw.data == b"# Notes\n\nfirst line\nsecond line\n"
    assert raw.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert raw.headers["Content-Security-Policy"] == "sandbox" and raw.headers["X-Content-Type-Options"] == "nosniff"
    page = clients["vera"].get(f"/{PRIVATE}/-/history/blob/main/{quote(ODD)}")
    assert page.status_code == 200 and "Odd" in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_a_page_is_shown_as_source_and_files_never_run_as_pages(core, clients):
    core.commit(PUBLIC, [FileChange("evil.md", b"# Evil\n\n<script>alert(1)</script>\n"),
                         FileChange("evil/x.html", b"<script>alert(2)</script>"),
                         FileChange("evil/x.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>1</script></svg>'),
                         FileChange("evil/x.png", b"\x89PNG\r\n\x1a\n" + bytes(64)),
                         FileChange("README.md", b"<script>alert(3)</script>\n")],
                message="<script>alert(4)</script>", author=("<b>olga</b>", "olga@example.org"), actor="olga",
                source="mcp")
    for url in ("/blob/main/evil.md", "/blame/main/evil.md", "/", "/tree/main/", f"/commit/{head(core, PUBLIC)}/"):
        text = clients[None].get(f"/{PUBLIC}/-/history{url}").text
        assert "<script>alert" not in text and "<b>olga" not in text, url
    types = {name: clients[None].get(f"/{PUBLIC}/-/history/raw/main/evil/{name}").headers["Content-Type"]
             for name in ("x.html", "x.svg", "x.png")}
    assert types == {"x.html": "text/plain; charset=utf-8", "x.svg": "application/octet-stream",
                     "x.png": "image/png"}


def test_branch_tag_and_file_names_with_html_in_them_stay_text(core, clients):
    path = core.repos.path(PUBLIC)

    def git(*args: str, stdin: str = "") -> str:
        return subprocess.run(["git", "-C", str(path), *args], input=stdin, capture_output=True, text=True,
                              check=True).stdout.strip()

    blob = git("hash-object", "-w", "--stdin", stdin="x\n")
    tree = git("mktree", stdin=f"100644 blob {blob}\tq<img src=x onerror=alert(1)>'.md\n")
    commit = run_git("commit-tree", tree, "-m", "html names", cwd=path).stdout.strip()
    refs = ['refs/heads/x"><img/src=x/onerror=alert(2)>', "refs/tags/<b>t</b>"]  # a ref name has no spaces
    try:
        for ref in refs:
            git("update-ref", ref, commit)
        for url in ("/", "/tree/main/", f"/tree/{commit}/", f"/commit/{commit}/",
                    f"/blob/{commit}/" + quote("q<img src=x onerror=alert(1)>'.md")):
            got = clients[None].get(f"/{PUBLIC}/-/history{url}")
            assert got.status_code == 200 and "<img" not in got.text and "<b>t" not in got.text, url
        log = clients[None].get(f"/{PUBLIC}/-/history/tree/{commit}/").text
        assert "x&#34;&gt;&lt;img/src=x/onerror=alert(2)&gt;" in log and "&lt;b&gt;t&lt;/b&gt;" in log  # as text
        assert "q&lt;img src=x onerror=alert(1)&gt;&#39;.md" in log
    finally:
        for ref in refs:
            git("update-ref", "-d", ref)


def test_big_files_are_listed_not_diffed_and_raw_files_are_capped(core, clients, monkeypatch):
    big = b"".join(b"line %d of a long page\n" % i for i in range(14_000))  # ~300 KB
    many = [FileChange(f"bulk/{i}.md", bytes([65 + i]) * 200_000 + b"\n") for i in range(12)]  # 2.4 MB in all
    sha = core.commit(PUBLIC, [FileChange("big.md", big), *many], message="big", author=("olga", "o@example.org"),
                      actor="olga", source="mcp")
    page = clients["olga"].get(f"/{PUBLIC}/-/history/commit/{sha}/").text
    assert "13 changed file(s)" in page
    assert page.count("Diff not shown: the file is over 256 KB") == 1
    assert page.count("Diff not shown: this commit changes more than 2 MB") >= 1
    patch = clients["olga"].get(f"/{PUBLIC}/-/history/commit/{sha}.diff").text
    assert "# big.md: Diff not shown: the file is over 256 KB" in patch and len(patch) < 3_000_000
    monkeypatch.setattr(history, "RAW_LIMIT", 100_000)
    refused = clients["olga"].get(f"/{PUBLIC}/-/history/raw/main/big.md")
    assert refused.status_code == 403 and "Clone the wiki with git" in refused.text
    assert clients["olga"].get(f"/{PUBLIC}/-/history/raw/main/notes.md").status_code == 200


def test_the_views_of_a_big_file_read_no_more_of_it_than_they_show(core, clients, monkeypatch):
    big = b"".join(b"line %d of a big page\n" % i for i in range(200_000))  # 4.5 MB
    core.commit(PUBLIC, [FileChange("huge.md", big)], message="huge", author=("olga", "o@example.org"), actor="olga",
                source="mcp")
    read = []
    lookup = history.WikiRepo.__getitem__

    def counted(repo, key):
        found = lookup(repo, key)
        read.append(found.raw_length() if found.type_name == b"blob" else 0)
        return found

    monkeypatch.setattr(history.WikiRepo, "__getitem__", counted)
    base = f"/{PUBLIC}/-/history"
    assert "Large file" in clients[None].get(f"{base}/blob/main/huge.md").text
    assert "line 1 of" not in clients[None].get(f"{base}/blame/main/huge.md").text
    assert "huge" in clients[None].get(f"{base}/tree/main/huge.md").text
    assert read and max(read) <= history.VIEW_LIMIT  # klaus read the file whole for each view
    assert len(clients[None].get(f"{base}/raw/main/huge.md").data) == len(big)


def test_a_blame_that_takes_too_long_says_so(clients, monkeypatch):
    monkeypatch.setattr(history, "BLAME_SECONDS", 0.0)  # git cannot start in no time
    got = clients["vera"].get(f"/{PRIVATE}/-/history/blame/main/notes.md")
    assert got.status_code == 503 and "The blame of notes.md takes over 0 seconds" in got.text
    assert "Traceback" not in got.text


def test_a_commit_page_shows_diffs_up_to_a_number_of_lines(core, clients):
    short = b"".join(b"%d\n" % i for i in range(history.DIFF_LINES * 3 // 4))  # 7.5 K lines, 30 KB: in the byte budget
    sha = core.commit(PUBLIC, [FileChange("lines/1.md", short), FileChange("lines/2.md", short),
                               FileChange("lines/3.md", b"three\n")], message="lines", author=("olga", "o@example.org"),
                      actor="olga", source="mcp")
    page = clients["olga"].get(f"/{PUBLIC}/-/history/commit/{sha}/").text
    files = {re.search(r"lines/\d\.md", block).group(0): block for block in page.split("<div class=file>")[1:]}
    assert "Diff not shown" not in files["lines/1.md"]
    assert "Diff not shown: the diffs of this commit are over 10,000 lines" in files["lines/2.md"]
    assert ">three" in files["lines/3.md"]  # the file after it still fits
    assert page.count("<tr>") < history.DIFF_LINES + 100 and "3 changed file(s)" in page


def test_a_commit_page_lists_files_up_to_a_number_and_counts_the_rest(core, clients, monkeypatch):
    monkeypatch.setattr(history, "MAX_FILES", 20)
    sha = core.commit(PUBLIC, [FileChange(f"many/{i:02}.md", b"# %d\n" % i) for i in range(23)], message="many",
                      author=("olga", "o@example.org"), actor="olga", source="mcp")
    page = clients["olga"].get(f"/{PUBLIC}/-/history/commit/{sha}/").text
    assert "23 changed file(s)" in page and page.count("<div class=file>") == 21
    assert "many/19.md" in page and "many/20.md" not in page
    assert "3 more changed file(s), not listed: a page lists\n      20." in page
    assert "many/22.md" in clients["olga"].get(f"/{PUBLIC}/-/history/commit/{sha}.diff").text


def test_the_files_of_a_commit_page_link_to_the_files(core, clients):
    sha = core.repo(PRIVATE).log(head(core, PRIVATE), path="notes.md", limit=1)[0].revision
    page = clients["vera"].get(f"/{PRIVATE}/-/history/commit/{sha}/").text
    links = re.findall(r'<a href="(/[^"]+/blob/[^"]+)">', page)
    files = ("notes.md", "a.md", ODD)
    assert sorted(links) == sorted(f"/{PRIVATE}/-/history/blob/{sha}/{quote(name)}" for name in files)
    for link in links:
        assert clients["vera"].get(link).status_code == 200, link


def test_log_pages_that_cannot_exist_are_not_found_and_cost_nothing(clients):
    log = f"/{PRIVATE}/-/history/tree/main/"
    for page in (history.MAX_PAGE + 1, 10 ** 14, 10 ** 30):  # klaus made a list of `page` numbers: no memory for it
        assert clients["vera"].get(f"{log}?page={page}").status_code == 404, page
    last = clients["vera"].get(f"{log}?page={history.MAX_PAGE}")
    assert last.status_code == 200 and f"?page={history.MAX_PAGE - 1}" in last.text and "notes: first" not in last.text
    for page in ("-5", "x", "0"):  # the first page
        assert "notes: first" in clients["vera"].get(f"{log}?page={page}").text, page
    nine = clients["vera"].get(f"{log}?page=9").text
    assert sorted(set(re.findall(r"\?page=(\d+)", nine)), key=int) == ["0", "1", "2", "6", "7", "8"]


def test_a_long_path_of_short_segments_costs_a_few_ref_lookups(clients, monkeypatch):
    looked_up = []
    lookup = history.WikiRepo.__getitem__
    monkeypatch.setattr(history.WikiRepo, "__getitem__",
                        lambda repo, key: looked_up.append(len(key)) or lookup(repo, key))
    for path in ("/commit/" + "a/" * 1500, "/tree/main/" + "a/" * 1500, "/blob/" + "a/" * 1500 + "x.md"):
        looked_up.clear()
        assert clients["olga"].get(f"/{PRIVATE}/-/history{path}").status_code == 404
        assert sum(looked_up) < 100_000, path  # klaus looks up each prefix thrice: 7 million characters checked


@pytest.mark.parametrize("path", [
    "/blob/main/../../../../etc/passwd", "/raw/main/%2e%2e/%2e%2e/config", "/raw/main/.git/config",
    "/tree/..%2f..%2f..%2fetc/", "/commit/refs%2fheads%2f..%2f..%2fconfig/", "/blob/main/notes.md%00.png",
    "/raw/" + "x/" * 500 + "notes.md", "/commit/0123456789abcdef0123456789abcdef01234567/", "/blob/nobranch/notes.md",
    "/raw/main/odd", "/blame/main/odd", "/blob/main/", "/commit/HEAD~1/", "/commit/main/nothing.md/",
    "/commit/main/nothing.md.diff",
])
def test_odd_and_hostile_paths_are_not_found(clients, path):
    got = clients["olga"].get(f"/{PRIVATE}/-/history{path}")
    assert got.status_code == 404, got.text[:300]


def test_ids_and_tags_of_things_other_than_commits_are_not_found(core, clients):
    path = core.repos.path(PRIVATE)
    blob = run_git("rev-parse", "HEAD:notes.md", cwd=path).stdout.strip()
    tree = run_git("rev-parse", "HEAD^{tree}", cwd=path).stdout.strip()
    run_git("tag", "-f", "a-blob", blob, cwd=path)
    for url in (f"/commit/{blob}/", f"/tree/{blob}/", f"/blob/{tree}/notes.md", f"/raw/{blob}/notes.md",
                "/tree/a-blob/", "/commit/a-blob/", f"/commit/{blob}.diff"):
        assert clients["olga"].get(f"/{PRIVATE}/-/history{url}").status_code == 404, url
    run_git("tag", "-f", "-a", "-m", "a release", "v1", "HEAD", cwd=path)
    log = clients["olga"].get(f"/{PRIVATE}/-/history/tree/main/")  # the tag of a blob breaks no page
    assert log.status_code == 200
    assert "/-/history/tree/v1/" in log.text and "a-blob" not in log.text
    assert clients["olga"].get(f"/{PRIVATE}/-/history/tree/v1/notes.md").status_code == 200


def test_odd_names_work(core, clients):
    for url in (f"/tree/main/{quote(ODD)}", f"/blob/main/{quote(ODD)}", f"/blame/main/{quote(ODD)}",
                f"/raw/main/{quote(ODD)}", "/tree/HEAD/notes.md", f"/tree/{head(core, PRIVATE)}/odd/",
                "/commit/main/notes.md/", "/commit/main/odd.diff"):
        assert clients["olga"].get(f"/{PRIVATE}/-/history{url}").status_code == 200, url


def test_main_is_the_default_branch_and_other_branches_are_browsable(core, clients):
    path = core.repos.path(PUBLIC)
    subprocess.run(["git", "-C", str(path), "branch", "-f", "master", f"{head(core, PUBLIC)}~2"], check=True)
    index = clients[None].get(f"/{PUBLIC}/-/history/").text
    assert "@<a href=\"/olga/pub/-/history/main\">main</a>" in index
    assert clients[None].get(f"/{PUBLIC}/-/history/tree/master/").status_code == 200


# the web wiki and the history link to each other
def test_a_wiki_page_links_to_its_history_and_the_history_back_to_it(core, clients):
    page = clients["vera"].get(f"/{PRIVATE}/Notes")
    link = re.search(r'href="([^"]+)"[^>]*id="wikibot-history"', page.text)
    assert link and link.group(1) == f"/{PRIVATE}/-/history/tree/main/notes.md"
    assert 'Compare revisions' in page.text  # Otterwiki's own history page stays
    log = clients["vera"].get(link.group(1))
    assert "notes: second" in log.text
    back = re.search(r'href="([^"]+)" class=wikibot-page', log.text)
    assert back and back.group(1) == f"/{PRIVATE}/notes"
    assert "second line" in clients["vera"].get(back.group(1)).text
    wiki = re.search(r'href="([^"]+)" id=wikibot-wiki', log.text)
    assert wiki and wiki.group(1) == f"/{PRIVATE}/"
    sha = head(core, PRIVATE)
    old = clients["vera"].get(f"/{PRIVATE}/-/history/blob/{sha}/notes.md").text
    assert f'href="/{PRIVATE}/notes/view/{sha}" class=wikibot-page' in old
    assert clients["vera"].get(f"/{PRIVATE}/notes/view/{sha}").status_code == 200
    assert "class=wikibot-page" not in clients["vera"].get(f"/{PRIVATE}/-/history/").text  # no page to go back to


def test_the_history_has_the_look_of_the_platform(core, clients):
    sha = head(core, PUBLIC)
    for url in ("/", "/tree/main/notes.md", f"/commit/{sha}/", "/blob/main/notes.md", "/blame/main/notes.md"):
        page = clients[None].get(f"/{PUBLIC}/-/history{url}")
        sheets = re.findall(r"<link rel=stylesheet href=\"?([^\" >]+)", page.text)
        assert sheets[0] == "/-/static/wikibot.css" and sheets[-1].endswith("/klaus.css"), url  # klaus's rules win
        assert '<a class="brand" href="/-/">wikibot</a>' in page.text, url
    css = clients[None].get("/-/static/wikibot.css")
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")


def test_the_link_of_a_page_with_an_odd_name(core, clients):
    core.commit(PRIVATE, [FileChange("sub/road map.md", b"# Road Map\n")], message="road map",
                author=("olga", "olga@example.org"), actor="olga", source="mcp")
    page = clients["olga"].get(f"/{PRIVATE}/Sub/Road Map")
    link = re.search(r'href="([^"]+)"[^>]*id="wikibot-history"', page.text)
    assert link and link.group(1) == f"/{PRIVATE}/-/history/tree/main/sub/road%20map.md"
    log = clients["olga"].get(link.group(1))
    assert "road map" in log.text
    back = re.search(r'href="([^"]+)" class=wikibot-page', log.text)
    assert back and clients["olga"].get(back.group(1)).status_code == 200


# the platform's wikis and klaus's repositories
def test_a_wiki_made_again_under_its_name_shows_its_own_history(core, clients):
    name = WikiName("olga", "again")
    create_wiki(core, name, template="default", public=True)
    core.commit(name, [FileChange("old.md", b"# Old\n")], message="the commit of the old wiki",
                author=("olga", "olga@example.org"), actor="olga", source="mcp")
    assert "the commit of the old wiki" in clients[None].get(f"/{name}/-/history/").text
    core.delete_wiki(name)
    assert clients[None].get(f"/{name}/-/history/").status_code == 303  # gone: like any private wiki
    create_wiki(core, name, template="default", public=True)
    log = clients[None].get(f"/{name}/-/history/").text
    assert "the commit of the old wiki" not in log and "Create again from template default" in log


def test_a_wiki_whose_repository_is_not_there_is_not_found(core, clients, tmp_path):
    name = WikiName("olga", "norepo")
    create_wiki(core, name, template="default")
    core.repos.path(name).rename(tmp_path / "away")  # as while it is made or deleted
    assert (clients["olga"].get(f"/{name}/-/history/").status_code, clients["olga"].get(f"/{name}/-/history/").text) \
        == (404, f"wiki {name} not found\n")


def test_repositories_are_kept_open_up_to_a_limit_and_closed_when_no_request_uses_them(core, app):
    webui = app.table[-1].app
    served = history.History(core, webui.sessions, max_open=2)
    client = Client(served)
    wikis = [create_wiki(core, WikiName("olga", f"lru{n}"), template="default", public=True)[0] for n in range(3)]
    for wiki in wikis:
        core.repos.pack(wiki.name, objects=True)  # a pack is what an open repository holds open

    def is_open(repo: history.WikiRepo) -> bool:
        return bool(repo.object_store._pack_cache)  # dulwich's close() closes and drops its packs

    assert client.get(f"/{wikis[0].name}/-/history/").status_code == 200
    first = served.repos.take(wikis[0], lambda: pytest.fail("the open repository was not reused"))
    for wiki in wikis[1:]:  # two more wikis: the first is evicted while the request above still holds it
        assert client.get(f"/{wiki.name}/-/history/").status_code == 200
    assert [key[0] for key in served.repos._open] == [wikis[1].name, wikis[2].name]
    assert is_open(first.repo)
    served.repos.give_back(first)
    assert not is_open(first.repo)
    assert client.get(f"/{wikis[0].name}/-/history/").status_code == 200  # opened again when asked for


def test_klaus_is_imported_only_when_the_history_is_first_used():
    code = "import sys, wikibot.app, wikibot.webui; assert 'klaus' not in sys.modules, 'klaus imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# end to end: `wikibot serve`, git push, a web save, an MCP write
def test_the_history_of_a_served_wiki_shows_pushes_web_saves_and_mcp_writes(server: Server, make_user, make_wiki,
                                                                              tmp_path: Path):
    owner = make_user()
    wiki = make_wiki(owner, template="default")
    clone = tmp_path / "clone"
    run_git("clone", "-q", server.clone_url(wiki, owner.token), str(clone))
    (clone / "pushed.md").write_text("# Pushed\n\nfrom a git push\n")
    run_git("add", "pushed.md", cwd=clone)
    run_git("commit", "-q", "--author", f"Pusher {owner.name} <{owner.name}@push.example.org>", "-m", "a pushed page",
            cwd=clone)
    pushed = run_git("rev-parse", "HEAD", cwd=clone).stdout.strip()
    run_git("push", "-q", "origin", "main", cwd=clone)

    web = requests.Session()
    form = web.get(f"{server.url}/-/login")
    signed = web.post(f"{server.url}/-/login", data={"username": owner.name, "password": PASSWORD,
                                                     "csrf_token": csrf(form.text)}, allow_redirects=False)
    assert signed.status_code == 303, signed.text
    editor = web.get(f"{server.url}/{wiki}/Pushed/edit")
    saved = web.post(f"{server.url}/{wiki}/Pushed/save", allow_redirects=False,
                     data={"csrf_token": csrf(editor.text), "wikibot_base": field(editor.text, "wikibot_base"),
                           "content": "# Pushed\n\nfrom a git push\n\nand a web save\n", "commit": "a web save"})
    assert saved.status_code == 302, saved.text[:500]
    asyncio.run(_mcp_write(server, wiki, owner.token))

    log = web.get(f"{server.url}/{wiki}/-/history/tree/main/pushed.md")
    assert log.status_code == 200
    text = " ".join(log.text.split())
    assert "[mcp] an agent line" in text and "a web save" in text and "a pushed page" in text
    assert f"Pusher {owner.name} (commit: Tester)" in text  # the push: its commit's author and committer, as made
    assert f"{owner.name} (commit: wikibot)" in text  # the web save and the MCP write: the account
    commit = web.get(f"{server.url}/{wiki}/-/history/commit/{pushed}/")
    assert "from a git push" in commit.text and f"Pusher {owner.name}" in commit.text
    page = web.get(f"{server.url}/{wiki}/Pushed")
    assert f'href="/{wiki}/-/history/tree/main/pushed.md"' in page.text

    anonymous = requests.get(f"{server.url}/{wiki}/-/history/", allow_redirects=False)
    assert (anonymous.status_code, anonymous.headers["Location"]) == (303, f"/-/login?next=/{wiki}/-/history/")
    refused = run_git("clone", "-q", f"http://x:{owner.token}@127.0.0.1:{server.port}/{wiki}/-/history/",
                      str(tmp_path / "nope"), check=False)
    assert refused.returncode != 0  # klaus's smart HTTP is off


async def _mcp_write(server: Server, wiki: WikiName, token: str) -> None:
    async with McpClient(StreamableHttpTransport(f"{server.url}/mcp/{wiki}", auth=token)) as mcp:
        read = (await mcp.call_tool("read_page", {"path": "Pushed"})).structured_content
        wrote = await mcp.call_tool("write_page", {"path": "Pushed", "content": read["content"] + "\nan agent line\n",
                                                   "message": "an agent line", "base_revision": read["revision"]})
        assert not wrote.is_error, wrote.content
