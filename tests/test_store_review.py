"""Regressions from the issue-12 store review: each failed on the code reviewed (4ec27aa).

TinyDB ones need no server; the PostgreSQL ones reach for 127.0.0.1:1 (refused at once) or the
shared test server."""
from __future__ import annotations

import shutil
import threading

import psycopg
import pytest

from wikibot.config import ConfigError
from wikibot.errors import WikibotError
from wikibot.gitd.acl import authenticate
from wikibot.gitd.locks import file_lock
from wikibot.gitd.records import Token, User
from wikibot.gitd.secrets import token_hash
from wikibot.gitd.store import StoreCorrupt, open_postgres
from wikibot.gitd.tiny_store import TinyStore

SECRET = "Hunter2xyz"


def _user(name: str) -> User:
    return User(name=name, email="", password_hash="x")


# TinyDB
@pytest.mark.parametrize("first", ["replace", "remove"])
def test_an_insert_after_a_replace_or_removal_in_one_write_overwrites_no_document(tmp_path, first):
    """_Change.load numbers new documents after the highest id *changed* so far, not after the table's
    last id: replacing (or removing) doc 1 then inserting writes doc 2 over an existing token."""
    store = TinyStore(tmp_path / "db.json")
    store.add_user(_user("alice"))
    for i in (1, 2, 3):
        store.add_token(Token(id=f"t{i}", user="alice", hash=f"h{i}"))
    with store._write() as change:
        if first == "replace":
            change.replace("tokens", "1", Token(id="t1", user="alice", hash="h1", note="renamed"))
        else:
            change.remove("tokens", ["1"])
        change.insert("tokens", Token(id="t4", user="alice", hash="h4"))
    kept = {t.id for t in TinyStore(tmp_path / "db.json").list_tokens()}
    assert kept == ({"t1", "t2", "t3", "t4"} if first == "replace" else {"t2", "t3", "t4"})


def test_a_touched_token_keeps_its_place_among_tokens_created_at_the_same_time(tmp_path):
    """The patched tokens_of group moves a replaced token to its end; a fresh parse (and PostgreSQL's
    ORDER BY created, seq) keeps it first, so list_tokens(user) differs between processes."""
    db = tmp_path / "db.json"
    writer = TinyStore(db)
    writer.add_user(_user("alice"))
    writer.add_token(Token(id="t1", user="alice", hash="h1", created=1.0))
    writer.add_token(Token(id="t2", user="alice", hash="h2", created=1.0))
    writer.list_tokens("alice")  # builds the index, so the next write patches it
    writer.touch_token("t1", 9.0)
    assert [t.id for t in writer.list_tokens("alice")] == [t.id for t in TinyStore(db).list_tokens("alice")]


def test_a_db_json_restored_under_a_running_process_is_what_it_reads_and_its_next_write_keeps(tmp_path):
    """The cache is labelled by the pointer alone: db.json put back from a backup (pointer untouched)
    is ignored by a process holding a cached copy, which keeps accepting what the backup no longer
    has, and its next write silently undoes the restore."""
    db = tmp_path / "db.json"
    running = TinyStore(db)
    running.add_user(_user("alice"))
    shutil.copy(db, tmp_path / "backup.json")
    running.add_user(_user("mallory"))  # added after the backup; the admin restores to remove it
    assert running.get_user("mallory") is not None  # cached
    shutil.copy(tmp_path / "backup.json", db)
    assert running.get_user("mallory") is None, "a running process still serves the state the restore replaced"
    running.add_user(_user("bob"))
    assert {u.name for u in TinyStore(db).list_users()} == {"alice", "bob"}


@pytest.mark.parametrize("raw", ["[]", '{"users": []}', '{"users": {"1": {"name": "a"}}}'])
def test_a_db_json_of_the_wrong_shape_is_reported_as_corrupt(tmp_path, raw):
    (tmp_path / "db.json").write_text(raw)
    with pytest.raises(StoreCorrupt):
        TinyStore(tmp_path / "db.json").get_user("a")
    assert (tmp_path / "db.json").read_text() == raw


def test_an_authenticated_read_is_not_held_up_for_ever_by_a_writer_holding_the_lock(tmp_path):
    """authenticate() writes last_used (touch_token) under the file lock with no timeout: a stalled
    writer (a disk stall, a stopped process) holds every such request thread, which gthread never kills."""
    store = TinyStore(tmp_path / "db.json")
    store.add_user(_user("alice"))
    secret = "wbt_" + "x" * 30
    store.add_token(Token(id="t1", user="alice", hash=token_hash(secret)))
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with file_lock(store._lock_path):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    held.wait(5)
    outcome: list[object] = []

    def auth() -> None:
        try:
            outcome.append(authenticate(store, secret))
        except WikibotError as exc:  # a 503 is a fine answer; waiting for ever is not
            outcome.append(exc)

    asker = threading.Thread(target=auth, daemon=True)
    asker.start()
    asker.join(5)
    release.set()
    assert outcome, "authenticate still waiting on the store lock after 5 s"


# PostgreSQL: the password in messages
@pytest.mark.parametrize("password", [f"{SECRET}#x", f"{SECRET}?x", f"{SECRET} x"])
def test_a_password_libpq_accepts_is_never_shown(password):
    """libpq takes everything up to the first '/' as user info, '#', '?' and spaces included;
    redact() stops at those, so the password reaches CLI output and HTTP 503 bodies."""
    url = f"postgresql://u:{password}@127.0.0.1:1/db"
    assert psycopg.conninfo.conninfo_to_dict(url)["password"] == password
    with pytest.raises(WikibotError) as caught:
        open_postgres(url).get_user("alice")
    assert SECRET not in str(caught.value)


def test_a_keyword_conninfo_is_refused_without_its_password():
    with pytest.raises(ConfigError) as caught:
        open_postgres(f"host=127.0.0.1 password={SECRET} dbname=x")
    assert SECRET not in str(caught.value)


def test_a_url_libpq_cannot_parse_is_a_one_line_error_without_its_password():
    """psycopg raises ProgrammingError (not OperationalError) quoting the bad token: uncaught, the
    CLI prints a traceback with the password and the HTTP layer logs it."""
    with pytest.raises(WikibotError) as caught:
        open_postgres(f"postgresql://u:{SECRET}%zz@127.0.0.1:1/db").get_user("alice")
    assert SECRET not in str(caught.value)


# PostgreSQL: a slow or stuck database
def test_pooled_connections_give_up_on_a_statement_or_lock_that_never_ends(postgres):
    """With no statement_timeout / lock_timeout, one stuck transaction holding a user's row blocks
    every write of that user and, the pool exhausted, every request of the process, without bound
    (/tmp/i12r/hang.py: four add_wiki wait as long as the holder, a fifth read gets a 503 after 30 s)."""
    url = postgres.create_database()
    store = open_postgres(url)
    store.migrate()
    try:
        with store._conn() as conn:  # type: ignore[attr-defined]
            settings = {name: conn.execute(f"SHOW {name}").fetchone()[0]
                        for name in ("statement_timeout", "lock_timeout")}
        assert any(value != "0" for value in settings.values()), settings
    finally:
        store.close()  # type: ignore[attr-defined]
