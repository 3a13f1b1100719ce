"""What a hostile writer must not be able to do to a wiki, driven by the real git client against a
running server: paths the server cannot check out, attributes that make the worktree bigger than the
files, file and ref counts without end, ref names that leave folders behind or block main, and a tag
where a branch must be."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from wikibot.gitd.names import WikiName
from wikibot.hooks.post_receive import Publisher
from wikibot.testing.servers import (
    Server,
    commit_files,
    configured_server,
    events_of,
    run_git,
    unique,
    wait_until,
)

LIMITS = """
[tiers.free]
max_wikis = 5
max_pages = 2000
max_collaborators = 3
max_repo_mb = 2
max_file_mb = 1
"""
ATTRIBUTES = "* -text -ident -filter -working-tree-encoding -eol\n"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Server:
    """A server whose free tier holds 2 MB, so disk-use limits are reached with small pushes."""
    yield from configured_server(tmp_path_factory, "hardening", LIMITS)


class Wiki:
    """A free-tier user's new wiki (main unborn) on `server`, and what a test needs to push to it."""

    def __init__(self, server: Server, tmp: Path) -> None:
        from wikibot.bootstrap.create import create_wiki

        self.server, self.tmp = server, tmp
        self.owner = unique("h")
        server.core.add_user(self.owner, password="correct horse battery", tier="free")
        _, self.token = server.core.create_token(self.owner, scope="write")
        self.name = create_wiki(server.core, WikiName(self.owner, "w"), template="empty")[0].name
        self.repo = server.core.repos.path(self.name)

    @property
    def url(self) -> str:
        return self.server.clone_url(self.name, self.token)

    def clone(self, name: str = "clone") -> Path:
        path = self.tmp / name
        run_git("clone", "-q", self.url, str(path))
        return path

    def ref(self, ref: str) -> str | None:
        return run_git("rev-parse", "-q", "--verify", ref, cwd=self.repo, check=False).stdout.strip() or None

    def assert_worktree_is_head(self) -> None:
        assert run_git("status", "--porcelain", "--untracked-files=all", cwd=self.repo).stdout == ""


@pytest.fixture
def wiki(tiny, tmp_path) -> Wiki:
    return Wiki(tiny, tmp_path)


def git_input(repo: Path, *args: str, data: bytes) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, input=data, capture_output=True, check=True,
                          env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"})
    return proc.stdout.decode()


def commit_blobs(repo: Path, files: dict[str, bytes], message: str = "plumbing") -> str:
    """Commit `files` exactly as given, through plumbing: no checkout could hold some of these trees,
    and no attribute of the client's touches the bytes."""
    blobs = {content: git_input(repo, "hash-object", "-w", "--stdin", data=content).strip()
             for content in set(files.values())}
    git_input(repo, "update-index", "--add", "--index-info",
              data="".join(f"100644 {blobs[c]}\t{p}\n" for p, c in files.items()).encode())
    run_git("commit", "-q", "-m", message, cwd=repo)
    return run_git("rev-parse", "HEAD", cwd=repo).stdout.strip()


def push(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_git("push", "origin", *args, cwd=repo, check=False)


def assert_refused(result: subprocess.CompletedProcess[str], why: str) -> None:
    assert result.returncode != 0, result.stderr
    assert "[remote rejected]" in result.stderr and why in result.stderr, result.stderr


# 1. Paths the server's checkout could not create

def test_a_path_too_long_to_check_out_is_refused_and_later_pushes_still_sync(wiki):
    clone = wiki.clone()
    commit_files(clone, {"home.md": "# Home\n"}, "home")
    run_git("push", "-q", "origin", "main", cwd=clone)
    before = wiki.ref("refs/heads/main")
    deep = "/".join(["d" * 250] * 17) + "/p.md"  # every component fits a filesystem, the whole does not
    commit_blobs(clone, {deep: b"# Deep\n"}, "deep page")
    assert_refused(push(clone, "main"), "is 4271 bytes long, over the limit of 1024")
    assert wiki.ref("refs/heads/main") == before
    run_git("reset", "-q", "--hard", "origin/main", cwd=clone)
    commit_blobs(clone, {"/".join(["a"] * 32) + "/p.md": b"# Nested\n"}, "33 components")
    assert_refused(push(clone, "main"), "has 33 components, over the limit of 32")
    run_git("reset", "-q", "--hard", "origin/main", cwd=clone)
    commit_files(clone, {"later.md": "# Later\n"}, "later")
    run_git("push", "-q", "origin", "main", cwd=clone)
    assert (wiki.repo / "later.md").read_text() == "# Later\n"
    wiki.assert_worktree_is_head()


def test_platform_commits_meet_the_same_path_caps(wiki):
    from wikibot.gitd.commits import CommitRefused, FileChange

    with pytest.raises(CommitRefused, match="over the limit of 1024"):
        wiki.server.core.commit(wiki.name, [FileChange("/".join(["d" * 250] * 5) + ".md", b"x")],
                                message="deep", author=("a", "a@example.org"), actor=wiki.owner, source="mcp")
    assert wiki.ref("refs/heads/main") is None


BASE = "/".join(["a" * 200] * 5)  # 1004 bytes


@pytest.mark.parametrize("path, problem", [
    (BASE + "/" + "b" * 19, None),
    (BASE + "/" + "b" * 20, "is 1025 bytes long, over the limit of 1024"),
    ("/".join(["a"] * 31) + "/p.md", None),
    ("/".join(["a"] * 32) + "/p.md", "has 33 components, over the limit of 32"),
], ids=["1024 bytes", "1025 bytes", "32 components", "33 components"])
def test_path_caps(path, problem):
    from wikibot.gitd.names import path_problem

    assert path_problem(path.encode()) == problem


# 2. The worktree holds the blobs' bytes, whatever attributes the tree carries

EXPANDING = {
    ".gitattributes": b"* ident eol=crlf\n*.txt working-tree-encoding=UTF-32LE\n",
    "page.md": b"$Id$\n" * 60_000,  # 300 KB of blobs; ident and CRLF would make it 3 MB on disk
    "notes.txt": "h\u00e9llo\n".encode() * 1000,  # 4x once re-encoded to UTF-32
}


def assert_worktree_holds_the_blobs(wiki: Wiki) -> None:
    for path, content in EXPANDING.items():
        assert subprocess.run(["git", "cat-file", "blob", f"HEAD:{path}"], cwd=wiki.repo, capture_output=True,
                              check=True).stdout == content
        assert (wiki.repo / path).read_bytes() == content, f"{path} was converted on checkout"
    wiki.assert_worktree_is_head()


def test_checkout_ignores_the_attributes_a_push_brings(wiki):
    clone = wiki.clone()
    commit_blobs(clone, EXPANDING, "attributes that expand files")
    result = push(clone, "main")
    assert result.returncode == 0, result.stderr
    assert_worktree_holds_the_blobs(wiki)
    assert (wiki.repo / ".git" / "info" / "attributes").read_text() == ATTRIBUTES  # written at creation


def test_worker_start_repairs_the_attributes_override(wiki):
    """A repository from before the override (or whose override was removed) gets it back, and its
    files as the blobs hold them, when the worker starts (which runs `reconcile`)."""
    from wikibot.hooks.reconcile import reconcile

    clone = wiki.clone()
    commit_blobs(clone, EXPANDING, "attributes that expand files")
    assert push(clone, "main").returncode == 0
    (wiki.repo / ".git" / "info" / "attributes").unlink()
    (wiki.repo / ".git" / "index").unlink()
    run_git("reset", "-q", "--hard", "HEAD", cwd=wiki.repo)  # what checkouts made of them before
    assert (wiki.repo / "page.md").stat().st_size > 2 * len(EXPANDING["page.md"])
    reconcile(wiki.server.core, Publisher(wiki.server.data))
    assert (wiki.repo / ".git" / "info" / "attributes").read_text() == ATTRIBUTES
    assert_worktree_holds_the_blobs(wiki)


# 3. Files count as the disk they take

def test_empty_files_count_as_the_disk_blocks_they_take(wiki):
    clone = wiki.clone()
    commit_blobs(clone, {f"d{i // 100}/f{i}.txt": b"" for i in range(1000)}, "1000 empty files")
    assert_refused(push(clone, "main"), "the files on main would take 3.9 MB on disk")
    assert wiki.ref("refs/heads/main") is None
    run_git("update-ref", "-d", "refs/heads/main", cwd=clone)
    run_git("read-tree", "--empty", cwd=clone)
    commit_blobs(clone, {f"f{i}.txt": b"" for i in range(100)}, "100 empty files")  # 0.4 MB on disk
    result = push(clone, "main")
    assert result.returncode == 0, result.stderr


# 7. Refs are bounded

def test_a_wiki_holds_at_most_1000_branches_and_tags_and_loose_refs_get_packed(wiki):
    clone = wiki.clone()
    commit_files(clone, {"home.md": "# Home\n"}, "home")
    run_git("push", "-q", "origin", "main", cwd=clone)
    head = wiki.ref("refs/heads/main")
    # 997 tags made on the server (as if pushed before), so the test needs no 1000-ref pushes. The
    # repack consumer must be done with the push first: packing refs while they are written would
    # pack some and leave the rest, and the pushes below, too few, would leave them loose.
    queue = Publisher(wiki.server.data).queue
    pushed = events_of(wiki.server, wiki.name)[-1].id
    wait_until(lambda: queue.cursor("repack") >= pushed, what="the repack consumer to handle the push",
               server=wiki.server)
    git_input(wiki.repo, "update-ref", "--stdin", data="".join(
        f"create refs/tags/old/t{i} {head}\n" for i in range(997)).encode())
    tags = [f"HEAD:refs/tags/new/t{i}" for i in range(4)]
    assert_refused(push(clone, *tags), "a wiki holds at most 1000 branches and tags besides main: "
                                       "this push would make 1001")
    assert wiki.ref("refs/tags/new/t0") is None
    assert push(clone, *tags[:3]).returncode == 0  # 1000
    commit_files(clone, {"next.md": "# Next\n"}, "main still moves at the limit")
    assert push(clone, "main").returncode == 0
    assert_refused(push(clone, "HEAD:refs/heads/draft"), "this push would make 1001")
    assert push(clone, ":refs/tags/old/t0", "HEAD:refs/heads/draft").returncode == 0  # one out, one in
    refs = run_git("for-each-ref", "--format=%(refname)", cwd=wiki.repo).stdout.split()
    assert len(refs) == 1001 and "refs/heads/main" in refs
    # so many loose refs get packed by the repack consumer, and stay readable
    wait_until(lambda: not any(p.is_file() for p in (wiki.repo / ".git" / "refs" / "tags").rglob("*")),
               what="loose tags packed", server=wiki.server)
    assert run_git("for-each-ref", "--format=%(refname)", cwd=wiki.repo).stdout.split() == refs
    assert push(clone, ":refs/tags/old/t1").returncode == 0
    assert wiki.ref("refs/tags/old/t1") is None


def test_a_bad_tip_among_many_refuses_only_its_own_ref(wiki):
    clone = wiki.clone()
    commit_files(clone, {"home.md": "# Home\n"}, "home")
    run_git("push", "-q", "origin", "main", cwd=clone)
    for i in range(5):
        run_git("branch", f"b{i}", cwd=clone)
    run_git("checkout", "-q", "b2", cwd=clone)
    os.symlink("/etc/passwd", clone / "link.md")
    run_git("add", "-A", cwd=clone)
    run_git("commit", "-q", "-m", "link", cwd=clone)
    result = push(clone, *(f"b{i}" for i in range(5)))
    assert_refused(result, "symlinks are not allowed: link.md")
    assert [wiki.ref(f"refs/heads/b{i}") is not None for i in range(5)] == [True, True, False, True, True]


# 8. Ref names that leave folders behind, or would block main

def test_ref_names_too_long_are_refused_and_leave_no_folder(wiki):
    clone = wiki.clone()
    commit_files(clone, {"home.md": "# Home\n"}, "home")
    run_git("push", "-q", "origin", "main", cwd=clone)
    assert_refused(push(clone, "HEAD:refs/heads/x/" + "a" * 201), "over 200 bytes")
    assert_refused(push(clone, "HEAD:refs/heads/" + "/".join(["b" * 100] * 11)), "over the limit of 1024 bytes")
    assert sorted(p.name for p in (wiki.repo / ".git" / "refs" / "heads").iterdir()) == ["main"]
    assert push(clone, "HEAD:refs/heads/x/" + "a" * 200).returncode == 0


def test_refs_under_main_are_refused_so_main_can_be_born(wiki):
    """An editor cannot brick a wiki whose main is unborn by pushing refs/heads/main/<anything>."""
    editor = unique("e")
    wiki.server.core.add_user(editor, password="correct horse battery")
    wiki.server.core.grant(wiki.name, editor, "editor")
    _, etoken = wiki.server.core.create_token(editor, scope="write")
    evil = wiki.tmp / "evil"
    run_git("init", "-q", str(evil))
    commit_files(evil, {"x.md": "x"}, "x")
    url = wiki.server.clone_url(wiki.name, etoken)
    for ref in ("refs/heads/main/x", "refs/heads/main/x/" + "a" * 300):
        result = run_git("push", url, f"HEAD:{ref}", cwd=evil, check=False)
        assert_refused(result, "main is the wiki" if len(ref) < 100 else "over 200 bytes")
    assert list((wiki.repo / ".git" / "refs" / "heads").iterdir()) == []
    own = wiki.clone("own")
    commit_files(own, {"home.md": "# Home\n"}, "home")
    result = push(own, "HEAD:main")
    assert result.returncode == 0, result.stderr
    assert (wiki.repo / "home.md").read_text() == "# Home\n"


def test_empty_folders_in_the_way_of_a_ref_are_removed_after_it_fails_to_move(wiki):
    """Folders a crash left (here: where main must go) make the move fail once, then are gone."""
    (wiki.repo / ".git" / "refs" / "heads" / "main" / "x" / "y").mkdir(parents=True)
    own = wiki.clone()
    commit_files(own, {"home.md": "# Home\n"}, "home")
    assert_refused(push(own, "HEAD:main"), "failed to update ref on the server; try again")
    assert not (wiki.repo / ".git" / "refs" / "heads" / "main").exists()
    result = push(own, "HEAD:main")
    assert result.returncode == 0, result.stderr
    wiki.assert_worktree_is_head()


def test_removing_empty_ref_folders_never_removes_anything_else(tmp_path):
    from wikibot.gitd.refs import remove_empty_folders

    refs = tmp_path / "refs"
    (refs / "heads" / "a" / "b" / "c").mkdir(parents=True)
    (refs / "heads" / "a" / "keep").mkdir()
    (refs / "heads" / "a" / "keep" / "ref").write_text("x")
    (refs / "tags").mkdir()
    remove_empty_folders(refs, b"refs/heads/a/b/c/d")
    assert sorted(p.relative_to(refs).as_posix() for p in refs.rglob("*")) == [
        "heads", "heads/a", "heads/a/keep", "heads/a/keep/ref", "tags"]
    (refs / "heads" / "m" / "n").mkdir(parents=True)  # a would-be ref that is a tree of empty folders
    (refs / "heads" / "m" / "n.lock").write_text("")  # ... beside a lock: not empty, so kept
    remove_empty_folders(refs, b"refs/heads/m")
    assert (refs / "heads" / "m" / "n.lock").exists() and not (refs / "heads" / "m" / "n").exists()
    remove_empty_folders(refs, b"refs/heads/solo")
    assert (refs / "heads").is_dir() and (refs / "tags").is_dir()


# 9. Branches point at commits

def test_a_tag_object_cannot_be_pushed_to_a_branch(wiki):
    clone = wiki.clone()
    commit_files(clone, {"a.md": "# A\n"}, "a")
    run_git("push", "-q", "origin", "main", cwd=clone)
    before = wiki.ref("refs/heads/main")
    commit_files(clone, {"b.md": "# B\n"}, "b")
    run_git("tag", "-a", "-m", "t", "v1", cwd=clone)
    for dest in ("refs/heads/main", "refs/heads/other"):
        assert_refused(push(clone, f"refs/tags/v1:{dest}"), "a branch must point at a commit")
    assert wiki.ref("refs/heads/main") == before and wiki.ref("refs/heads/other") is None
    assert not (wiki.repo / "b.md").exists()
    wiki.assert_worktree_is_head()
    assert [e.new_sha for e in events_of(wiki.server, wiki.name) if e.source == "push"] == [before]
    assert push(clone, "v1", "main").returncode == 0  # the tag where tags go, the commit on main
