"""The TinyDB store at scale: 5,000 tenants written by several processes at once, reads that never go
stale, and a writer that dies between the pointer and the data."""
from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from wikibot.gitd.names import WikiName
from wikibot.gitd.records import Grant, Token, User, Wiki, to_doc
from wikibot.gitd.store import StoreError
from wikibot.gitd.tiny_store import TinyStore

TENANTS = 5000
PROCESSES = 4
WRITES = 10


def _prefill(db: Path, tenants: int) -> None:
    """A state file as an older wikibot (or TinyDB itself) wrote it: tables of documents, no pointer."""
    users = {str(i + 1): to_doc(User(name=f"t{i}", email="", password_hash="x" * 90)) for i in range(tenants)}
    wikis = {str(i + 1): to_doc(Wiki(owner=f"t{i}", slug="notes", title="Notes")) for i in range(tenants)}
    tokens = {str(i + 1): to_doc(Token(id=f"k{i}", user=f"t{i}", hash=f"{i:064x}", scope="write"))
              for i in range(tenants)}
    db.write_text(json.dumps({"users": users, "wikis": wikis, "tokens": tokens}))


def _writer(db: str, worker: int) -> None:
    store = TinyStore(Path(db))
    for i in range(WRITES):
        name = f"p{worker}-{i}"
        store.add_user(User(name=name, email="", password_hash="x"))
        store.add_wiki(Wiki(owner=name, slug="notes"), max_owned=1)
        store.add_token(Token(id=f"{worker}-{i}", user=name, hash=f"h{worker}-{i}"))
        store.set_grant(Grant(wiki=WikiName("t0", "notes"), user=name, role="viewer"))
        store.set_usage(WikiName(f"t{worker}", "notes"), pages=i, bytes=i)  # an existing tenant's, rewritten


def test_concurrent_processes_lose_no_write_at_5000_tenants(tmp_path):
    db = tmp_path / "db.json"
    _prefill(db, TENANTS)
    reader = TinyStore(db)
    assert reader.find_token(f"{7:064x}").user == "t7"  # cached before the writers start
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(db), w)) for w in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    written = {f"p{w}-{i}" for w in range(PROCESSES) for i in range(WRITES)}
    for store in (reader, TinyStore(db)):  # the reader's cache follows, and a new process agrees
        assert len(store.list_users()) == TENANTS + len(written)
        assert {w.owner for w in store.list_wikis()} >= written
        assert {g.user for g in store.list_grants(wiki=WikiName("t0", "notes"))} == written
        assert all(store.find_token(f"h{w}-{i}") is not None for w in range(PROCESSES) for i in range(WRITES))
        assert [store.get_wiki(WikiName(f"t{w}", "notes")).pages for w in range(PROCESSES)] == [WRITES - 1] * PROCESSES
        assert store.get_wiki(WikiName("t4999", "notes")).title == "Notes"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "temp files left behind"


def test_a_writer_that_dies_between_pointer_and_data_loses_nothing(tmp_path):
    db = tmp_path / "db.json"
    a, b = TinyStore(db), TinyStore(db)
    a.add_user(User(name="alice", email="", password_hash="x"))
    assert b.get_user("alice") is not None  # B caches this version
    a.add_token(Token(id="t1", user="alice", hash="h1"))
    (tmp_path / "db.json.gen").write_text("0" * 24)  # a later writer wrote its pointer, then died
    assert b.find_token("h1") is not None  # B's cache is not trusted: the file is read
    b.add_user(User(name="bob", email="", password_hash="x"))  # the next write starts from the file
    fresh = TinyStore(db)
    assert {u.name for u in fresh.list_users()} == {"alice", "bob"}
    assert fresh.find_token("h1") is not None


def test_a_refused_write_leaves_the_cached_state_as_it_was(tmp_path):
    store = TinyStore(tmp_path / "db.json")
    store.add_user(User(name="alice", email="", password_hash="x"))
    store.add_wiki(Wiki(owner="alice", slug="one"), max_owned=1)
    before = (tmp_path / "db.json").read_bytes()
    with pytest.raises(StoreError, match="limit of their tier"):
        store.add_wiki(Wiki(owner="alice", slug="two"), max_owned=1)
    assert [w.slug for w in store.list_wikis("alice")] == ["one"]
    assert (tmp_path / "db.json").read_bytes() == before
