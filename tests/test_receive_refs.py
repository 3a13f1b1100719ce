"""Pushes whose ref updates cannot all happen: every ref that moved is synced, announced and
reported ok; every other ref is reported ng with a reason and stayed where it was; --atomic is
all or nothing. Driven by the real git client (and, for what git never sends, the raw protocol)
against the running server."""
from __future__ import annotations

import base64
import subprocess
import urllib.request
from pathlib import Path

import pytest

from wikibot.gitd.change import ZERO
from wikibot.gitd.names import WikiName
from wikibot.testing.servers import Account, Server, commit_files, events_of, run_git


@pytest.fixture
def wiki_clone(server, make_user, make_wiki, tmp_path) -> tuple[Server, Account, WikiName, Path]:
    """A wiki whose main has one pushed commit, and a clone of it with one more commit not yet pushed."""
    alice = make_user()
    wiki = make_wiki(alice, template="empty")
    repo = tmp_path / "clone"
    run_git("clone", "-q", server.clone_url(wiki, alice.token), str(repo))
    commit_files(repo, {"base.md": "# Base\n"}, "first page")
    run_git("push", "-q", "origin", "main", cwd=repo)
    commit_files(repo, {"pushed.md": "# Pushed\n\nthis page must survive\n"}, "add pushed page")
    return server, alice, wiki, repo


def server_repo(server: Server, wiki: WikiName) -> Path:
    return server.core.repos.path(wiki)


def server_ref(server: Server, wiki: WikiName, ref: str) -> str | None:
    proc = run_git("rev-parse", "-q", "--verify", ref, cwd=server_repo(server, wiki), check=False)
    return proc.stdout.strip() or None


def head_of(repo: Path) -> str:
    return run_git("rev-parse", "HEAD", cwd=repo).stdout.strip()


def assert_worktree_is_head(server: Server, wiki: WikiName) -> None:
    """Otterwiki reads (and commits) the worktree: it must equal HEAD, with nothing staged or stale."""
    repo = server_repo(server, wiki)
    assert run_git("status", "--porcelain", "--untracked-files=all", cwd=repo).stdout == ""
    assert run_git("diff", "--quiet", "HEAD", cwd=repo, check=False).returncode == 0


def push_events(server: Server, wiki: WikiName) -> list[tuple[str, str, str]]:
    """Events of pushes after the fixture's first one."""
    return [(e.ref, e.old_sha, e.new_sha) for e in events_of(server, wiki) if e.source == "push"][1:]


def push(repo: Path, *args: str) -> tuple[int, dict[str, str]]:
    """`git push --porcelain`: exit code and, per destination ref, git's summary of what happened."""
    proc = run_git("push", "--porcelain", *args, cwd=repo, check=False)
    status: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            status[parts[1].split(":")[1]] = parts[0] + " " + parts[2]
    assert status, f"no status from git push:\n{proc.stdout}\n{proc.stderr}"
    return proc.returncode, status


def rejected(summary: str) -> bool:
    return summary.startswith("! [remote rejected] (") and summary.endswith(")")


def test_a_ref_clashing_with_main_is_refused_and_main_moves_synced_and_announced(wiki_clone):
    server, _, wiki, repo = wiki_clone
    old, new = server_ref(server, wiki, "refs/heads/main"), head_of(repo)
    code, status = push(repo, "origin", "main", "HEAD:refs/heads/main/x")
    assert code != 0
    assert not rejected(status["refs/heads/main"]), status
    assert rejected(status["refs/heads/main/x"]) and "refs/heads/main" in status["refs/heads/main/x"], status
    assert server_ref(server, wiki, "refs/heads/main") == new
    assert server_ref(server, wiki, "refs/heads/main/x") is None
    assert (server_repo(server, wiki) / "pushed.md").read_text() == "# Pushed\n\nthis page must survive\n"
    assert_worktree_is_head(server, wiki)
    assert push_events(server, wiki) == [("refs/heads/main", old, new)]


def test_pushed_refs_clashing_with_each_other_are_both_refused(wiki_clone):
    server, _, wiki, repo = wiki_clone
    new = head_of(repo)
    code, status = push(repo, "origin", "main", "HEAD:refs/heads/a", "HEAD:refs/heads/a/b")
    assert code != 0
    assert rejected(status["refs/heads/a"]) and rejected(status["refs/heads/a/b"]), status
    assert not rejected(status["refs/heads/main"]), status
    assert server_ref(server, wiki, "refs/heads/a") is None and server_ref(server, wiki, "refs/heads/a/b") is None
    assert server_ref(server, wiki, "refs/heads/main") == new
    assert_worktree_is_head(server, wiki)
    assert [ref for ref, _, _ in push_events(server, wiki)] == ["refs/heads/main"]


def test_atomic_push_with_a_clashing_ref_moves_nothing(wiki_clone):
    server, _, wiki, repo = wiki_clone
    old = server_ref(server, wiki, "refs/heads/main")
    code, status = push(repo, "--atomic", "origin", "main", "HEAD:refs/heads/main/x")
    assert code != 0
    assert rejected(status["refs/heads/main"]) and rejected(status["refs/heads/main/x"]), status
    assert server_ref(server, wiki, "refs/heads/main") == old
    assert server_ref(server, wiki, "refs/heads/main/x") is None
    assert not (server_repo(server, wiki) / "pushed.md").exists()
    assert_worktree_is_head(server, wiki)
    assert push_events(server, wiki) == []


def pkt(data: bytes | None) -> bytes:
    return b"0000" if data is None else b"%04x" % (len(data) + 4) + data


def read_pkts(body: bytes) -> list[bytes]:
    lines, i = [], 0
    while i < len(body):
        size = int(body[i:i + 4], 16)
        if size == 0:
            i += 4
            continue
        lines.append(body[i + 4:i + size])
        i += size
    return lines


def raw_receive_pack(server: Server, wiki: WikiName, token: str, commands: list[bytes], pack: bytes) -> list[bytes]:
    """POST a hand-made receive-pack request (report-status, no side band); the status lines."""
    body = pkt(commands[0] + b"\0report-status agent=test") + b"".join(pkt(c) for c in commands[1:])
    request = urllib.request.Request(
        f"{server.url}/{wiki}.git/git-receive-pack", data=body + pkt(None) + pack, method="POST",
        headers={"Content-Type": "application/x-git-receive-pack-request",
                 "Authorization": "Basic " + base64.b64encode(f"user:{token}".encode()).decode()})
    with urllib.request.urlopen(request, timeout=60) as response:
        return read_pkts(response.read())


def test_a_ref_named_twice_in_one_push_is_refused_before_anything_moves(wiki_clone):
    server, alice, wiki, repo = wiki_clone
    old, new = server_ref(server, wiki, "refs/heads/main"), head_of(repo)
    pack = subprocess.run(["git", "pack-objects", "--revs", "--stdout", "-q"], cwd=repo, check=True,
                          input=f"{new}\n^{old}\n".encode(), capture_output=True).stdout
    command = f"{old} {new} refs/heads/main".encode()
    status = raw_receive_pack(server, wiki, alice.token, [command, command], pack)
    assert status[0] == b"unpack ok\n"
    assert len(status) == 3 and all(s.startswith(b"ng refs/heads/main ") for s in status[1:]), status
    assert all(b"more than once" in s for s in status[1:]), status
    assert server_ref(server, wiki, "refs/heads/main") == old
    assert_worktree_is_head(server, wiki)
    assert push_events(server, wiki) == []


def branches(repo: Path, *names: str) -> list[str]:
    for name in names:
        run_git("branch", name, cwd=repo)
    return ["main", *names]


def test_a_ref_that_fails_to_move_mid_push_is_ng_and_the_others_land(wiki_clone):
    server, _, wiki, repo = wiki_clone
    old, new = server_ref(server, wiki, "refs/heads/main"), head_of(repo)
    # a stale lock left by a crashed git: dulwich refuses to write that ref (FileLocked)
    (server_repo(server, wiki) / ".git/refs/heads/two.lock").write_text("")
    code, status = push(repo, "origin", *branches(repo, "one", "two", "three"))
    assert code != 0
    assert rejected(status["refs/heads/two"]), status
    assert [r for r, s in status.items() if rejected(s)] == ["refs/heads/two"], status
    assert server_ref(server, wiki, "refs/heads/two") is None
    for ref in ("main", "one", "three"):
        assert server_ref(server, wiki, f"refs/heads/{ref}") == new
    assert_worktree_is_head(server, wiki)
    assert sorted(push_events(server, wiki)) == [("refs/heads/main", old, new), ("refs/heads/one", ZERO, new),
                                                 ("refs/heads/three", ZERO, new)]


def test_an_atomic_push_whose_middle_ref_fails_to_move_rolls_the_others_back(wiki_clone):
    server, _, wiki, repo = wiki_clone
    old = server_ref(server, wiki, "refs/heads/main")
    (server_repo(server, wiki) / ".git/refs/heads/two.lock").write_text("")
    code, status = push(repo, "--atomic", "origin", *branches(repo, "one", "two", "three"))
    assert code != 0
    assert all(rejected(s) for s in status.values()) and len(status) == 4, status
    assert server_ref(server, wiki, "refs/heads/main") == old
    assert [server_ref(server, wiki, f"refs/heads/{r}") for r in ("one", "two", "three")] == [None] * 3
    assert not (server_repo(server, wiki) / "pushed.md").exists()
    assert_worktree_is_head(server, wiki)
    assert push_events(server, wiki) == []


@pytest.mark.parametrize("pushed, existing, clashing", [
    ([b"refs/heads/a", b"refs/heads/a/b"], [], {b"refs/heads/a", b"refs/heads/a/b"}),
    ([b"refs/heads/main/x"], [b"refs/heads/main"], {b"refs/heads/main/x"}),
    ([b"refs/heads/a"], [b"refs/heads/a/b/c"], {b"refs/heads/a"}),
    ([b"refs/heads/ab", b"refs/heads/a"], [b"refs/heads/a-b/c", b"refs/tags/a"], set()),
])
def test_ref_clashes(pushed, existing, clashing):
    from wikibot.gitd.refs import ref_clashes

    assert set(ref_clashes(pushed, existing)) == clashing
