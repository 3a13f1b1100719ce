"""The push policy, driven by the real git CLI. A refused push must leave the repository
byte-identical: refs, objects on disk (so everything reachable from refs) and the worktree."""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from wikibot.gitd.names import WikiName
from wikibot.testing.servers import Server, commit_files, configured_server, run_git, unique

LIMITS = """
[tiers.free]
max_wikis = 3
max_pages = 8
max_collaborators = 3
max_repo_mb = 2
max_file_mb = 1
"""


@pytest.fixture(scope="module")
def limited(tmp_path_factory) -> Server:
    """A server whose free tier is tiny, so limits are reached with a few small pushes."""
    yield from configured_server(tmp_path_factory, "limited", LIMITS)


@pytest.fixture
def wiki_clone(limited, tmp_path):
    """A free-tier user's fresh wiki and a clone of it: (server, wiki name, clone path)."""
    from wikibot.bootstrap.create import create_wiki

    name = unique("p")
    limited.core.add_user(name, password="correct horse battery", tier="free")
    _, token = limited.core.create_token(name, scope="write")
    wiki, _ = create_wiki(limited.core, WikiName(name, "w"))
    repo = tmp_path / "clone"
    run_git("clone", limited.clone_url(wiki.name, token), str(repo))
    return limited, wiki.name, repo


def snapshot(server: Server, wiki: WikiName) -> dict[str, object]:
    repo = server.core.repos.path(wiki)
    files = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if path.is_file() and not rel.startswith(".git/logs") and rel != ".git/index" and not rel.endswith(".lock"):
            kept = (".git/objects", ".git/refs", ".git/packed-refs", ".git/HEAD")
            if rel.startswith(".git/") and not rel.startswith(kept):
                continue
            files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "refs": run_git("for-each-ref", "--format=%(refname) %(objectname)", cwd=repo).stdout,
        "reachable": sorted(run_git("rev-list", "--objects", "--all", cwd=repo).stdout.split("\n")),
        "status": run_git("status", "--porcelain", "--ignored", cwd=repo).stdout,
        "files": files,
    }


def push_refused(server: Server, wiki: WikiName, repo: Path, *refspecs: str, expect: str) -> str:
    before = snapshot(server, wiki)
    result = run_git("push", "origin", *refspecs, cwd=repo, check=False)
    assert result.returncode != 0, result.stderr
    assert expect in result.stderr, result.stderr
    assert snapshot(server, wiki) == before
    return result.stderr


def test_main_cannot_be_rewritten(wiki_clone):
    server, wiki, repo = wiki_clone
    commit_files(repo, {"a.md": "a"})
    run_git("push", "origin", "main", cwd=repo)
    run_git("reset", "-q", "--hard", "HEAD~1", cwd=repo)
    commit_files(repo, {"b.md": "b"})
    err = push_refused(server, wiki, repo, "+main", expect="non-fast-forward")
    assert "[remote rejected] main -> main (non-fast-forward: main cannot be rewritten" in err


def test_main_cannot_be_deleted(wiki_clone):
    server, wiki, repo = wiki_clone
    push_refused(server, wiki, repo, ":main", expect="main is the wiki and cannot be deleted")


def test_other_branches_may_be_rewritten_and_deleted(wiki_clone):
    server, wiki, repo = wiki_clone
    run_git("checkout", "-q", "-b", "draft", cwd=repo)
    commit_files(repo, {"d.md": "1"})
    run_git("push", "origin", "draft", cwd=repo)
    run_git("commit", "-q", "--amend", "-m", "rewritten", cwd=repo)
    run_git("push", "origin", "+draft", cwd=repo)
    run_git("push", "origin", ":draft", cwd=repo)


def test_symlink_anywhere_in_the_pushed_history_is_refused(wiki_clone):
    server, wiki, repo = wiki_clone
    os.symlink("/etc/passwd", repo / "passwd.md")
    run_git("add", "-A", cwd=repo)
    run_git("commit", "-q", "-m", "link", cwd=repo)
    run_git("rm", "-q", "passwd.md", cwd=repo)  # gone at the tip, still in the history
    commit_files(repo, {"ok.md": "fine"})
    push_refused(server, wiki, repo, "main", expect="symlinks are not allowed: passwd.md")


def test_submodule_is_refused(wiki_clone):
    server, wiki, repo = wiki_clone
    head = run_git("rev-parse", "HEAD", cwd=repo).stdout.strip()
    run_git("update-index", "--add", "--cacheinfo", f"160000,{head},vendor/lib", cwd=repo)
    run_git("commit", "-q", "-m", "submodule", cwd=repo)
    push_refused(server, wiki, repo, "main", expect="submodules are not allowed: vendor/lib")


@pytest.mark.parametrize("name,why", [
    ("CON.md", "reserved on Windows"),
    ("a:b.md", "invalid on common filesystems"),
    ("trailing.", "ending in a dot or space"),
    ("back\\slash.md", "invalid on common filesystems"),
    (".GIT", ".git"),  # git's own fsck (index-pack --strict) already refuses this one
    ("...", "ending in a dot or space"),
])
def test_unsafe_names_are_refused(wiki_clone, name, why):
    """Trees built with plumbing, since a normal checkout could not even hold some of these names."""
    server, wiki, repo = wiki_clone
    blob = run_git("hash-object", "-w", str(repo / "home.md"), cwd=repo).stdout.strip()
    tree = _mktree(repo, [("100644", "blob", blob, name), ("100644", "blob", blob, "home.md")])
    parent = run_git("rev-parse", "HEAD", cwd=repo).stdout.strip()
    new = run_git("commit-tree", tree, "-p", parent, "-m", "bad name", cwd=repo).stdout.strip()
    run_git("update-ref", "refs/heads/main", new, cwd=repo)
    push_refused(server, wiki, repo, "main", expect=why)


def _mktree(repo: Path, entries: list[tuple[str, str, str, str]]) -> str:
    import subprocess

    text = "".join(f"{mode} {kind} {sha}\t{name}\n" for mode, kind, sha, name in entries)
    proc = subprocess.run(["git", "mktree", "--missing"], cwd=repo, input=text, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_page_limit(wiki_clone):
    server, wiki, repo = wiki_clone  # the 4 starter pages are pages 1-4 of 8
    commit_files(repo, {f"p{i}.md": f"page {i}" for i in range(4)})
    run_git("push", "origin", "main", cwd=repo)
    commit_files(repo, {"p4.md": "one too many", "p5.md": "and another", "notes.txt": "not a page"})
    err = push_refused(server, wiki, repo, "main", expect="page limit 8 reached: push would make 10 pages")
    assert "[remote rejected] main -> main (page limit 8 reached" in err


def test_file_size_limit(wiki_clone):
    server, wiki, repo = wiki_clone
    commit_files(repo, {"big.bin": os.urandom(1536 * 1024)})
    push_refused(server, wiki, repo, "main", expect="file big.bin is 1.5 MB, over the 1 MB per-file limit")


def test_repository_size_limit(wiki_clone):
    server, wiki, repo = wiki_clone
    commit_files(repo, {f"f{i}.bin": os.urandom(800 * 1024) for i in range(2)})
    run_git("push", "origin", "main", cwd=repo)
    commit_files(repo, {"f2.bin": os.urandom(800 * 1024)})  # this pack alone is under the cap
    push_refused(server, wiki, repo, "main", expect="repository size limit 2 MB reached: push would make it 2.")


def test_files_on_main_count_uncompressed(wiki_clone):
    """Repeated text packs to almost nothing: 3.5 MB of pages in a pack of a few KB is still over 2 MB."""
    server, wiki, repo = wiki_clone
    commit_files(repo, {f"big{i}.md": "all work and no play\n" * 43_000 for i in range(4)})  # 0.9 MB each
    packed = subprocess.run(["git", "pack-objects", "--stdout", "--revs"], cwd=repo, input=b"main\n^origin/main\n",
                            capture_output=True, check=True).stdout
    assert len(packed) < 100_000, "the test needs a push whose pack is far under the limit"
    push_refused(server, wiki, repo, "main",
                 expect="repository size limit 2 MB reached: the files on main would take 3.5 MB on disk")


def test_huge_push_is_cut_off_while_streaming(wiki_clone):
    server, wiki, repo = wiki_clone
    for i in range(6):  # 6 MB over several commits: each file passes the per-file cap
        commit_files(repo, {f"part{i}.bin": os.urandom(900 * 1024)}, f"part {i}")
    push_refused(server, wiki, repo, "main", expect="push too large: over the 2 MB repository size limit")
    objects = server.core.repos.path(wiki) / ".git" / "objects"
    assert not list(objects.glob("incoming-*")), "the quarantine must be gone"


def test_tag_of_a_blob_is_refused(wiki_clone):
    server, wiki, repo = wiki_clone
    blob = run_git("hash-object", "-w", str(repo / "home.md"), cwd=repo).stdout.strip()
    run_git("tag", "blobtag", blob, cwd=repo)
    push_refused(server, wiki, repo, "blobtag", expect="only commits and tags of commits may be pushed")


def test_atomic_push_is_all_or_nothing(wiki_clone):
    server, wiki, repo = wiki_clone
    run_git("branch", "side", cwd=repo)
    os.symlink("x", repo / "link")
    run_git("add", "-A", cwd=repo)
    run_git("commit", "-q", "-m", "bad", cwd=repo)
    run_git("checkout", "-q", "side", cwd=repo)
    commit_files(repo, {"fine.md": "fine"})
    push_refused(server, wiki, repo, "--atomic", "main", "side", expect="atomic push failed")


def test_declared_oversize_body_is_refused_before_reading(wiki_clone):
    import base64
    import http.client

    server, wiki, repo = wiki_clone
    token = run_git("config", "remote.origin.url", cwd=repo).stdout.split(":")[2].split("@")[0]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("POST", f"/{wiki}.git/git-receive-pack")
    conn.putheader("Authorization", "Basic " + base64.b64encode(f"x:{token}".encode()).decode())
    conn.putheader("Content-Type", "application/x-git-receive-pack-request")
    conn.putheader("Content-Length", str(50 * 1024 * 1024))
    conn.endheaders()  # and never send the body: the answer must not wait for it
    resp = conn.getresponse()
    assert resp.status == 413
    assert b"over the 2 MB repository size limit" in resp.read()
    conn.close()


def test_mcp_writes_meet_the_same_limits(wiki_clone):
    """Page count and file size limits hold for MCP writes too, and a refused write changes nothing."""
    import base64

    from test_mcp import Mcp

    server, wiki, _ = wiki_clone
    _, token = server.core.create_token(wiki.owner, scope="write")
    mcp = Mcp(server, wiki, token)
    try:
        for i in range(4):  # the template's 4 starter pages + 4 = the limit of 8
            mcp.ok("write_page", path=f"P{i}", content="x\n")
        before = snapshot(server, wiki)
        assert "refused" in mcp.error("write_page", path="One Too Many", content="x\n")
        big = base64.b64encode(b"y" * (2**20 + 1)).decode()
        assert "refused" in mcp.error("upload_attachment", path="Home", name="big.bin", content_base64=big)
        assert snapshot(server, wiki) == before
        mcp.ok("write_page", path="P0", content="z" * 900_000, base_revision=mcp.ok("read_page", path="P0")["revision"])
        mcp.ok("write_page", path="P1", content="z" * 900_000, base_revision=mcp.ok("read_page", path="P1")["revision"])
        before = snapshot(server, wiki)
        error = mcp.error("write_page", path="P2", content="z" * 900_000,
                          base_revision=mcp.ok("read_page", path="P2")["revision"])
        assert "the files on main would take 2." in error and "MB on disk" in error, error
        assert snapshot(server, wiki) == before
    finally:
        mcp.close()
