"""Search freshness that one busy wiki cannot stall, and indexing whose memory does not grow with the wiki.

Real server, real git, the worker's real model. Orders are asserted, never wall-clock times.
"""
from __future__ import annotations

import re
from pathlib import Path

import requests

from wikibot.gitd.names import WikiName
from wikibot.testing.servers import Server, commit_files, run_git, start_server, stop_server, wait_until


def search(server: Server, wiki: WikiName, token: str, query: str, mode: str = "keyword") -> dict:
    r = requests.get(f"{server.url}/api/wikis/{wiki}/search", params={"q": query, "mode": mode},
                     auth=("x", token), timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def clone(server: Server, wiki: WikiName, token: str, tmp_path: Path) -> Path:
    repo = tmp_path / f"{wiki.owner}_{wiki.slug}"
    run_git("clone", "-q", server.clone_url(wiki, token), str(repo))
    return repo


def push(repo: Path, files: dict[str, str], message: str = "edit") -> str:
    head = commit_files(repo, files, message)
    run_git("push", "-q", "origin", "main", cwd=repo)
    return head


def test_a_small_change_is_searchable_before_a_big_import_on_another_wiki_ends(server, make_user, make_wiki,
                                                                              tmp_path):
    alice = make_user()
    big, small = make_wiki(alice), make_wiki(alice)
    big_repo, small_repo = clone(server, big, alice.token, tmp_path), clone(server, small, alice.token, tmp_path)
    pages = {f"topic_{i:04d}.md": f"# Topic {i}\n\nNotes on subject number {i}: " + " ".join(
        f"word{(i * 7 + j) % 997}" for j in range(60)) + "\n" for i in range(1000)}
    big_head = push(big_repo, pages, "import 1,000 pages")
    push(small_repo, {"lighthouse.md": "# Lighthouse\n\nThe keeper logs every passing zeppelin.\n"})

    found = wait_until(lambda: search(server, small, alice.token, "zeppelin")["hits"], timeout=600,
                       what="the one-page push to be searchable", server=server)
    assert found[0]["page"] == "lighthouse.md"
    assert search(server, big, alice.token, "subject")["indexed_sha"] != big_head, \
        "the 1,000-page import finished before the one-page change was searchable"
    wait_until(lambda: search(server, big, alice.token, "subject")["indexed_sha"] == big_head, timeout=900,
               what="the import to be indexed in the end", server=server)
    assert search(server, big, alice.token, "topic 999 subject number 999")["hits"]


def test_one_huge_page_does_not_hold_back_the_next_change(server, make_user, make_wiki, tmp_path):
    """30,000 lines of hex (2.9 MB, under the per-file limit): indexed up to its budget, and a
    one-line page pushed after it becomes searchable (it took 902 s when everything was embedded)."""
    alice = make_user()
    wiki = make_wiki(alice)
    repo = clone(server, wiki, alice.token, tmp_path)
    hex_lines = "".join(f"{(i * 2654435761) % 2**128:032x}{i * 40503:032x}{i:032x}\n" for i in range(30_000))
    assert 2_800_000 < len(hex_lines) < 10 * 2**20
    push(repo, {"dump.md": hex_lines}, "a big page")
    head = push(repo, {"note.md": "Remember the aardvark meeting.\n"}, "a small page")
    answer = wait_until(lambda: (a := search(server, wiki, alice.token, "aardvark"))["indexed_sha"] == head and a,
                        timeout=600, what="the small page after the big one to be searchable", server=server)
    assert [h["page"] for h in answer["hits"]] == ["note.md"]
    log = (server.data / "serve.log").read_text(errors="replace")
    assert re.search(rf"{re.escape(str(wiki))}: dump\.md is 2\.\d MB; only its first \d+ chunk\(s\) are indexed", log)


def _peak_rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))


def test_indexing_memory_does_not_grow_with_the_pages_read(tmp_path):
    """54 MB of pages (repeated text packs to kilobytes) on a premium wiki: the worker's peak
    memory grows by far less than the text (it read everything at once before: +488 MB for 200 MB)."""
    server = start_server(tmp_path / "data")
    try:
        pid_file = server.data / "queue" / "worker.pid"
        wait_until(pid_file.exists, what="the worker to start", server=server)
        pid = int(pid_file.read_text())
        server.core.add_user("maria", password="correct horse battery", tier="premium")
        _, token = server.core.create_token("maria", scope="write")
        from wikibot.bootstrap.create import create_wiki

        wiki = create_wiki(server.core, WikiName("maria", "notes"), template="empty")[0].name
        repo = clone(server, wiki, token, tmp_path)
        warm = push(repo, {"warm.md": "# Warm up\n\nThe model loads for this page.\n"})
        wait_until(lambda: search(server, wiki, token, "warm")["indexed_sha"] == warm, timeout=300,
                   what="the warm-up page indexed (model loaded)", server=server)
        before = _peak_rss_kb(pid)
        text = "All work and no play makes the wiki a dull place to be.\n" * 160_000  # 9 MB each
        head = push(repo, {f"big_{i}.md": text.replace("dull", f"dull{i}") for i in range(6)}, "54 MB of pages")
        wait_until(lambda: search(server, wiki, token, "dull place")["indexed_sha"] == head, timeout=600,
                   what="the big pages indexed", server=server)
        grown_mb = (_peak_rss_kb(pid) - before) / 1024
        assert grown_mb < 100, f"the worker's peak memory grew by {grown_mb:.0f} MB indexing 54 MB of pages"
    finally:
        stop_server(server)
