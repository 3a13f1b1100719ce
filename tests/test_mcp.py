"""MCP end to end: fastmcp's real Client over streamable HTTP against `wikibot serve` (gunicorn)."""
from __future__ import annotations

import asyncio
import base64
import threading

import pytest
import requests
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from mcp.shared.exceptions import MCPError as McpError

from wikibot.gitd.names import WikiName
from wikibot.testing.servers import Server, commit_files, run_git, wait_until

TOOLS = {"read_page", "write_page", "edit_page", "delete_page", "rename_page", "list_pages", "search",
         "history", "diff", "recent_changes", "links", "list_attachments", "read_attachment",
         "upload_attachment", "delete_attachment"}


class Mcp:
    """A connected MCP client driven from synchronous tests (one event loop per client)."""

    def __init__(self, server: Server, wiki: WikiName, token: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = Client(StreamableHttpTransport(f"{server.url}/mcp/{wiki}", auth=token))
        self.loop.run_until_complete(self.client.__aenter__())

    def call(self, tool: str, **arguments):
        return self.loop.run_until_complete(self.client.call_tool(tool, arguments, raise_on_error=False))

    def ok(self, tool: str, **arguments) -> dict:
        result = self.call(tool, **arguments)
        assert not result.is_error, result.content[0].text
        return result.structured_content

    def error(self, tool: str, **arguments) -> str:
        result = self.call(tool, **arguments)
        assert result.is_error, result.structured_content
        return result.content[0].text

    def close(self) -> None:
        self.loop.run_until_complete(self.client.__aexit__(None, None, None))
        self.loop.close()


@pytest.fixture
def connect(server):
    clients: list[Mcp] = []

    def make(wiki: WikiName, token: str) -> Mcp:
        clients.append(Mcp(server, wiki, token))
        return clients[-1]
    yield make
    for client in clients:
        client.close()


@pytest.fixture
def wiki(make_user, make_wiki):
    owner = make_user()
    return owner, make_wiki(owner, template="default")  # the tools work on the starter pages


def test_tools_are_listed_with_annotations(connect, wiki):
    owner, name = wiki
    mcp = connect(name, owner.token)
    tools = {t.name: t for t in mcp.loop.run_until_complete(mcp.client.list_tools())}
    assert set(tools) == TOOLS
    assert tools["read_page"].annotations.read_only_hint is True
    assert tools["delete_page"].annotations.destructive_hint is True
    assert tools["edit_page"].annotations.read_only_hint is False


def test_base_revision_must_be_a_commit_id_not_head(connect, wiki):
    owner, name = wiki
    mcp = connect(name, owner.token)
    rev = mcp.ok("write_page", path="P", content="one\n")["revision"]
    mcp.ok("write_page", path="P", content="two\n", base_revision=rev)
    for moving in ("HEAD", "HEAD~1", "main"):
        assert "commit id" in mcp.error("write_page", path="P", content="blind\n", base_revision=moving)
        assert "commit id" in mcp.error("edit_page", path="P", base_revision=moving,
                                        edits=[{"old": "two", "new": "x"}])
    assert "conflict" in mcp.error("write_page", path="P", content="stale\n", base_revision=rev)
    assert mcp.ok("read_page", path="P", revision="HEAD~1")["content"] == "one\n"  # reads may use names


def test_edits_cannot_build_huge_pages_even_as_a_dry_run(server, connect, wiki):
    owner, name = wiki
    rev = connect(name, owner.token).ok("write_page", path="Bomb", content="x")["revision"]
    _, read_token = server.core.create_token(owner.name, scope="read")
    reader = connect(name, read_token)
    doubling = [{"old": "x", "new": "xx", "expected_count": 2 ** k} for k in range(40)]
    assert "over the" in reader.error("edit_page", path="Bomb", base_revision=rev, edits=doubling, dry_run=True)
    too_many = [{"old": "x", "new": "x"}] * 101
    assert reader.call("edit_page", path="Bomb", base_revision=rev, edits=too_many, dry_run=True).is_error


def test_write_read_edit_and_history(server, connect, wiki):
    owner, name = wiki
    mcp = connect(name, owner.token)
    created = mcp.ok("write_page", path="Projects/Road Map", content="# Road map\n\nShip v1 in March.\n\n"
                     "## Risks\n\nNone yet.\n", message="plan")
    assert created["file"] == "projects/road map.md" and created["created"]
    page = mcp.ok("read_page", path="projects/road map")
    assert page["revision"] == created["revision"] and page["title"] == "Road map"
    assert "Ship v1" in page["content"]
    assert [s["anchor"] for s in page["sections"]] == ["road-map", "risks"]
    assert mcp.ok("read_page", path="Projects/Road Map", section="risks")["content"].strip() == "## Risks\n\nNone yet."

    # updating a page needs the revision it was read at
    assert "base_revision" in mcp.error("write_page", path="Projects/Road Map", content="x")
    edited = mcp.ok("edit_page", path="Projects/Road Map", base_revision=page["revision"],
                    edits=[{"old": "March", "new": "April"}])
    assert "-Ship v1 in March." in edited["diff"] and "+Ship v1 in April." in edited["diff"]
    dry = mcp.ok("edit_page", path="Projects/Road Map", base_revision=edited["revision"], dry_run=True,
                 edits=[{"old": "None yet.", "new": "Supplier delay."}])
    assert not dry["committed"] and "+Supplier delay." in dry["diff"]

    # the commit is the token's user's, prefixed [mcp], and the worktree Otterwiki reads follows
    repo = server.core.repos.path(name)
    log = run_git("log", "-1", "--format=%an|%s", cwd=repo).stdout.strip()
    assert log == f"{owner.name}|[mcp] Edit Projects/Road Map"
    assert "April" in (repo / "projects" / "road map.md").read_text()

    history = mcp.ok("history", path="Projects/Road Map")
    assert [c["message"] for c in history["commits"]] == ["[mcp] Edit Projects/Road Map", "[mcp] plan"]
    diff = mcp.ok("diff", path="Projects/Road Map", from_revision=created["revision"])
    assert "+Ship v1 in April." in diff["diff"]
    recent = mcp.ok("recent_changes", since=created["revision"])
    assert [c["revision"] for c in recent["commits"]] == [edited["revision"]]
    assert recent["commits"][0]["files"] == [{"status": "M", "path": "projects/road map.md"}]


def test_edit_errors_name_the_count(connect, wiki):
    owner, name = wiki
    mcp = connect(name, owner.token)
    rev = mcp.ok("write_page", path="Twice", content="a b a\n")["revision"]
    assert "found 2 times" in mcp.error("edit_page", path="Twice", base_revision=rev, edits=[{"old": "a", "new": "c"}])
    assert "not found" in mcp.error("edit_page", path="Twice", base_revision=rev, edits=[{"old": "zzz", "new": "c"}])
    both = mcp.ok("edit_page", path="Twice", base_revision=rev, edits=[{"old": "a", "new": "c", "expected_count": 2}])
    assert "+c b c" in both["diff"]


def test_two_writers_from_one_base_revision_one_wins_one_conflicts(server, connect, wiki):
    owner, name = wiki
    first, second = connect(name, owner.token), connect(name, owner.token)
    base = first.ok("write_page", path="Shared", content="line one\n")["revision"]
    results: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def write(label: str, client: Mcp) -> None:
        barrier.wait()
        results[label] = client.call("write_page", path="Shared", content=f"written by {label}\n",
                                     base_revision=base)

    threads = [threading.Thread(target=write, args=(label, c)) for label, c in (("a", first), ("b", second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes = sorted(r.is_error for r in results.values())
    assert outcomes == [False, True]
    loser = next(r for r in results.values() if r.is_error).content[0].text
    winner = next(r for r in results.values() if not r.is_error).structured_content
    assert "conflict" in loser and winner["revision"] in loser and "@@" in loser
    repo = server.core.repos.path(name)
    assert run_git("rev-list", "--count", f"{base}..HEAD", cwd=repo).stdout.strip() == "1"
    # a write to another page from the same old base does not conflict
    assert first.ok("write_page", path="Other", content="independent\n")["created"]
    assert first.ok("edit_page", path="Shared", base_revision=winner["revision"],
                    edits=[{"old": "written", "new": "rewritten"}])["committed"]


def test_concurrent_writers_to_different_pages_all_land(server, connect, wiki):
    owner, name = wiki
    clients = [connect(name, owner.token) for _ in range(6)]
    failures: list[str] = []

    def create(i: int, client: Mcp) -> None:
        for j in range(3):
            result = client.call("write_page", path=f"Parallel/{i}-{j}", content=f"{i} {j}\n")
            if result.is_error:
                failures.append(result.content[0].text)

    threads = [threading.Thread(target=create, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(clients[0].ok("list_pages", prefix="Parallel")["pages"]) == 18


def test_read_only_tokens_and_viewers_cannot_write(server, connect, make_user, wiki):
    owner, name = wiki
    _, read_token = server.core.create_token(owner.name, scope="read")
    reader = connect(name, read_token)
    assert "read-only" in reader.error("write_page", path="Nope", content="x")
    assert reader.ok("list_pages")["pages"]
    viewer = make_user()
    server.core.grant(name, viewer.name, "viewer")
    as_viewer = connect(name, viewer.token)
    assert "read-only access" in as_viewer.error("write_page", path="Nope", content="x")
    assert as_viewer.ok("read_page", path="Home")["content"]


def test_tokens_for_other_wikis_and_strangers_are_refused(server, make_user, make_wiki, wiki):
    owner, name = wiki
    other = make_wiki(owner)
    _, limited = server.core.create_token(owner.name, scope="write", wikis=(other,))
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    url = f"{server.url}/mcp/{name}"
    assert requests.post(url, json=body, headers=headers, timeout=30).status_code == 401
    bad = requests.post(url, json=body, headers={**headers, "Authorization": "Bearer wbt_nope"}, timeout=30)
    assert bad.status_code == 401 and "Bearer" in bad.headers["WWW-Authenticate"]
    r = requests.post(url, json=body, headers={**headers, "Authorization": f"Bearer {limited}"}, timeout=30)
    assert r.status_code == 403 and str(other) in r.json()["error"]["message"]
    stranger = make_user()
    r = requests.post(url, json=body, headers={**headers, "Authorization": f"Bearer {stranger.token}"}, timeout=30)
    assert r.status_code == 404
    ok = requests.post(url, json=body, headers={**headers, "Authorization": f"Bearer {owner.token}"}, timeout=30)
    assert ok.status_code == 200 and ok.json()["result"]["serverInfo"]["name"] == "wikibot"
    with pytest.raises(McpError, match="limited to"):
        Mcp(server, name, limited)


def test_rename_moves_attachments_and_rewrites_backlinks(server, connect, wiki):
    owner, name = wiki
    mcp = connect(name, owner.token)
    mcp.ok("write_page", path="Old Name", content="# Old Name\n\n![d](/Old Name/d.png)\n")
    mcp.ok("upload_attachment", path="Old Name", name="d.png", content_base64=base64.b64encode(b"PNG").decode())
    mcp.ok("write_page", path="Old Name/Child", content="child\n")
    mcp.ok("write_page", path="Linker", content="See [[Old Name]], [[the page|Old Name#sec]] and "
           "[there](/Old%20Name).\n\n```\n[[Old Name]]\n```\n")
    assert [b["file"] for b in mcp.ok("links", path="Old Name")["backlinks"]] == ["linker.md"]
    renamed = mcp.ok("rename_page", path="Old Name", new_path="New Name")
    assert renamed["links_updated_in"] == ["linker.md"]
    repo = server.core.repos.path(name)
    files = set(run_git("ls-tree", "-r", "--name-only", "HEAD", cwd=repo).stdout.split("\n")) - {""}
    assert {"new name.md", "new name/d.png", "new name/child.md"} <= files
    assert not {f for f in files if f.startswith("old name")}
    linker = mcp.ok("read_page", path="Linker")["content"]
    assert "[[New Name]]" in linker and "[[the page|New Name#sec]]" in linker and "(/New%20Name)" in linker
    assert "```\n[[Old Name]]\n```" in linker
    assert [b["file"] for b in mcp.ok("links", path="New Name")["backlinks"]] == ["linker.md"]
    assert run_git("log", "-1", "--format=%s", cwd=repo).stdout.strip() == "[mcp] Rename Old Name to New Name"
    assert mcp.ok("list_attachments", path="New Name")["attachments"][0]["name"] == "d.png"


def test_attachments_round_trip_and_limits(connect, wiki):
    owner, name = wiki
    mcp = connect(name, owner.token)
    payload = bytes(range(256)) * 10
    up = mcp.ok("upload_attachment", path="Home", name="data.bin", content_base64=base64.b64encode(payload).decode())
    got = mcp.ok("read_attachment", path="Home", name="data.bin")
    assert base64.b64decode(got["content_base64"]) == payload and got["revision"] == up["revision"]
    assert mcp.ok("list_attachments", path="Home")["attachments"] == [
        {"name": "data.bin", "file": "home/data.bin", "bytes": len(payload), "media_type": "application/octet-stream"}]
    for bad in ("../x.png", "a/b.png", "x.md", "con.txt", ""):
        assert "attachment name" in mcp.error("upload_attachment", path="Home", name=bad, content_base64="eA==")
    assert "base64" in mcp.error("upload_attachment", path="Home", name="x.png", content_base64="***")
    too_big = base64.b64encode(b"x" * (3 * 2**20)).decode()
    with pytest.raises(McpError, match="attachments sent over MCP are limited to"):
        mcp.call("upload_attachment", path="Home", name="big.bin", content_base64=too_big)
    mcp.ok("delete_attachment", path="Home", name="data.bin")
    assert mcp.ok("list_attachments", path="Home")["attachments"] == []


def test_list_pages_paginates_and_delete_removes(connect, wiki):
    owner, name = wiki
    mcp = connect(name, owner.token)
    for i in range(5):
        mcp.ok("write_page", path=f"Notes/N{i}", content=f"note {i}\n")
    first = mcp.ok("list_pages", prefix="Notes", limit=3)
    assert [p["file"] for p in first["pages"]] == ["notes/n0.md", "notes/n1.md", "notes/n2.md"]
    rest = mcp.ok("list_pages", prefix="notes", limit=3, cursor=first["next_cursor"])
    assert [p["file"] for p in rest["pages"]] == ["notes/n3.md", "notes/n4.md"] and rest["next_cursor"] is None
    assert [p["path"] for p in rest["pages"]] == ["Notes/N3", "Notes/N4"]
    mcp.ok("delete_page", path="Notes/N0")
    assert "no page" in mcp.error("read_page", path="Notes/N0")
    assert "no page" in mcp.error("delete_page", path="Notes/N0")


def test_odd_names_work_and_traversal_is_refused(server, connect, wiki, tmp_path):
    owner, name = wiki
    mcp = connect(name, owner.token)
    # the files are Otterwiki's for these names (it drops ? | $ . ! # from page names)
    odd = {"C# tips": "c tips.md", "What? Why": "what why.md", "Café ünïcode": "café ünïcode.md",
           "100% done": "100% done.md", "spaced  out name": "spaced  out name.md", "v1.2 notes": "v12 notes.md"}
    for page, file in odd.items():
        assert mcp.ok("write_page", path=page, content=f"about {page}\n")["file"] == file
        assert mcp.ok("read_page", path=page)["content"] == f"about {page}\n", page
    # a file pushed with git under a literal name Otterwiki would not produce is still readable
    clone = tmp_path / "clone"
    run_git("clone", server.clone_url(name, owner.token), str(clone))
    commit_files(clone, {"c# notes.md": "pushed\n"})
    run_git("push", "-q", "origin", "HEAD:main", cwd=clone)
    assert mcp.ok("read_page", path="C# notes")["file"] == "c# notes.md"
    for bad in ("../escape", "a/../../b", "%2e%2e/x", "..%2fx", "a\\..\\b", "．．/x", ".git/config", "/", "x\x00y",
                "???"):
        text = mcp.error("write_page", path=bad, content="x")
        assert "refused" in text, (bad, text)
        assert "refused" in mcp.error("read_page", path=bad)
    repo = server.core.repos.path(name)
    assert not (repo.parent / "escape.md").exists()
    assert "refused" in mcp.error("rename_page", path="C# tips", new_path="../../out")


def test_a_page_written_via_mcp_is_found_by_search(server, connect, make_user, make_wiki):
    owner = make_user()
    name = make_wiki(owner, template="empty")
    mcp = connect(name, owner.token)
    written = mcp.ok("write_page", path="Runbooks/Failover",
                     content="# Database failover\n\nPromote the standby replica with pg_ctl promote.\n")

    def found():
        answer = mcp.ok("search", query="promote the standby replica", mode="keyword")
        return answer if answer["indexed_sha"] == written["revision"] else None
    answer = wait_until(found, timeout=120, what="the MCP write to be indexed")
    assert answer["hits"][0]["page"] == "runbooks/failover.md"
    assert answer["hits"][0]["anchor"] == "database-failover"
    semantic = mcp.ok("search", query="how do I switch to the backup database", mode="semantic")
    assert semantic["hits"][0]["page"] == "runbooks/failover.md"
    assert "bad search" in mcp.error("search", query="   ")


def test_writes_are_events_with_the_mcp_source(server, connect, wiki):
    from wikibot.testing.servers import events_of
    owner, name = wiki
    mcp = connect(name, owner.token)
    written = mcp.ok("write_page", path="Evented", content="x\n")
    event = wait_until(lambda: [e for e in events_of(server, name) if e.new_sha == written["revision"]],
                       what="the event")[0]
    assert event.source == "mcp" and event.actor == owner.name


def test_get_is_refused_and_unknown_paths_404(server, wiki):
    owner, name = wiki
    r = requests.get(f"{server.url}/mcp/{name}", headers={"Authorization": f"Bearer {owner.token}"}, timeout=30)
    assert r.status_code == 405
    assert requests.post(f"{server.url}/mcp/{name}/extra", timeout=30).status_code == 404


def test_history_survives_odd_commit_metadata_and_bad_arguments(server, connect, wiki, tmp_path):
    owner, name = wiki
    mcp = connect(name, owner.token)
    clone = tmp_path / "clone"
    run_git("clone", server.clone_url(name, owner.token), str(clone))
    (clone / "odd.md").write_bytes(b"caf\xe9 latin-1\nline two\n")
    run_git("add", "odd.md", cwd=clone)
    run_git("commit", "-qm", "subject \x1f with \x1e marks", "--author=Eve\x1e\x1fx <e@x>", cwd=clone)
    run_git("push", "-q", "origin", "HEAD:main", cwd=clone)
    history = mcp.ok("history", limit=5)
    assert history["commits"][0]["message"] == "subject \x1f with \x1e marks"
    assert history["commits"][0]["author"] == "Eve\x1e\x1fx"
    assert mcp.ok("recent_changes", limit=1)["commits"][0]["files"] == [{"status": "A", "path": "odd.md"}]
    # a non-UTF-8 page reads (with replacement characters) but is never rewritten through MCP
    page = mcp.ok("read_page", path="odd")
    assert "\ufffd" in page["content"]
    assert "not UTF-8" in mcp.error("edit_page", path="odd", base_revision=page["revision"],
                                    edits=[{"old": "line two", "new": "line 2"}])
    assert "neither a revision" in mcp.error("recent_changes", since="zzzz not a date")
    assert mcp.ok("recent_changes", since="2 days ago")["commits"]
    assert "bad cursor" in mcp.error("history", cursor="\u00b2")


def test_diff_of_a_last_line_without_newline_applies_with_git(server, connect, wiki, tmp_path):
    owner, name = wiki
    mcp = connect(name, owner.token)
    rev = mcp.ok("write_page", path="NoEol", content="a\nx")["revision"]
    diff = mcp.ok("edit_page", path="NoEol", base_revision=rev, edits=[{"old": "x", "new": "y"}], dry_run=True)["diff"]
    assert "\\ No newline at end of file" in diff
    clone = tmp_path / "clone"
    run_git("clone", server.clone_url(name, owner.token), str(clone))
    patch = tmp_path / "p.diff"
    patch.write_text(diff)
    run_git("apply", str(patch), cwd=clone)
    assert (clone / "noeol.md").read_text() == "a\ny"


def test_rename_edge_cases(server, connect, wiki):
    owner, name = wiki
    mcp = connect(name, owner.token)
    for page in ("A", "A/Y", "A/S/Y"):
        mcp.ok("write_page", path=page, content=f"{page}\n")
    mcp.ok("write_page", path="Linker", content="[[A/Y]] and [[A/S/Y]] and [[A]]\n")
    assert "own folder" in mcp.error("rename_page", path="A", new_path="A/S")
    assert "already exists" in mcp.error("rename_page", path="A", new_path="Linker")
    renamed = mcp.ok("rename_page", path="A", new_path="B")
    assert renamed["moved"] == [{"from": "a.md", "to": "b.md"}, {"from": "a/s/y.md", "to": "b/s/y.md"},
                                {"from": "a/y.md", "to": "b/y.md"}]
    assert mcp.ok("read_page", path="Linker")["content"] == "[[B/Y]] and [[B/S/Y]] and [[B]]\n"
    assert "folder" in mcp.error("upload_attachment", path="B", name="s", content_base64="eA==")
    assert "git control file" in mcp.error("upload_attachment", path="B", name=".gitattributes",
                                           content_base64="eA==")
