"""MCP calls that outlive their request stop, and a write never lands after its caller was told it failed.

The bridge answers 504 when a request takes too long; the tool behind it runs in a thread and stops
at its next checkpoint. A write whose request timed out either did not commit, or committed and is
answered as done when retried with the same base revision.
"""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_mcp import Mcp

from wikibot.bootstrap.create import create_wiki
from wikibot.gitd.commits import FileChange
from wikibot.gitd.locks import LockTimeout, file_lock
from wikibot.gitd.names import WikiName
from wikibot.gitd.repository import Repository
from wikibot.mcp.deadline import Deadline, OutOfTime
from wikibot.mcp.link_graph import LinkGraphs
from wikibot.testing.servers import Server, commit_files, run_git, start_server, stop_server, unique, wait_until

STOPPED = "ran out of time"  # what the server logs when a tool stops at a checkpoint


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory):
    """A server whose MCP requests time out after 5 s (WIKIBOT_TIMEOUT minus gunicorn's margin)."""
    srv = start_server(tmp_path_factory.mktemp("quick-timeout"), extra_env={"WIKIBOT_TIMEOUT": "10"})
    yield srv
    stop_server(srv)


@dataclass
class Wiki:
    """A new empty wiki of a new premium user's, and MCP clients with the owner's write token."""
    srv: Server
    name: WikiName
    token: str
    clients: list[Mcp] = field(default_factory=list)

    @property
    def repo(self) -> Path:
        return self.srv.core.repos.path(self.name)

    def head(self) -> str:
        return run_git("rev-parse", "HEAD", cwd=self.repo).stdout.strip()

    def lock(self):
        """The wiki's write lock, taken here as another writer would."""
        return self.srv.core.repos.lock(self.name)

    def mcp(self) -> Mcp:
        """A connected client, closed when the test ends."""
        self.clients.append(Mcp(self.srv, self.name, self.token))
        return self.clients[-1]


def _wiki_on(srv: Server) -> Iterator[Wiki]:
    """The Wiki a fixture yields: made as make_user and make_wiki would; its clients closed afterwards."""
    owner = unique("u")
    srv.core.add_user(owner, password="correct horse battery", tier="premium")
    _, token = srv.core.create_token(owner, scope="write")
    name = create_wiki(srv.core, WikiName(owner, unique("w")), template="empty")[0].name
    wiki = Wiki(srv, name, token)
    yield wiki
    for client in wiki.clients:
        client.close()


@pytest.fixture
def quick_wiki(quick) -> Iterator[Wiki]:
    yield from _wiki_on(quick)


@pytest.fixture
def wiki(server) -> Iterator[Wiki]:
    yield from _wiki_on(server)


@pytest.fixture
def repo(tmp_path) -> Path:
    """An empty git repository with no server: Repository and the link graph read it directly."""
    repo = tmp_path / "wiki"
    run_git("init", "-q", str(repo))
    return repo


def _start(calls: dict[str, tuple[Mcp, str, dict]]) -> tuple[list[threading.Thread], dict[str, object]]:
    """Start MCP calls at the same time; each result is the tool result or the exception raised."""
    results: dict[str, object] = {}

    def run(label: str, client: Mcp, tool: str, arguments: dict) -> None:
        try:
            results[label] = client.call(tool, **arguments)
        except Exception as exc:  # a 504 reaches the client as a transport error
            results[label] = exc

    threads = [threading.Thread(target=run, args=(label, *call)) for label, call in calls.items()]
    for t in threads:
        t.start()
    return threads, results


def _joined(threads: list[threading.Thread], results: dict[str, object]) -> dict[str, object]:
    for t in threads:
        t.join()
    return results


def _log(srv: Server) -> str:
    return (srv.data / "serve.log").read_text(errors="replace")


def test_writes_that_time_out_waiting_for_the_lock_never_commit(quick, quick_wiki):
    writer, renamer = quick_wiki.mcp(), quick_wiki.mcp()
    rev = writer.ok("write_page", path="P", content="one\n")["revision"]
    stops_before = _log(quick).count(STOPPED)
    with quick_wiki.lock():  # another writer holds the wiki past the deadline
        started = time.monotonic()
        results = _joined(*_start({
            "write": (writer, "write_page", {"path": "P", "content": "two\n", "base_revision": rev}),
            "rename": (renamer, "rename_page", {"path": "P", "new_path": "R"}),
        }))
        waited = time.monotonic() - started
    for label, result in results.items():  # the client was told: failed, not done
        failed = isinstance(result, Exception) or result.is_error
        assert failed, (label, result)
    assert waited < 30, f"the bridge took {waited:.0f} s to answer"

    def settled():
        if quick_wiki.head() != rev:
            return "committed"
        return "stopped" if _log(quick).count(STOPPED) >= stops_before + 2 else None
    outcome = wait_until(settled, timeout=60, what=f"both tools to stop (log: {quick.data / 'serve.log'})")
    assert outcome == "stopped", "a write committed after its request had timed out"
    assert writer.ok("read_page", path="P")["content"] == "one\n"
    # nothing half-done is left behind: the same write now goes through
    assert writer.ok("write_page", path="P", content="two\n", base_revision=rev)["changed"]


def test_a_retried_write_is_answered_with_the_commit_it_already_made(wiki):
    mcp = wiki.mcp()
    base = mcp.ok("write_page", path="P", content="one\n")["revision"]
    edits = [{"old": "one", "new": "two"}]
    edited = mcp.ok("edit_page", path="P", base_revision=base, edits=edits)
    mcp.ok("write_page", path="Elsewhere", content="x\n")  # the wiki moves on
    again = mcp.ok("edit_page", path="P", base_revision=base, edits=edits)
    assert again["committed"] and again["revision"] == edited["revision"]

    replaced = mcp.ok("write_page", path="P", content="three\n", base_revision=edited["revision"])
    mcp.ok("write_page", path="Elsewhere", content="y\n", base_revision=replaced["revision"])
    again = mcp.ok("write_page", path="P", content="three\n", base_revision=edited["revision"])
    assert again["revision"] == replaced["revision"] and not again["changed"]

    created = mcp.ok("write_page", path="New", content="fresh\n")
    again = mcp.ok("write_page", path="New", content="fresh\n")  # a create retried: no base revision
    assert again["revision"] == created["revision"] and not again["changed"]

    head = wiki.head()
    # a retry whose change is not there is still a conflict
    assert "conflict" in mcp.error("edit_page", path="P", base_revision=edited["revision"],
                                   edits=[{"old": "two", "new": "four"}])
    assert wiki.head() == head


def test_a_retry_racing_its_first_attempt_is_answered_with_the_same_commit(wiki):
    first, retry = wiki.mcp(), wiki.mcp()
    base = first.ok("write_page", path="P", content="one\n")["revision"]
    edit = {"path": "P", "base_revision": base, "edits": [{"old": "one", "new": "two"}]}
    with wiki.lock():
        # both attempts likely queue behind another writer; the outcome must not depend on it
        running = _start({"first": (first, "edit_page", edit), "retry": (retry, "edit_page", edit)})
        time.sleep(1)
    results = _joined(*running)
    texts = {label: r.content[0].text for label, r in results.items()}
    assert not any(r.is_error for r in results.values()), texts
    assert len({r.structured_content["revision"] for r in results.values()}) == 1, texts
    assert run_git("rev-list", "--count", f"{base}..HEAD", cwd=wiki.repo).stdout.strip() == "1"


def test_link_graph_stops_at_an_expired_deadline(repo):
    head = commit_files(repo, {f"p{i}.md": f"[[p{i + 1}]]\n" for i in range(50)})
    graphs = LinkGraphs()
    expired = Deadline.after(0, "test")
    with pytest.raises(OutOfTime):
        graphs.at(WikiName("o", "w"), Repository(repo), head, expired.check)
    graph = graphs.at(WikiName("o", "w"), Repository(repo), head, Deadline.after(60, "test").check)
    assert graph.backlinks("p1.md") == ["p0.md"]


def _pushed(wiki: Wiki, tmp: Path, *commits: dict[str, str]) -> list[str]:
    """Push `commits` (files of each) to `wiki` from a fresh clone; returns their revisions."""
    clone = tmp / unique("clone")
    run_git("clone", "-q", wiki.srv.clone_url(wiki.name, wiki.token), str(clone))
    revisions = [commit_files(clone, files) for files in commits]
    run_git("push", "-q", "origin", "HEAD:main", cwd=clone)
    return revisions


def _git_diffs_in(repo: Path) -> list[int]:
    """Pids of `git diff` processes running in `repo`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"diff" in argv and str(repo).encode() in argv:
            found.append(int(proc.name))
    return found


def test_a_conflict_diffs_outside_the_lock_and_git_stops_at_the_deadline(quick_wiki, tmp_path):
    rng = random.Random(0)
    # two long pages of random "x"/"y" lines: git's diff of them takes far longer than the deadline
    old, new = ("\n".join(rng.choice("xy") for _ in range(800_000)) + "\n" for _ in range(2))
    r1, _ = _pushed(quick_wiki, tmp_path, {"big.md": old}, {"big.md": new})
    writer = quick_wiki.mcp()
    running = _start({"conflict": (writer, "write_page", {"path": "big", "content": "mine\n",
                                                          "base_revision": r1})})
    longest = 0.0
    while running[0][0].is_alive():  # how long does another writer wait for the wiki meanwhile?
        asked = time.monotonic()
        with quick_wiki.lock():
            longest = max(longest, time.monotonic() - asked)
        time.sleep(0.05)
    _joined(*running)
    assert longest < 2, f"another writer waited {longest:.1f} s for the lock while a conflict was diffed"
    wait_until(lambda: not _git_diffs_in(quick_wiki.repo), timeout=3, what="git diff to be killed at the deadline")


def test_a_write_waiting_for_the_lock_gives_up_at_its_deadline(quick, quick_wiki):
    writer = quick_wiki.mcp()
    rev = writer.ok("write_page", path="P", content="one\n")["revision"]
    gave_up = "before getting the wiki's lock"
    before = _log(quick).count(gave_up)
    with quick_wiki.lock():  # held well past the write's deadline
        result = _joined(*_start({"write": (writer, "write_page", {"path": "P", "content": "two\n",
                                                                   "base_revision": rev})}))["write"]
        assert isinstance(result, Exception) or result.is_error, result
        # the thread stops waiting by itself: it does not sit on flock until the lock is free
        wait_until(lambda: _log(quick).count(gave_up) > before, timeout=5,
                   what=f"the write to stop waiting for the lock (log: {quick.data / 'serve.log'})")
    assert quick_wiki.head() == rev


def test_a_write_that_timed_out_says_it_may_have_landed(quick_wiki):
    writer = quick_wiki.mcp()
    with quick_wiki.lock():
        result = _joined(*_start({"write": (writer, "write_page", {"path": "P", "content": "x\n"})}))["write"]
    assert "may still have landed" in str(result), result


def test_page_paths_are_literal_pathspecs(repo):
    commit_files(repo, {"a.md": "a\n"})
    glob = commit_files(repo, {"[ab].md": "glob\n"})
    head = commit_files(repo, {"a.md": "a again\n"})
    wiki = Repository(repo)
    assert [c.revision for c in wiki.log(head, "[ab].md")] == [glob]
    assert "a again" not in wiki.diff(None, head, ["[ab].md"])


def test_gitattributes_in_the_tree_do_not_hide_page_diffs(repo):
    old = commit_files(repo, {".gitattributes": "*.md binary\n", "p.md": "plan A\n"})
    new = commit_files(repo, {"p.md": "plan B\n"})
    assert "+plan B" in Repository(repo).diff(old, new, ["p.md"])


def test_the_lock_wait_can_be_bounded(tmp_path):
    path = tmp_path / "w.lock"
    with file_lock(path):
        started = time.monotonic()
        with pytest.raises(LockTimeout), file_lock(path, timeout=0.3):
            pass
        assert 0.3 <= time.monotonic() - started < 2
    with file_lock(path, timeout=0.3):  # free again: taken at once
        pass


def test_a_write_stopped_at_its_last_checkpoint_leaves_the_wiki_as_it_was(wiki):
    head = wiki.srv.core.repo(wiki.name).head()
    objects = run_git("count-objects", "-v", cwd=wiki.repo).stdout

    def late() -> None:  # the policies passed; the request's deadline is past
        raise OutOfTime("late")

    with pytest.raises(OutOfTime):
        wiki.srv.core.commit_with(wiki.name, lambda _: [FileChange("P.md", b"x\n")], message="m",
                                  author=("a", "a@x"), actor=wiki.name.owner, source="mcp", checkpoint=late)
    assert wiki.srv.core.repo(wiki.name).head() == head
    assert run_git("count-objects", "-v", cwd=wiki.repo).stdout == objects
