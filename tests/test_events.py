"""Change events from every write path, the durable queue and the worker, with the real server."""
from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from wikibot.gitd.change import ZERO, Change
from wikibot.gitd.names import WikiName
from wikibot.hooks.dispatcher import Dispatcher, RetryPolicy
from wikibot.hooks.queue import SqliteQueue
from wikibot.testing.servers import (
    WIKIBOT,
    Server,
    commit_files,
    events_of,
    run_git,
    start_server,
    stop_server,
    wait_until,
)


@pytest.fixture
def make_wiki(make_wiki):
    """These tests start from the starter pages (home.md and the others), as a new wiki has them."""
    return functools.partial(make_wiki, template="default")

TESTS = Path(__file__).parent
STARTER = WikiName("admin", "notes")  # the wiki `wikibot init` makes


def clone(server: Server, wiki: WikiName, dest: Path, token: str) -> Path:
    run_git("clone", server.clone_url(wiki, token), str(dest))
    return dest


def commit(repo: Path, name: str, text: str) -> str:
    return commit_files(repo, {name: text}, f"write {name}")


def test_wiki_creation_is_a_bootstrap_event(server, make_user, make_wiki):
    alice = make_user()
    wiki = make_wiki(alice)
    [event] = events_of(server, wiki)
    assert (event.source, event.ref, event.old_sha) == ("bootstrap", "refs/heads/main", ZERO)
    assert event.new_sha == server.core.repos.head(wiki)


def test_a_push_of_three_commits_is_one_event_with_the_whole_range(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice)
    repo = clone(server, wiki, tmp_path / "c", alice.token)
    before = run_git("rev-parse", "HEAD", cwd=repo).stdout.strip()
    for i in range(3):
        head = commit(repo, f"p{i}.md", f"page {i}\n")
    run_git("push", "origin", "main", cwd=repo)
    pushes = [e for e in events_of(server, wiki) if e.source == "push"]
    assert len(pushes) == 1
    assert (pushes[0].ref, pushes[0].old_sha, pushes[0].new_sha, pushes[0].actor) == \
        ("refs/heads/main", before, head, alice.name)


def test_one_event_per_updated_ref(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice)
    repo = clone(server, wiki, tmp_path / "c", alice.token)
    commit(repo, "a.md", "a\n")
    run_git("branch", "draft", cwd=repo)
    run_git("tag", "v1", cwd=repo)
    run_git("push", "origin", "main", "draft", "v1", cwd=repo)
    refs = sorted(e.ref for e in events_of(server, wiki) if e.source == "push")
    assert refs == ["refs/heads/draft", "refs/heads/main", "refs/tags/v1"]


def test_a_commit_made_in_the_worktree_is_a_web_event(server, make_user, make_wiki):
    """Otterwiki commits with the git CLI; so does anyone in the worktree. The hook sees both."""
    alice = make_user()
    wiki = make_wiki(alice)
    path = server.core.repos.path(wiki)
    before = server.core.repos.head(wiki)
    (path / "Local.md").write_text("written in the worktree\n")
    run_git("add", "Local.md", cwd=path)
    env_commit = subprocess.run(["git", "-c", "user.name=Web Editor", "-c", "user.email=web@example.org",
                                 "commit", "-q", "-m", "web edit"], cwd=path, capture_output=True, text=True)
    assert env_commit.returncode == 0, env_commit.stderr
    after = server.core.repos.head(wiki)
    web = [e for e in events_of(server, wiki) if e.source == "web"]
    assert [(e.old_sha, e.new_sha, e.actor) for e in web] == [(before, after, "Web Editor <web@example.org>")]


def test_usage_consumer_keeps_page_count_current(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice, template="empty")
    repo = clone(server, wiki, tmp_path / "c", alice.token)
    for i in range(4):
        commit(repo, f"p{i}.md", f"page {i}\n")
    run_git("push", "origin", "main", cwd=repo)
    wait_until(lambda: server.core.store.get_wiki(wiki).pages == 4, what="usage to count 4 pages")
    assert server.core.store.get_wiki(wiki).bytes > 0


def test_repack_consumer_folds_packs_after_many_pushes(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice)
    packs = server.core.repos.path(wiki) / ".git" / "objects" / "pack"
    repo = clone(server, wiki, tmp_path / "c", alice.token)
    for i in range(9):  # each push adds a pack; the ninth passes the threshold of 8
        commit(repo, f"p{i}.md", f"page {i}\n")
        run_git("push", "-q", "origin", "main", cwd=repo)
    graph = packs.parent / "info" / "commit-graph"  # for page histories
    wait_until(lambda: len(list(packs.glob("*.pack"))) == 1 and graph.is_file(), what="the repack consumer")
    clone(server, wiki, tmp_path / "after", alice.token)
    assert (tmp_path / "after" / "p8.md").read_text() == "page 8\n"


def test_five_clients_pushing_at_once_lose_nothing(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice)
    clones = [clone(server, wiki, tmp_path / f"c{i}", alice.token) for i in range(5)]
    commits = [commit(repo, f"client{i}.md", f"client {i}\n") for i, repo in enumerate(clones)]
    results: dict[int, subprocess.CompletedProcess[str]] = {}
    barrier = threading.Barrier(5)

    def push(i: int) -> None:
        barrier.wait()
        results[i] = run_git("push", "origin", "main", cwd=clones[i], check=False)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    landed = [i for i, r in results.items() if r.returncode == 0]
    assert landed, "at least one push must land"
    for r in results.values():
        if r.returncode != 0:
            assert "fetch first" in r.stderr or "non-fast-forward" in r.stderr, r.stderr
    history = run_git("rev-list", "HEAD", cwd=server.core.repos.path(wiki)).stdout
    for i in landed:
        assert commits[i] in history
    # the refused ones pull and push again until everything is in
    for i in sorted(set(range(5)) - set(landed)):
        run_git("pull", "-q", "--rebase", "origin", "main", cwd=clones[i])
        run_git("push", "origin", "main", cwd=clones[i])
    path = server.core.repos.path(wiki)
    assert sorted(p.name for p in path.glob("client*.md")) == [f"client{i}.md" for i in range(5)]
    assert run_git("status", "--porcelain", cwd=path).stdout == ""
    # events, in order, chain from one push to the next with no gap
    pushes = [e for e in events_of(server, wiki) if e.source == "push"]
    assert len(pushes) == 5
    assert all(a.new_sha == b.old_sha for a, b in zip(pushes, pushes[1:], strict=False))


@pytest.fixture
def recording_server(tmp_path):
    record = tmp_path / "delivered.jsonl"
    env = {"WIKIBOT_CONSUMERS": "record=recorder:factory", "RECORDER_FILE": str(record),
           "RECORDER_DELAY": "0.2", "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    server = start_server(tmp_path / "var", extra_env=env)
    yield server, record
    stop_server(server)


def _delivered(record: Path) -> list[int]:
    if not record.exists():
        return []
    return [json.loads(line)["id"] for line in record.read_text().splitlines()]


def test_killed_worker_restarts_and_delivers_every_queued_event(recording_server, tmp_path):
    server, record = recording_server
    _, token = server.core.create_token("admin", scope="write")
    repo = clone(server, STARTER, tmp_path / "c", token)
    for i in range(8):
        commit(repo, f"p{i}.md", f"page {i}\n")
        run_git("push", "-q", "origin", "main", cwd=repo)
    queue = SqliteQueue(server.data / "queue" / "events.db")
    last = queue.last_id()
    wait_until(lambda: len(_delivered(record)) >= 2, what="the first deliveries")
    pid_file = server.data / "queue" / "worker.pid"
    worker_pid = int(pid_file.read_text())
    os.kill(worker_pid, signal.SIGKILL)  # mid-stream: events still queued
    assert len(set(_delivered(record))) < last
    wait_until(lambda: pid_file.exists() and int(pid_file.read_text()) != worker_pid, timeout=90,
               what="a restarted worker")
    wait_until(lambda: queue.cursor("record") == last, timeout=90, what="every event delivered")
    assert set(_delivered(record)) == set(range(1, last + 1))  # at least once, none lost
    status = subprocess.run([*WIKIBOT, "events", "status"], env={**os.environ, "WIKIBOT_DATA": str(server.data)},
                            capture_output=True, text=True, check=True).stdout
    assert "record" in status and "usage" in status


def test_a_commit_missed_by_the_hook_is_resynced_when_the_worker_starts(recording_server):
    server, record = recording_server
    path = server.core.repos.path(STARTER)
    pid_file = server.data / "queue" / "worker.pid"
    wait_until(pid_file.exists, what="the worker to be up (its start repairs hooks)")
    (path / ".git" / "hooks" / "post-commit").unlink()  # a lost hook ...
    (path / "Quiet.md").write_text("no hook saw this\n")
    run_git("add", "-A", cwd=path)
    run_git("commit", "-q", "-m", "quiet", cwd=path)
    head = run_git("rev-parse", "HEAD", cwd=path).stdout.strip()
    assert not [e for e in events_of(server, STARTER) if e.new_sha == head]
    worker_pid = int(pid_file.read_text())
    os.kill(worker_pid, signal.SIGTERM)  # ... is healed at the next worker start
    wait_until(lambda: [e for e in events_of(server, STARTER) if e.new_sha == head and e.source == "sync"],
               timeout=90, what="a sync event from the restarted worker")
    assert (path / ".git" / "hooks" / "post-commit").exists()


def test_a_consumer_that_fails_twice_then_succeeds_sees_the_event_once_as_success(tmp_path):
    queue = SqliteQueue(tmp_path / "events.db")
    queue.publish(Change(WikiName("a", "b"), "refs/heads/main", ZERO, "1" * 40, "push"))
    dispatcher = Dispatcher(queue, RetryPolicy(max_attempts=5, first_delay=0.01))
    calls, successes = [], []

    def flaky(event: Change) -> None:
        calls.append(event.id)
        if len(calls) <= 2:
            raise RuntimeError("temporary failure")
        successes.append(event.id)

    dispatcher.subscribe("flaky", flaky)
    assert dispatcher.drain("flaky") == 1
    assert calls == [1, 1, 1] and successes == [1]
    assert queue.cursor("flaky") == 1 and queue.dead_letters() == []
    assert dispatcher.drain("flaky") == 0  # never again


def test_a_consumer_that_keeps_failing_dead_letters_and_moves_on(tmp_path):
    queue = SqliteQueue(tmp_path / "events.db")
    for sha in ("1", "2"):
        queue.publish(Change(WikiName("a", "b"), "refs/heads/main", ZERO, sha * 40, "web"))
    dispatcher = Dispatcher(queue, RetryPolicy(max_attempts=3, first_delay=0.01))
    seen = []

    def broken_on_first(event: Change) -> None:
        if event.new_sha == "1" * 40:
            raise ValueError("cannot handle this one")
        seen.append(event.id)

    dispatcher.subscribe("picky", broken_on_first)
    dispatcher.drain("picky")
    [dead] = queue.dead_letters("picky")
    assert (dead.event.id, dead.attempts) == (1, 3) and "cannot handle this one" in dead.error
    assert seen == [2] and queue.cursor("picky") == 2


def test_events_replay_requeues_a_wiki_for_every_consumer(server, make_user, make_wiki):
    alice = make_user()
    wiki = make_wiki(alice)
    env = {**os.environ, "WIKIBOT_DATA": str(server.data)}
    out = subprocess.run([*WIKIBOT, "events", "replay", str(wiki)], env=env, capture_output=True, text=True, check=True)
    assert "from scratch" in out.stdout
    last = events_of(server, wiki)[-1]
    assert (last.source, last.old_sha, last.new_sha) == ("sync", ZERO, server.core.repos.head(wiki))
