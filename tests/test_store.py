"""The TinyDB store under concurrent writers from several processes."""
from __future__ import annotations

import json
import multiprocessing
import os
import threading
from functools import partial
from pathlib import Path

import pytest

from wikibot.config import load_config
from wikibot.errors import WikibotError
from wikibot.gitd.locks import file_lock
from wikibot.gitd.names import WikiName
from wikibot.gitd.records import Grant, Token, User, Wiki
from wikibot.gitd.store import StoreError
from wikibot.gitd.tiny_store import TinyStore
from wikibot.testing.servers import wait_until

PROCESSES = 6
WRITES = 25


def _writer(db: str, worker: int) -> None:
    store = TinyStore(Path(db))
    for i in range(WRITES):
        name = f"p{worker}-{i}"
        store.add_user(User(name=name, email="", password_hash="x"))
        store.add_token(Token(id=f"{worker}-{i}", user=name, hash=f"h{worker}-{i}"))
        store.set_grant(Grant(wiki=WikiName("shared", "wiki"), user=name, role="viewer"))
        store.touch_token(f"{worker}-{i}", float(i))  # a read-modify-write of an existing doc


def test_concurrent_processes_lose_no_write(tmp_path):
    db = tmp_path / "db.json"
    TinyStore(db).add_user(User(name="shared", email="", password_hash="x"))
    TinyStore(db).add_wiki(Wiki(owner="shared", slug="wiki"))
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(db), w)) for w in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    json.loads(db.read_text())  # valid JSON afterwards
    store = TinyStore(db)
    expected = {f"p{w}-{i}" for w in range(PROCESSES) for i in range(WRITES)}
    assert {u.name for u in store.list_users()} == expected | {"shared"}
    assert {g.user for g in store.list_grants(wiki=WikiName("shared", "wiki"))} == expected
    tokens = store.list_tokens()
    assert len(tokens) == PROCESSES * WRITES
    assert all(t.last_used is not None for t in tokens)
    assert not list(tmp_path.glob(".db-*.tmp")), "temp files left behind"


def test_a_reader_sees_another_processes_write(tmp_path):
    db = tmp_path / "db.json"
    reader = TinyStore(db)
    assert reader.get_user("late") is None
    ctx = multiprocessing.get_context("spawn")
    p = ctx.Process(target=_add_late_user, args=(str(db),))
    p.start()
    p.join(60)
    assert reader.get_user("late") is not None


def _add_late_user(db: str) -> None:
    TinyStore(Path(db)).add_user(User(name="late", email="", password_hash="x"))


def test_limits_are_checked_inside_the_write_lock(tmp_path):
    store = TinyStore(tmp_path / "db.json")
    store.add_user(User(name="a", email="", password_hash="x"))
    store.add_wiki(Wiki(owner="a", slug="one"), max_owned=1)
    try:
        store.add_wiki(Wiki(owner="a", slug="two"), max_owned=1)
    except Exception as exc:
        assert "limit" in str(exc)
    else:
        raise AssertionError("second wiki accepted past the limit")


def _user(name: str) -> User:
    return User(name=name, email="", password_hash="x")


def test_records_naming_a_missing_user_or_wiki_are_refused(tmp_path):
    store = TinyStore(tmp_path / "db.json")
    store.add_user(_user("host"))
    store.add_wiki(Wiki(owner="host", slug="w"))
    host_w, host_nope = WikiName("host", "w"), WikiName("host", "nope")
    refusals = {
        "token": lambda: store.add_token(Token(id="t", user="ghost", hash="h")),
        "grant to a missing user": lambda: store.set_grant(Grant(wiki=host_w, user="ghost", role="viewer")),
        "grant on a missing wiki": lambda: store.set_grant(Grant(wiki=host_nope, user="host", role="viewer")),
        "wiki": lambda: store.add_wiki(Wiki(owner="ghost", slug="w")),
    }
    for what, write in refusals.items():
        with pytest.raises(StoreError, match="does not exist"):
            write()
            pytest.fail(f"{what} for something missing was accepted")
    assert store.list_tokens() == [] and store.list_grants() == [] and len(store.list_wikis()) == 1


def _lock_waiters(lock: Path) -> int:
    """How many flock requests on `lock` are blocked right now (from /proc/locks)."""
    inode = f":{lock.stat().st_ino}"
    return sum(1 for line in Path("/proc/locks").read_text().splitlines()
               if "->" in line and any(field.endswith(inode) for field in line.split()))


def test_creations_racing_a_user_deletion_leave_nothing_for_a_later_namesake(tmp_path):
    """Creators check that the user exists, then queue on the store lock behind its deletion: each
    must be refused once it gets the lock, or the next user called 'victim' inherits its record."""
    from wikibot.gitd.core import Core

    config = load_config(tmp_path, environ={})
    core = Core.open(config)
    core.initialise()
    core.add_user("host", password="correct horse battery", tier="premium")
    core.create_wiki(WikiName("host", "shared"))
    lock = config.db_path.with_name(config.db_path.name + ".lock")
    for n in range(4):
        core.add_user("victim", password="correct horse battery", tier="premium")
        creators = [partial(core.create_token, "victim", scope="write"), partial(core.create_token, "victim"),
                    partial(core.grant, WikiName("host", "shared"), "victim", "editor"),
                    partial(core.create_wiki, WikiName("victim", f"w{n}"))]

        unexpected: list[BaseException] = []

        def attempt(create) -> None:
            try:
                create()
            except WikibotError as exc:  # refused because the user is gone (CoreError or StoreError)
                if "victim" not in str(exc):
                    unexpected.append(exc)  # noqa: B023 (called within this round)
            except BaseException as exc:
                unexpected.append(exc)  # noqa: B023 (called within this round)

        def delete() -> None:
            for _ in range(3):  # a wiki created first makes the deletion refuse; purge it again
                try:
                    core.delete_user("victim", purge=True)
                    return
                except WikibotError as exc:  # CoreError, or the store's StoreError if a wiki came meanwhile
                    if "owns" not in str(exc):
                        break
            unexpected.append(AssertionError("victim could not be deleted"))  # noqa: B023 (called within this round)

        with file_lock(lock):  # everyone passes the existence checks, then waits here, the deleter first
            threads = [threading.Thread(target=delete)]
            threads[0].start()
            wait_until(lambda: _lock_waiters(lock) == 1, what="the deleter queued on the store lock")
            threads += [threading.Thread(target=attempt, args=(c,)) for c in creators]
            for t in threads[1:]:
                t.start()
            waiting = len(threads)
            wait_until(lambda: _lock_waiters(lock) == waiting, what="the creators queued behind it")  # noqa: B023
        for t in threads:
            t.join(60)
        assert not unexpected and not any(t.is_alive() for t in threads), unexpected
        core.add_user("victim", password="correct horse battery")
        inherited = {"tokens": core.store.list_tokens("victim"), "grants": core.store.list_grants(user="victim"),
                     "wikis": core.store.list_wikis("victim")}
        assert inherited == {"tokens": [], "grants": [], "wikis": []}, f"round {n}: records outlived their user"
        core.delete_user("victim")


def test_a_write_never_starts_from_a_stale_cached_copy(tmp_path):
    """B revokes a leaked token and issues its replacement; the file then shows A the inode, size and
    mtime A cached (a filesystem reusing inodes, with coarse timestamps, can). A's next write must
    still start from B's version, not bring the revoked token back."""
    db = tmp_path / "db.json"
    a, b = TinyStore(db), TinyStore(db)
    a.add_user(_user("alice"))
    a.add_token(Token(id="t1", user="alice", hash="h1"))
    assert a.find_token("h1") is not None  # A caches this version
    cached = os.stat(db)
    keep = tmp_path / "keep"
    os.link(db, keep)  # hold the cached inode so it can come back
    assert b.delete_token("t1")
    b.add_token(Token(id="t2", user="alice", hash="h2"))
    keep.write_bytes(db.read_bytes())  # B's version, in the cached inode
    os.replace(keep, db)
    os.utime(db, ns=(cached.st_atime_ns, cached.st_mtime_ns))
    now = os.stat(db)
    assert (now.st_ino, now.st_mtime_ns, now.st_size) == (cached.st_ino, cached.st_mtime_ns, cached.st_size)
    a.touch_token("t2", 5.0)
    fresh = TinyStore(db)
    assert fresh.find_token("h1") is None, "A's write brought the revoked token back"
    assert fresh.find_token("h2").last_used == 5.0
