"""The TinyDB store under concurrent writers from several processes."""
from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from wikibot.gitd.records import Grant, Token, User, Wiki
from wikibot.gitd.store import TinyStore

PROCESSES = 6
WRITES = 25


def _writer(db: str, worker: int) -> None:
    store = TinyStore(Path(db))
    for i in range(WRITES):
        name = f"p{worker}-{i}"
        store.add_user(User(name=name, email="", password_hash="x"))
        store.add_token(Token(id=f"{worker}-{i}", user=name, hash=f"h{worker}-{i}"))
        store.set_grant(Grant(wiki="shared/wiki", user=name, role="viewer"))
        store.touch_token(f"{worker}-{i}", float(i))  # a read-modify-write of an existing doc


def test_concurrent_processes_lose_no_write(tmp_path):
    db = tmp_path / "db.json"
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
    assert {u.name for u in store.list_users()} == expected
    assert {g.user for g in store.list_grants(wiki="shared/wiki")} == expected
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
    store.add_wiki(Wiki(owner="a", slug="one"), max_owned=1)
    try:
        store.add_wiki(Wiki(owner="a", slug="two"), max_owned=1)
    except Exception as exc:
        assert "limit" in str(exc)
    else:
        raise AssertionError("second wiki accepted past the limit")
