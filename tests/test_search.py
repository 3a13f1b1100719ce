"""Search end to end: pushes with the real git client, the worker's indexer, the JSON endpoint."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from wikibot.gitd.names import WikiName
from wikibot.indexer.storage import IndexCorrupt, IndexStore
from wikibot.testing.servers import WIKIBOT, Server, commit_files, run_git, wait_until

RUNBOOK = """# Database failover

## Promote the replica

When the primary database stops answering, promote the standby replica with
`pg_ctl promote` and point the application at it.
"""

CERTS = """# TLS certificates

## Renewal

Certificates are renewed by certbot every sixty days; the cron job runs at 03:00.
"""


def search(server: Server, wiki: WikiName, token: str | None, query: str, mode: str = "hybrid",
           expect: int = 200) -> dict:
    r = requests.get(f"{server.url}/api/wikis/{wiki}/search", params={"q": query, "mode": mode},
                     auth=("x", token) if token else None, timeout=60)
    assert r.status_code == expect, r.text
    return r.json()


def indexed(server: Server, wiki: WikiName, token: str) -> dict:
    """Wait until search answers from the wiki's current HEAD."""
    head = server.core.repos.head(wiki)

    def ready():
        r = requests.get(f"{server.url}/api/wikis/{wiki}/search", params={"q": "x"}, auth=("x", token), timeout=60)
        return r.status_code == 200 and r.json()["indexed_sha"] == head

    wait_until(ready, timeout=300, interval=0.2, what=f"{wiki} indexed at {head}", server=server)
    return {"head": head}


def pages(answer: dict) -> list[str]:
    return [hit["page"] for hit in answer["hits"]]


def push_files(repo: Path, files: dict[str, str | None], message: str = "edit") -> None:
    commit_files(repo, files, message)
    run_git("push", "-q", "origin", "main", cwd=repo)


def test_added_edited_renamed_and_deleted_pages_follow_in_results(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice)
    repo = tmp_path / "c"
    run_git("clone", server.clone_url(wiki, alice.token), str(repo))

    push_files(repo, {"runbooks/failover.md": RUNBOOK})
    indexed(server, wiki, alice.token)
    answer = search(server, wiki, alice.token, "what to do when the main database dies")
    top = answer["hits"][0]
    assert top["page"] == "runbooks/failover.md"
    assert top["anchor"] == "promote-the-replica" and top["section"] == "Database failover > Promote the replica"
    assert top["lines"][0] >= 3 and "pg_ctl promote" in top["snippet"]
    assert answer["indexed_sha"] == server.core.repos.head(wiki)

    push_files(repo, {"runbooks/failover.md": CERTS}, "now about certificates")
    indexed(server, wiki, alice.token)
    assert pages(search(server, wiki, alice.token, "certbot renewal", "keyword"))[0] == "runbooks/failover.md"
    assert "runbooks/failover.md" not in pages(search(server, wiki, alice.token, "pg_ctl promote", "keyword"))

    run_git("mv", "runbooks/failover.md", "runbooks/certificates.md", cwd=repo)
    run_git("commit", "-q", "-m", "rename", cwd=repo)
    run_git("push", "-q", "origin", "main", cwd=repo)
    indexed(server, wiki, alice.token)
    found = pages(search(server, wiki, alice.token, "certbot renewal"))
    assert "runbooks/certificates.md" in found and "runbooks/failover.md" not in found

    push_files(repo, {"runbooks/certificates.md": None}, "delete")
    indexed(server, wiki, alice.token)
    assert "runbooks/certificates.md" not in pages(search(server, wiki, alice.token, "certbot renewal"))


def test_a_multi_commit_push_is_searchable_as_a_whole(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice)
    repo = tmp_path / "c"
    run_git("clone", server.clone_url(wiki, alice.token), str(repo))
    topics = {"alpha.md": "The alpaca farm report.", "beta.md": "Bicycle repair notes.",
              "gamma.md": "Gardening schedule for tomatoes."}
    for name, text in topics.items():
        (repo / name).write_text(f"# {name}\n\n{text}\n")
        run_git("add", name, cwd=repo)
        run_git("commit", "-q", "-m", name, cwd=repo)
    run_git("push", "-q", "origin", "main", cwd=repo)
    indexed(server, wiki, alice.token)
    for name, text in topics.items():
        assert pages(search(server, wiki, alice.token, text.split()[1], "keyword"))[0] == name


def _replay(server: Server, wiki: WikiName) -> None:
    subprocess.run([*WIKIBOT, "events", "replay", str(wiki)], env={**os.environ, "WIKIBOT_DATA": str(server.data)},
                   check=True, capture_output=True)


def test_deleted_or_corrupt_index_is_rebuilt_with_the_same_answers(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice)
    repo = tmp_path / "c"
    run_git("clone", server.clone_url(wiki, alice.token), str(repo))
    push_files(repo, {"runbooks/failover.md": RUNBOOK, "ops/certs.md": CERTS})
    indexed(server, wiki, alice.token)
    query = "renewing certificates"
    before = search(server, wiki, alice.token, query)
    index_dir = server.data / "index" / str(wiki)

    shutil.rmtree(index_dir)
    # the copy in memory keeps answering while the reader's report makes the worker rebuild
    assert pages(search(server, wiki, alice.token, query)) == pages(before)
    wait_until(lambda: (index_dir / "CURRENT").exists(), timeout=300, what="the index rebuilt without any push",
               server=server)
    IndexStore(server.data / "index").load(wiki)
    assert pages(search(server, wiki, alice.token, query)) == pages(before)

    generation = (index_dir / "CURRENT").read_text().strip()
    (index_dir / generation / "vectors.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexCorrupt):  # detected by checksum, never loaded as garbage
        IndexStore(server.data / "index").load(wiki)
    _replay(server, wiki)  # the worker's next refresh finds it corrupt and rebuilds it
    wait_until(lambda: (index_dir / "CURRENT").read_text().strip() != generation, timeout=300,
               what="a rebuilt generation", server=server)
    IndexStore(server.data / "index").load(wiki)
    assert pages(search(server, wiki, alice.token, query)) == pages(before)


def test_two_wikis_never_see_each_others_pages(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    one, two = make_wiki(alice), make_wiki(alice)
    for wiki, text in ((one, "Zebra migration across the savanna."), (two, "Penguin colonies on the ice.")):
        repo = tmp_path / f"{wiki.owner}_{wiki.slug}"
        run_git("clone", server.clone_url(wiki, alice.token), str(repo))
        push_files(repo, {"animals.md": f"# Animals\n\n{text}\n"})
        indexed(server, wiki, alice.token)
    for wiki, other in ((one, "Penguin"), (two, "Zebra")):
        for mode in ("keyword", "semantic", "hybrid"):
            for hit in search(server, wiki, alice.token, other, mode)["hits"]:
                assert other not in hit["snippet"]


def test_a_deleted_and_recreated_wiki_starts_empty(server, make_user, tmp_path):
    from wikibot.bootstrap.create import create_wiki

    alice = make_user()
    name = WikiName(alice.name, "again")
    create_wiki(server.core, name)
    repo = tmp_path / "c"
    run_git("clone", server.clone_url(name, alice.token), str(repo))
    push_files(repo, {"secret.md": "# Xylophone\n\nThe xylophone plan for the old wiki.\n"})
    indexed(server, name, alice.token)
    assert pages(search(server, name, alice.token, "xylophone", "keyword")) == ["secret.md"]
    server.core.delete_wiki(name)
    create_wiki(server.core, name)
    assert search(server, name, alice.token, "xylophone", "keyword")["hits"] == []
    indexed(server, name, alice.token)
    assert search(server, name, alice.token, "xylophone", "keyword")["hits"] == []


def test_search_endpoint_checks_access_like_a_fetch(server, make_user, make_wiki):
    alice, mallory = make_user(), make_user()
    private, public = make_wiki(alice), make_wiki(alice, public=True)
    search(server, private, None, "notes", expect=401)
    search(server, private, mallory.token, "notes", expect=404)
    search(server, WikiName(alice.name, "nope"), alice.token, "notes", expect=404)
    search(server, public, None, "notes")
    assert "unknown mode" in search(server, private, alice.token, "notes", mode="fuzzy", expect=400)["error"]
    assert "empty query" in search(server, private, alice.token, "  ", expect=400)["error"]


def test_cli_search_and_index_status(server, make_user, make_wiki):
    alice = make_user()
    wiki = make_wiki(alice, template="default")  # searches the starter Agent_Guide
    indexed(server, wiki, alice.token)
    env = {**os.environ, "WIKIBOT_DATA": str(server.data)}
    out = subprocess.run([*WIKIBOT, "search", str(wiki), "resolve a conflict on a base revision", "--json"], env=env,
                         check=True, capture_output=True, text=True).stdout
    assert json.loads(out)["hits"][0]["page"] == "agent_guide.md"

    def row() -> list[str]:
        status = subprocess.run([*WIKIBOT, "index", "status"], env=env, check=True, capture_output=True,
                                text=True).stdout
        return [line.split() for line in status.splitlines() if line.startswith(f"{wiki} ")][0]
    # status reads the saved index; search may already answer from the copy the worker holds
    assert wait_until(lambda: row()[3] == "0", timeout=300, what="index status to show the wiki indexed",
                      server=server)
