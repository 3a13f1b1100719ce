"""The store contract: every backend (TinyDB, PostgreSQL) gives the same answers and refusals, and
loses no write and lets no quota slip under concurrent writers from several processes.

Tests taking `backend` or `store` run once per backend. PostgreSQL is a real server (initdb, pg_ctl),
one database per test; without PostgreSQL installed they fail saying so, never skip. The tests at
the end marked TINYDB ONLY check what only a JSON file has (its lock, its cached copy).
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest

from wikibot.config import load_config
from wikibot.errors import WikibotError
from wikibot.gitd.core import Core
from wikibot.gitd.locks import file_lock
from wikibot.gitd.names import WikiName
from wikibot.gitd.records import Grant, Token, UsedInvite, User, Wiki
from wikibot.gitd.store import StoreError
from wikibot.gitd.tiny_store import TinyStore
from wikibot.testing.postgres import StoreBackend, open_location
from wikibot.testing.servers import wait_until

PROCESSES = 6
WRITES = 25
SHARED = WikiName("shared", "wiki")


@pytest.fixture
def store(backend: StoreBackend):
    return backend.open()


def _user(name: str, **kw) -> User:
    return User(**{"name": name, "email": "", "password_hash": "x", **kw})


def _in_processes(target: Callable, args_of: list[tuple]) -> None:
    """Run `target(*args)` for each args in its own spawned process, all at once; each must succeed."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=args) for args in args_of]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0, f"a writer process failed (exit code {p.exitcode})"


# answers and refusals
def test_records_come_back_as_they_were_written(store):
    alice = _user("alice", email="a@example.org", tier="premium", admin=True, created=1712345678.123456)
    store.add_user(alice)
    wiki = Wiki(owner="alice", slug="notes", title="Notes ✓", purpose="p", public=True, created=1.5, pages=3,
                bytes=2**40)
    store.add_wiki(wiki)
    token = Token(id="t1", user="alice", hash="h1", scope="write", wikis=(wiki.name, WikiName("bob", "x")),
                  expires=1e10, created=2.25, last_used=None, note="ci")
    store.add_token(token)
    grant = Grant(wiki=wiki.name, user="alice", role="editor")
    store.set_grant(grant)
    assert store.get_user("alice") == alice and store.get_user("nobody") is None
    assert store.get_wiki(wiki.name) == wiki and store.get_wiki(WikiName("alice", "none")) is None
    assert store.find_token("h1") == token and store.find_token("nope") is None
    assert store.list_grants() == [grant]
    assert isinstance(store.list_grants()[0].wiki, WikiName)
    assert all(isinstance(w, WikiName) for w in store.find_token("h1").wikis)


def test_duplicates_are_refused_with_the_same_messages(store):
    store.add_user(_user("alice"))
    store.add_wiki(Wiki(owner="alice", slug="w"))
    store.add_token(Token(id="t1", user="alice", hash="h1"))
    refusals = {
        "user 'alice' already exists": lambda: store.add_user(_user("alice", email="other")),
        "wiki alice/w already exists": lambda: store.add_wiki(Wiki(owner="alice", slug="w", title="again")),
        "token t1 already exists": lambda: store.add_token(Token(id="t1", user="alice", hash="h2")),
    }
    for message, write in refusals.items():
        with pytest.raises(StoreError) as caught:
            write()
        assert str(caught.value) == message
    assert store.get_user("alice").email == "" and store.get_wiki(WikiName("alice", "w")).title == ""
    assert store.find_token("h2") is None


def test_records_naming_a_missing_user_or_wiki_are_refused(store):
    store.add_user(_user("host"))
    store.add_wiki(Wiki(owner="host", slug="w"))
    host_w, host_nope = WikiName("host", "w"), WikiName("host", "nope")
    refusals = {
        "user 'ghost' does not exist": [
            lambda: store.add_token(Token(id="t", user="ghost", hash="h")),
            lambda: store.set_grant(Grant(wiki=host_w, user="ghost", role="viewer")),
            lambda: store.add_wiki(Wiki(owner="ghost", slug="w")),
            lambda: store.delete_user("ghost"),
        ],
        "wiki host/nope does not exist": [
            lambda: store.set_grant(Grant(wiki=host_nope, user="host", role="viewer")),
            lambda: store.set_public(host_nope, True),
            lambda: store.set_usage(host_nope, 1, 2),
            lambda: store.delete_wiki(host_nope),
        ],
    }
    for message, writes in refusals.items():
        for write in writes:
            with pytest.raises(StoreError) as caught:
                write()
            assert str(caught.value) == message
    assert store.list_tokens() == [] and store.list_grants() == [] and len(store.list_wikis()) == 1


def test_limits_are_checked_inside_the_write(store):
    store.add_user(_user("a"))
    store.add_wiki(Wiki(owner="a", slug="one"), max_owned=1)
    with pytest.raises(StoreError) as caught:
        store.add_wiki(Wiki(owner="a", slug="two"), max_owned=1)
    assert str(caught.value) == "user 'a' already has 1 wiki(s), the limit of their tier"
    store.add_wiki(Wiki(owner="a", slug="two"))  # no quota given: none applies
    assert [str(w.name) for w in store.list_wikis("a")] == ["a/one", "a/two"]


def test_a_grant_replaces_an_earlier_role_and_the_cap_holds_only_new_ones(store):
    w = WikiName("host", "w")
    store.add_user(_user("host"))
    store.add_wiki(Wiki(owner="host", slug="w"))
    for name in ("u1", "u2", "u3"):
        store.add_user(_user(name))
    store.set_grant(Grant(wiki=w, user="u1", role="viewer"), max_grants=2)
    store.set_grant(Grant(wiki=w, user="u2", role="viewer"), max_grants=2)
    store.set_grant(Grant(wiki=w, user="u1", role="editor"), max_grants=2)  # at the cap: a change is fine
    with pytest.raises(StoreError) as caught:
        store.set_grant(Grant(wiki=w, user="u3", role="viewer"), max_grants=2)
    assert str(caught.value) == "wiki host/w already has 2 collaborator(s), the limit of its owner's tier"
    assert [(g.user, g.role) for g in store.list_grants(wiki=w)] == [("u1", "editor"), ("u2", "viewer")]
    assert store.remove_grant(w, "u1") is True and store.remove_grant(w, "u1") is False
    assert store.list_grants(user="u2") == [Grant(wiki=w, user="u2", role="viewer")]
    assert store.list_grants(wiki=w, user="u1") == []


def test_deleting_a_user_needs_their_wikis_gone_and_takes_their_tokens_and_grants(store):
    for name in ("owner", "guest"):
        store.add_user(_user(name))
    store.add_wiki(Wiki(owner="owner", slug="w"))
    store.set_grant(Grant(wiki=WikiName("owner", "w"), user="guest", role="editor"))
    store.add_token(Token(id="g", user="guest", hash="hg"))
    store.add_token(Token(id="o", user="owner", hash="ho"))
    with pytest.raises(StoreError) as caught:
        store.delete_user("owner")
    assert str(caught.value) == "user 'owner' still owns wikis"
    assert store.get_user("owner") is not None and store.find_token("ho") is not None
    store.delete_user("guest")
    assert store.get_user("guest") is None and store.find_token("hg") is None
    assert store.list_grants() == [] and [t.id for t in store.list_tokens()] == ["o"]
    store.add_user(_user("guest"))  # a namesake inherits nothing
    assert store.list_grants(user="guest") == [] and store.list_tokens("guest") == []


def test_deleting_a_wiki_takes_its_grants_and_changes_touch_only_their_fields(store):
    w, other = WikiName("host", "w"), WikiName("host", "other")
    store.add_user(_user("host"))
    store.add_user(_user("guest"))
    store.add_wiki(Wiki(owner="host", slug="w", title="T"))
    store.add_wiki(Wiki(owner="host", slug="other"))
    store.set_grant(Grant(wiki=w, user="guest", role="viewer"))
    store.set_grant(Grant(wiki=other, user="guest", role="editor"))
    store.set_public(w, True)
    store.set_usage(w, 7, 12345)
    assert store.get_wiki(w) == Wiki(owner="host", slug="w", title="T", public=True, pages=7, bytes=12345)
    store.delete_wiki(w)
    assert store.get_wiki(w) is None and store.list_grants() == [Grant(wiki=other, user="guest", role="editor")]
    store.add_wiki(Wiki(owner="host", slug="w"))  # the name is free, and has no grants
    assert store.list_grants(wiki=w) == []


def test_profile_fields_change_alone_and_other_fields_are_refused(store):
    store.add_user(_user("ann", email="a@example.org", created=5.0))
    store.add_wiki(Wiki(owner="ann", slug="w", title="W", created=6.0, pages=3, bytes=40))
    updated = store.update_user("ann", {"full_name": "Ann Example", "disabled": True, "tier": "premium",
                                        "sessions_after": 7.5})
    assert updated == store.get_user("ann") == _user("ann", email="a@example.org", created=5.0, full_name="Ann Example",
                                                      disabled=True, tier="premium", sessions_after=7.5)
    wiki = store.update_wiki(WikiName("ann", "w"), {"title": "New", "purpose": "notes", "public": True})
    assert wiki == store.get_wiki(WikiName("ann", "w")) == Wiki(owner="ann", slug="w", title="New", purpose="notes",
                                                                public=True, created=6.0, pages=3, bytes=40)
    with pytest.raises(ValueError):
        store.update_user("ann", {"name": "bob"})
    with pytest.raises(ValueError):
        store.update_wiki(WikiName("ann", "w"), {"pages": 0})
    with pytest.raises(StoreError, match="does not exist"):
        store.update_user("ghost", {"email": ""})
    with pytest.raises(StoreError, match="does not exist"):
        store.update_wiki(WikiName("ann", "gone"), {"title": ""})


def test_an_invite_makes_one_account_and_stays_spent_when_it_goes(store):
    store.add_user(_user("ann", created=1.0), invite="i1")
    with pytest.raises(StoreError, match="used already"):
        store.add_user(_user("bob", created=2.0), invite="i1")
    assert store.get_user("bob") is None  # nothing of the refused account is left
    store.delete_user("ann")
    with pytest.raises(StoreError, match="used already"):
        store.add_user(_user("ann", created=3.0), invite="i1")
    store.add_user(_user("bob", created=4.0), invite="i2")
    assert [(i.id, i.user) for i in store.list_used_invites()] == [("i1", "ann"), ("i2", "bob")]
    assert store.find_used_invite("i2") == UsedInvite(id="i2", user="bob", used=4.0)
    assert store.find_used_invite("i3") is None


def test_identities_are_keyed_by_provider_and_subject_and_go_with_the_user(store):
    from wikibot.gitd.records import Identity

    store.add_user(_user("ann"))
    store.add_user(_user("bob"))
    mine = Identity(provider="sso", subject="42", user="ann", created=1.0, label="ann@example.org")
    store.add_identity(mine)
    store.add_identity(Identity(provider="github", subject="42", user="ann", created=2.0))
    with pytest.raises(StoreError, match="linked to a wikibot account already"):
        store.add_identity(Identity(provider="sso", subject="42", user="bob"))
    with pytest.raises(StoreError, match="does not exist"):
        store.add_identity(Identity(provider="sso", subject="7", user="ghost"))
    assert store.find_identity("sso", "42") == mine and store.find_identity("sso", "43") is None
    assert [i.provider for i in store.list_identities("ann")] == ["github", "sso"]
    assert store.remove_identity("github", "42") and not store.remove_identity("github", "42")
    store.delete_user("ann")
    assert store.find_identity("sso", "42") is None and store.list_identities("ann") == []
    store.add_identity(Identity(provider="sso", subject="42", user="bob"))  # free again


def test_tokens_are_found_listed_touched_and_deleted(store):
    store.add_user(_user("a"))
    store.add_user(_user("b"))
    store.add_token(Token(id="late", user="a", hash="h1", created=30.0))
    store.add_token(Token(id="early", user="b", hash="h2", created=10.0))
    store.add_token(Token(id="mid", user="a", hash="h3", created=20.0))
    assert [t.id for t in store.list_tokens()] == ["early", "mid", "late"]
    assert [t.id for t in store.list_tokens("a")] == ["mid", "late"] and store.list_tokens("nobody") == []
    store.touch_token("mid", 99.5)
    store.touch_token("absent", 1.0)  # a token revoked meanwhile: nothing to do
    assert store.find_token("h3").last_used == 99.5 and store.find_token("h1").last_used is None
    assert store.delete_token("mid") is True and store.delete_token("mid") is False
    assert store.find_token("h3") is None


def test_a_connectors_token_keeps_its_client_grant_and_kind(store):
    store.add_user(_user("a"))
    store.add_wiki(Wiki(owner="a", slug="w"))
    made = Token(id="c1", user="a", hash="h9", scope="write", wikis=(WikiName("a", "w"),), expires=50.0, created=5.0,
                 note="Claude", client="client-id", grant="g1", kind="refresh")
    store.add_token(made)
    assert store.find_token("h9") == made and store.list_tokens("a") == [made]
    assert Token(id="p", user="a", hash="x").kind == "access"  # personal tokens as before


def test_lists_are_in_name_order_as_the_owner_slug_strings_sort(store):
    for name in ("b", "a-b", "a", "a0"):
        store.add_user(_user(name))
    for owner, slug in (("a", "z"), ("a-b", "x"), ("a", "b-c"), ("a", "b"), ("a0", "a")):
        store.add_wiki(Wiki(owner=owner, slug=slug))
        store.set_grant(Grant(wiki=WikiName(owner, slug), user="b", role="viewer"))
        store.set_grant(Grant(wiki=WikiName(owner, slug), user="a-b", role="viewer"))
    assert [u.name for u in store.list_users()] == ["a", "a-b", "a0", "b"]
    expected = ["a-b/x", "a/b", "a/b-c", "a/z", "a0/a"]  # '-' sorts before '/', as in Python
    assert [str(w.name) for w in store.list_wikis()] == expected
    assert [str(w.name) for w in store.list_wikis("a")] == ["a/b", "a/b-c", "a/z"]
    assert [(str(g.wiki), g.user) for g in store.list_grants()] == [(w, u) for w in expected for u in ("a-b", "b")]


# concurrency
def _writer(location: str, worker: int) -> None:
    store = open_location(location)
    for i in range(WRITES):
        name = f"p{worker}-{i}"
        store.add_user(_user(name))
        store.add_token(Token(id=f"{worker}-{i}", user=name, hash=f"h{worker}-{i}"))
        store.set_grant(Grant(wiki=SHARED, user=name, role="viewer"))
        store.add_wiki(Wiki(owner=name, slug="w"))
        store.set_usage(WikiName(name, "w"), pages=i + 1, bytes=worker)  # a read-modify-write of an existing record


def test_concurrent_processes_lose_no_write(backend):
    store = backend.open()
    store.add_user(_user("shared"))
    store.add_wiki(Wiki(owner="shared", slug="wiki"))
    _in_processes(_writer, [(backend.location, w) for w in range(PROCESSES)])
    fresh = backend.open()
    expected = {f"p{w}-{i}" for w in range(PROCESSES) for i in range(WRITES)}
    assert {u.name for u in fresh.list_users()} == expected | {"shared"}
    assert {g.user for g in fresh.list_grants(wiki=SHARED)} == expected
    assert len(fresh.list_tokens()) == PROCESSES * WRITES
    usage = {(w.owner, w.pages, w.bytes) for w in fresh.list_wikis() if w.slug == "w"}
    assert usage == {(f"p{w}-{i}", i + 1, w) for w in range(PROCESSES) for i in range(WRITES)}
    if not backend.is_postgres:  # TINYDB ONLY: the file is whole and no temp file is left
        db = Path(backend.location)
        json.loads(db.read_text())
        assert not list(db.parent.glob(".db*.tmp")), "temp files left behind"


def test_a_reader_sees_another_processes_write(backend):
    reader = backend.open()
    assert reader.get_user("late") is None
    _in_processes(_add_late_user, [(backend.location,)])
    assert reader.get_user("late") is not None


def _add_late_user(location: str) -> None:
    open_location(location).add_user(_user("late"))


def _lock_waiters(lock: Path) -> int:
    """How many flock requests on `lock` are blocked right now (from /proc/locks)."""
    inode = f":{lock.stat().st_ino}"
    return sum(1 for line in Path("/proc/locks").read_text().splitlines()
               if "->" in line and any(field.endswith(inode) for field in line.split()))


@contextmanager
def _holding(backend: StoreBackend, hold: str) -> Iterator[Callable[[], int]]:
    """Hold up the writes a test races, so they all get as far as they can before any goes on: TinyDB's
    whole file lock, or in PostgreSQL the lock that the `hold` statement takes in an open transaction.
    Yields how many writers wait behind the hold (or behind each other) now."""
    if not backend.is_postgres:
        db = Path(backend.location)
        lock = db.with_name(db.name + ".lock")
        with file_lock(lock):
            yield lambda: _lock_waiters(lock)
        return
    import psycopg

    with psycopg.connect(backend.location, autocommit=True) as watcher, \
            psycopg.connect(backend.location, autocommit=True) as holder, holder.transaction():
        holder.execute(hold)  # type: ignore[arg-type]
        yield lambda: watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                      "AND wait_event_type = 'Lock'").fetchone()[0]


def _create_wiki(location: str, slug: str, outcomes) -> None:
    store = open_location(location)
    try:
        store.add_wiki(Wiki(owner="free", slug=slug), max_owned=1)
        outcomes.put((slug, "created"))
    except StoreError as exc:
        outcomes.put((slug, str(exc)))


def test_wikis_created_at_once_by_a_free_user_exactly_one_lands(backend):
    """Processes each create a wiki for one owner with a quota of 1. Held up until all have begun (in
    PostgreSQL an insert waits for the table while its count is made), then let go together."""
    backend.open().add_user(_user("free"))
    ctx = multiprocessing.get_context("spawn")
    outcomes = ctx.Queue()
    slugs = [f"w{i}" for i in range(PROCESSES)]
    procs = [ctx.Process(target=_create_wiki, args=(backend.location, s, outcomes)) for s in slugs]
    with _holding(backend, "LOCK TABLE wikis IN EXCLUSIVE MODE") as waiters:  # reads pass, inserts wait
        for p in procs:
            p.start()
        wait_until(lambda: waiters() == PROCESSES, what="every creation waiting on the store")
    results = dict(outcomes.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(60)
    created = [s for s, r in results.items() if r == "created"]
    assert len(created) == 1, results
    assert all(r == "user 'free' already has 1 wiki(s), the limit of their tier"
               for s, r in results.items() if s not in created), results
    assert [w.slug for w in backend.open().list_wikis("free")] == created


def test_grants_made_at_once_stop_at_the_cap(backend):
    """Threads each give a new collaborator a role on one wiki capped at 3, held up as above."""
    store = backend.open()
    store.add_user(_user("host"))
    store.add_wiki(Wiki(owner="host", slug="w"))
    guests = [f"g{i}" for i in range(8)]
    for g in guests:
        store.add_user(_user(g))
    if backend.is_postgres:  # every writer waits in the database at once, none for a pooled connection
        from wikibot.gitd.pg_store import PostgresStore

        store = backend.keep(PostgresStore(backend.location, max_connections=len(guests)))
    refused, failed = [], []

    def grant(user: str) -> None:
        try:
            store.set_grant(Grant(wiki=WikiName("host", "w"), user=user, role="viewer"), max_grants=3)
        except StoreError as exc:
            refused.append(str(exc))
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=grant, args=(g,)) for g in guests]
    with _holding(backend, "LOCK TABLE grants IN EXCLUSIVE MODE") as waiters:
        for t in threads:
            t.start()
        wait_until(lambda: waiters() == len(guests), what="every grant waiting on the store")
    for t in threads:
        t.join(60)
    assert not failed, failed
    assert len(store.list_grants(wiki=WikiName("host", "w"))) == 3
    assert refused == ["wiki host/w already has 3 collaborator(s), the limit of its owner's tier"] * 5


# a creation racing a deletion, through the real Core
def test_creations_racing_a_user_deletion_leave_nothing_for_a_later_namesake(backend, tmp_path):
    """Creators check that the user exists, then queue on the store's hold behind its deletion: each
    must be refused once it gets through, or the next user called 'victim' inherits its record."""
    core = Core.open(backend.config(tmp_path / "data"))
    if backend.is_postgres:  # all five writers wait in the database at once, none for a pooled connection
        from wikibot.gitd.pg_store import PostgresStore

        core = dataclasses.replace(core, store=PostgresStore(backend.location, max_connections=8))
    backend.keep(core.store)
    core.initialise()
    core.add_user("host", password="correct horse battery", tier="premium")
    core.create_wiki(WikiName("host", "shared"))
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

        # everyone passes the existence checks, then waits on the hold, the deleter first
        with _holding(backend, "SELECT FROM users WHERE name = 'victim' FOR UPDATE") as waiters:
            threads = [threading.Thread(target=delete)]
            threads[0].start()
            wait_until(lambda: waiters() == 1, what="the deleter queued on the store")  # noqa: B023
            threads += [threading.Thread(target=attempt, args=(c,)) for c in creators]
            for t in threads[1:]:
                t.start()
            waiting = len(threads)
            wait_until(lambda: waiters() == waiting, what="the creators queued behind it")  # noqa: B023
        for t in threads:
            t.join(60)
        assert not unexpected and not any(t.is_alive() for t in threads), unexpected
        core.add_user("victim", password="correct horse battery")
        inherited = {"tokens": core.store.list_tokens("victim"), "grants": core.store.list_grants(user="victim"),
                     "wikis": core.store.list_wikis("victim")}
        assert inherited == {"tokens": [], "grants": [], "wikis": []}, f"round {n}: records outlived their user"
        core.delete_user("victim")


# TINYDB ONLY: what only a JSON file with a cached copy can get wrong
def test_tinydb_write_never_starts_from_a_stale_cached_copy(tmp_path):
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


def test_tinydb_is_the_default_and_keeps_its_file_in_the_data_dir(tmp_path):
    config = load_config(tmp_path, environ={})
    core = Core.open(config)
    assert isinstance(core.store, TinyStore)
    core.store.add_user(_user("alice"))
    assert "alice" in config.db_path.read_text()


def _answers(store: TinyStore, users: list[str], wikis: list[WikiName], hashes: list[str]) -> dict:
    """Everything the store can be asked, for comparing two stores on the same file."""
    return {"users": store.list_users(), "wikis": store.list_wikis(), "grants": store.list_grants(),
            "tokens": store.list_tokens(),
            "user": {u: (store.get_user(u), store.list_wikis(u), store.list_grants(user=u), store.list_tokens(u))
                     for u in users},
            "wiki": {w: (store.get_wiki(w), store.list_grants(wiki=w)) for w in wikis},
            "token": {h: store.find_token(h) for h in hashes}}


def test_tinydb_indexes_carried_from_write_to_write_match_a_fresh_parse_and_tinydb_reads_the_file(tmp_path):
    """A process that writes keeps its indexes by patching them with each write's delta (never
    rebuilding them); after every kind of write, in a random order, its answers equal those of a store
    that parses the file afresh, and TinyDB itself opens the file with every document."""
    import random

    from tinydb import TinyDB

    rng = random.Random(12)
    db = tmp_path / "db.json"
    writer = TinyStore(db)
    users = [f"u{i}" for i in range(8)]
    wikis = [WikiName(u, s) for u in users for s in ("a", "b")]
    hashes = [f"h{i}" for i in range(20)]
    for step in range(300):
        _answers(writer, users, wikis, hashes)  # builds every index, so the next write patches them
        user, wiki, hash_ = rng.choice(users), rng.choice(wikis), rng.choice(hashes)
        op = rng.choice(["add_user", "add_wiki", "grant", "ungrant", "token", "touch", "revoke", "public",
                         "usage", "delete_wiki", "delete_user"])
        try:
            if op == "add_user":
                writer.add_user(_user(user))
            elif op == "add_wiki":
                writer.add_wiki(Wiki(owner=wiki.owner, slug=wiki.slug), max_owned=2)
            elif op == "grant":
                writer.set_grant(Grant(wiki=wiki, user=user, role=rng.choice(["reader", "editor"])), max_grants=3)
            elif op == "ungrant":
                writer.remove_grant(wiki, user)
            elif op == "token":
                writer.add_token(Token(id=f"id-{hash_}", user=user, hash=hash_, created=float(step)))
            elif op == "touch":
                writer.touch_token(f"id-{hash_}", float(step))
            elif op == "revoke":
                writer.delete_token(f"id-{hash_}")
            elif op == "public":
                writer.set_public(wiki, rng.random() < 0.5)
            elif op == "usage":
                writer.set_usage(wiki, step, step * 10)
            elif op == "delete_wiki":
                writer.delete_wiki(wiki)
            else:
                writer.delete_user(user)
        except StoreError:
            pass  # refused (a duplicate, a missing user, a quota): the state stays as it was
        fresh = TinyStore(db)
        assert _answers(writer, users, wikis, hashes) == _answers(fresh, users, wikis, hashes), f"step {step}: {op}"
    on_disk = json.loads(db.read_text())
    with TinyDB(db, access_mode="r") as tiny:
        for table in ("users", "wikis", "grants", "tokens"):
            assert len(tiny.table(table)) == len(on_disk.get(table, {})) > 0
    assert sum(len(v) for v in _answers(writer, users, wikis, hashes)["user"].values()) > 0
