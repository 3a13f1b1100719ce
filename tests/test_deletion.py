"""Deleting a wiki (or its owner with --purge) leaves nothing of it: no queued event but the deletion's
own, no lock file, no empty owner folder; a write racing the deletion is told the wiki is gone.

The real Core on a temp data dir, real repositories, the real queue and dispatcher. Where a race needs
one interleaving, `PausingRepos` holds the deletion right after the repository went, still under the
wiki's lock (a slow disk), so every run takes the same path.
"""
from __future__ import annotations

import dataclasses
import sqlite3
import threading
from pathlib import Path

import pytest

from wikibot.bootstrap.create import create_wiki
from wikibot.gitd.change import MAIN, ZERO, Change
from wikibot.gitd.commits import FileChange
from wikibot.gitd.core import Core, CoreError, NoSuchWiki
from wikibot.gitd.names import WikiName
from wikibot.gitd.repos import Repos
from wikibot.gitd.upload import PackCache
from wikibot.hooks.dispatcher import Dispatcher, RetryPolicy
from wikibot.hooks.post_receive import Publisher
from wikibot.hooks.queue import SqliteQueue
from wikibot.testing.servers import platform_config, wait_until
from wikibot.wiring import open_core

WAIT = 30.0  # seconds: only reached when the code under test deadlocks
OLD, OTHER = WikiName("ann", "old"), WikiName("ann", "other")


class PausingRepos(Repos):
    """`remove_locked` (the deletion's, under the wiki's lock) says the repository is gone, then
    waits until the test lets the deletion go on."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.removed = threading.Event()
        self.go = threading.Event()

    def remove_locked(self, name: WikiName) -> None:
        super().remove_locked(name)
        self.removed.set()
        assert self.go.wait(WAIT), "the test never let the deletion go on"


@pytest.fixture
def core(tmp_path: Path) -> Core:
    core = open_core(platform_config(tmp_path / "data"))
    core.initialise()
    core.add_user("ann", password="correct horse battery", tier="premium")
    return core


@pytest.fixture
def paused(core: Core) -> Core:
    return dataclasses.replace(core, repos=PausingRepos(core.repos.root, core.repos.locks, core.repos.hook_scripts))


def queue_of(core: Core) -> SqliteQueue:
    return Publisher(core.config.data_dir).queue


def write(core: Core, name: WikiName, page: str) -> str:
    return core.commit(name, [FileChange(page, f"# {page}\n".encode())], message=f"write {page}",
                       author=("ann", "ann@example.org"), actor="ann", source="mcp")


def dead_rows(queue: SqliteQueue) -> int:
    """Every dead letter kept, also one whose event is gone (`dead_letters` joins them to their event)."""
    with sqlite3.connect(queue.path) as db:
        return db.execute("SELECT COUNT(*) FROM dead").fetchone()[0]


def leftovers(core: Core, owner: str) -> list[Path]:
    """What is left of `owner` in the folders a wiki's deletion empties."""
    roots = (core.config.repos_dir, core.config.locks_dir, core.config.cache_dir / "packs")
    return [root / owner for root in roots if (root / owner).exists()]


# queued events
def test_deleting_a_wiki_forgets_its_queued_events_but_queues_its_deletion(core):
    create_wiki(core, OLD, template="default")
    create_wiki(core, OTHER, template="default")
    write(core, OLD, "a.md")
    head = write(core, OLD, "b.md")
    write(core, OTHER, "c.md")
    queue = queue_of(core)
    queue.bury("picky", queue.events_of(OLD)[0], 5, "gave up")  # a consumer's dead letter of the wiki
    others = queue.events_of(OTHER)

    core.delete_wiki(OLD)
    [deletion] = queue.events_of(OLD)
    assert (deletion.ref, deletion.old_sha, deletion.new_sha, deletion.source) == (MAIN, head, ZERO, "sync")
    assert queue.events_of(OTHER) == others
    assert queue.dead_letters() == [] and dead_rows(queue) == 0
    assert queue.last_seen(OLD, MAIN) == ZERO

    dispatcher = Dispatcher(queue)
    seen: list[Change] = []
    dispatcher.subscribe("record", seen.append)
    dispatcher.drain("record")  # a consumer that starts now hears of the deletion, and nothing older
    assert [e for e in seen if e.wiki == OLD] == [deletion]
    assert [e for e in seen if e.wiki == OTHER] == others


def test_an_empty_wiki_deleted_forgets_its_events_too(core):
    core.create_wiki(OLD)  # no commit on main; a pushed side branch still made an event
    queue = queue_of(core)
    queue.publish(Change(OLD, "refs/heads/side", ZERO, "1" * 40, "push", "ann"))
    core.delete_wiki(OLD)
    assert [(e.ref, e.old_sha, e.new_sha) for e in queue.events_of(OLD)] == [(MAIN, ZERO, ZERO)]


def test_a_wiki_recreated_while_the_old_one_is_deleted_keeps_its_own_events(paused):
    core = paused
    create_wiki(core, OLD, template="default")
    old_head = write(core, OLD, "a.md")
    deleting = threading.Thread(target=core.delete_wiki, args=(OLD,))
    deleting.start()
    assert core.repos.removed.wait(WAIT)  # the old record and repository are gone; the lock is still held
    made: dict[str, object] = {}
    creating = threading.Thread(target=lambda: made.update(result=create_wiki(core, OLD, template="default")))
    creating.start()  # the new record and repository are made now; its first commit waits for the lock
    wait_until(lambda: core.repos.exists(OLD), timeout=WAIT, what="the new wiki's repository")
    core.repos.go.set()
    for t in (deleting, creating):
        t.join(WAIT)
        assert not t.is_alive()

    wiki, new_head = made["result"]
    events = queue_of(core).events_of(OLD)
    assert [(e.old_sha, e.new_sha, e.source) for e in events] == [(old_head, ZERO, "sync"),
                                                                   (ZERO, new_head, "bootstrap")]
    assert core.store.get_wiki(OLD) == wiki and core.repos.head(OLD) == new_head


def test_the_worker_survives_events_forgotten_while_it_holds_them(core):
    create_wiki(core, OLD, template="default")
    create_wiki(core, OTHER, template="default")
    queue = queue_of(core)
    held = queue.events_of(OLD)[0]
    dispatcher = Dispatcher(queue, RetryPolicy(max_attempts=3, first_delay=0.05))
    holding, deleted = threading.Event(), threading.Event()
    calm: list[Change] = []
    failing_calls: list[int | None] = []

    def slow(event: Change) -> None:  # is handling the old wiki's event while the wiki goes
        if event.id == held.id:
            holding.set()
            assert deleted.wait(WAIT)
        calm.append(event)

    def failing(event: Change) -> None:  # keeps failing on the old wiki's event, retried meanwhile
        if event.id == held.id:
            failing_calls.append(event.id)
            if len(failing_calls) > 1:
                assert deleted.wait(WAIT)
            raise RuntimeError("cannot handle this one")

    dispatcher.subscribe("slow", slow)
    dispatcher.subscribe("failing", failing)
    stop = threading.Event()
    threads = dispatcher.start(stop)
    try:
        assert holding.wait(WAIT)
        wait_until(lambda: failing_calls, timeout=WAIT, what="the failing consumer's first try")
        core.delete_wiki(OLD)
        write(core, OTHER, "after.md")
        deleted.set()
        dispatcher.notify()
        last = queue.last_id()
        wait_until(lambda: queue.cursor("slow") == last and queue.cursor("failing") == last, timeout=WAIT,
                   what="both consumers past the last event")
        assert all(t.is_alive() for t in threads)
    finally:
        stop.set()
        dispatcher.notify()
        for t in threads:
            t.join(WAIT)

    assert [e.id for e in calm] == [held.id, *(e.id for e in queue.read(held.id))]  # nothing of OTHER lost
    assert len(failing_calls) < 3  # given up once its event was forgotten, not retried to the end
    assert queue.dead_letters() == [] and dead_rows(queue) == 0  # and no dead letter kept for it


# lock files and folders
def test_a_deleted_wiki_leaves_no_lock_file_and_no_empty_owner_folder(core):
    create_wiki(core, OLD, template="default")
    head = core.repos.head(OLD)
    cache = PackCache(core.pack_cache_dir(OLD))
    assert b"".join(cache.stream(core.repos.path(OLD), [head.encode()], {MAIN.encode(): head.encode()}, False))
    write(core, OLD, "a.md")  # the writer lock's file is there now
    assert sorted(leftovers(core, "ann")) == sorted([core.config.repos_dir / "ann", core.config.locks_dir / "ann",
                                                      core.config.cache_dir / "packs" / "ann"])
    core.delete_wiki(OLD)
    assert leftovers(core, "ann") == []
    assert core.config.locks_dir.is_dir() and core.config.repos_dir.is_dir()  # only the owner's folders go


def test_a_folder_shared_with_another_wiki_stays_until_its_last_wiki_goes(core):
    create_wiki(core, OLD, template="default")
    create_wiki(core, OTHER, template="default")
    core.delete_wiki(OLD)
    assert not (core.config.locks_dir / "ann" / "old.lock").exists()
    assert (core.config.locks_dir / "ann" / "other.lock").exists() and core.repos.exists(OTHER)
    write(core, OTHER, "still.md")
    core.delete_wiki(OTHER)
    assert leftovers(core, "ann") == []


def test_a_purged_user_leaves_no_folder(core):
    for name in (OLD, OTHER):
        create_wiki(core, name, template="default")
    assert sorted(core.delete_user("ann", purge=True)) == ["ann/old", "ann/other"]
    assert leftovers(core, "ann") == []


def test_a_wiki_is_created_again_after_its_owner_folder_went(core):
    create_wiki(core, OLD, template="default")
    core.delete_wiki(OLD)
    wiki, head = create_wiki(core, OLD, template="default")
    assert head == core.repos.head(OLD) and (core.config.locks_dir / "ann" / "old.lock").exists()


# a write racing the deletion
def test_a_write_waiting_for_a_deletion_is_told_the_wiki_is_gone(paused):
    core = paused
    create_wiki(core, OLD, template="default")
    deleting = threading.Thread(target=core.delete_wiki, args=(OLD,))
    deleting.start()
    assert core.repos.removed.wait(WAIT)
    outcome: dict[str, BaseException] = {}

    def save() -> None:
        try:
            write(core, OLD, "late.md")
        except BaseException as exc:
            outcome["error"] = exc

    saving = threading.Thread(target=save)
    saving.start()  # waits for the lock the deletion holds (or finds it gone and takes a new one)
    core.repos.go.set()
    for t in (deleting, saving):
        t.join(WAIT)
        assert not t.is_alive()

    error = outcome.get("error")
    assert isinstance(error, NoSuchWiki) and isinstance(error, CoreError), error
    assert error.status == 404 and str(error) == "no such wiki: ann/old"
    assert not core.repos.path(OLD).exists() and leftovers(core, "ann") == []


def test_a_write_under_a_lock_taken_after_the_deletion_is_told_the_wiki_is_gone(core):
    create_wiki(core, OLD, template="default")
    core.delete_wiki(OLD)
    with core.repos.lock(OLD), pytest.raises(NoSuchWiki, match="no such wiki"):  # as the web wiki holds it
        core.commit_with(OLD, lambda head: [FileChange("late.md", b"late\n")], message="late",
                         author=("ann", "ann@example.org"), actor="ann", source="web", lock_held=True)
    assert leftovers(core, "ann") == []  # that lock's file went with it


def test_a_write_to_a_wiki_whose_repository_is_missing_is_told_the_wiki_is_gone(core):
    core.create_wiki(OLD)
    core.repos.delete(OLD)  # as a deletion that removed the repository before the record
    with pytest.raises(NoSuchWiki):
        write(core, OLD, "late.md")
    assert not core.repos.path(OLD).exists()
