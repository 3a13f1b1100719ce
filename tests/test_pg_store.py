"""PostgreSQL as the platform store: chosen by config, its schema made by `wikibot init`, its pool
opened per process, its password never shown, and `wikibot store copy` both ways. A real server
(initdb, pg_ctl), a database per test; the answers every backend shares are in test_store.py."""
from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import subprocess
import threading
from pathlib import Path

import psycopg
import pytest

from wikibot.cli import cmd_store_copy
from wikibot.config import ConfigError, load_config
from wikibot.errors import WikibotError
from wikibot.gitd import pg_store
from wikibot.gitd.core import Core
from wikibot.gitd.names import WikiName
from wikibot.gitd.pg_store import (
    NOT_READY,
    SCHEMA_VERSION,
    UNREACHABLE,
    PostgresStore,
    SchemaMismatch,
    StoreUnavailable,
)
from wikibot.gitd.records import Grant, Identity, Token, User, Wiki
from wikibot.gitd.store import StoreError, open_store
from wikibot.gitd.tiny_store import TinyStore
from wikibot.testing.postgres import PostgresServer, shared_postgres
from wikibot.testing.servers import TEST_STORE, WIKIBOT, Server, wait_until
from wikibot.wiring import open_core


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    return shared_postgres()  # PostgresUnavailable (a failure, not a skip) says what to install


@pytest.fixture
def url(postgres: PostgresServer) -> str:
    return postgres.create_database()


def wb(data: Path, *args: str, store_url: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIKIBOT_")}
    env.update({"WIKIBOT_DATA": str(data), **({"WIKIBOT_STORE_URL": store_url} if store_url else {})})
    proc = subprocess.run([*WIKIBOT, *args], env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"wikibot {' '.join(args)} failed: {proc.stderr}")
    return proc


def _backends(conn: psycopg.Connection) -> int:
    """How many other sessions are connected to this database now."""
    return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid()").fetchone()[0]


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def _mismatch(pattern: str, call, *args) -> None:
    """`call(*args)` raises SchemaMismatch: its detail (the CLI's line) matches, its message (what an
    HTTP client gets) is the fixed sentence."""
    with pytest.raises(SchemaMismatch) as caught:
        call(*args)
    assert re.search(pattern, caught.value.detail), caught.value.detail
    assert str(caught.value) == NOT_READY


# schema
def test_migrate_creates_the_schema_once_and_a_store_without_one_says_run_init(url):
    store = PostgresStore(url)
    _mismatch("schema version 0.*run 'wikibot init'", store.list_users)
    assert store.migrate() == SCHEMA_VERSION and store.migrate() == SCHEMA_VERSION
    assert _tables(url) == {"schema_version", "users", "wikis", "grants", "tokens", "identities", "invites"}
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall() == [
                (v,) for v in range(1, SCHEMA_VERSION + 1)]
        conn.execute("INSERT INTO schema_version VALUES (%s, 0)", (SCHEMA_VERSION + 1,))
    newer = PostgresStore(url)
    _mismatch("newer than this wikibot's.*older than the database, upgrade it", newer.migrate)
    _mismatch(f"schema version {SCHEMA_VERSION + 1}.*older than the database, upgrade it", newer.get_user, "alice")
    store.close()


def test_init_into_another_applications_database_is_a_one_line_error(url, tmp_path):
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE users (id integer)")
    proc = wb(tmp_path / "var", "init", store_url=url, check=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert 'relation "users" already exists' in proc.stderr and "empty database of its own" in proc.stderr
    assert _tables(url) == {"users"}  # the migration rolled back whole: not even schema_version


# connections
_inherited: list[PostgresStore] = []  # what a forked child finds in memory, as gunicorn's workers do


def _use_inherited_store() -> None:
    store = _inherited[0]
    for i in range(20):
        store.add_user(User(name=f"child{i}", email="", password_hash="x"))
        assert store.get_user(f"child{i}") is not None


def test_the_pool_opens_on_first_use_and_a_forked_child_opens_its_own(url):
    """gunicorn preloads the app, then forks: a child using the parent's pool would share its sockets."""
    store = PostgresStore(url)
    store.migrate()
    with psycopg.connect(url, autocommit=True) as watcher:
        sessions = lambda: _backends(watcher)  # noqa: E731
        wait_until(lambda: sessions() == 0, timeout=10, what="the migration's session to end")
        store.get_user("nobody")
        assert 1 <= sessions() <= store.max_connections
        _inherited[:] = [store]
        child = multiprocessing.get_context("fork").Process(target=_use_inherited_store)
        child.start()

        def parent_work() -> None:  # the parent goes on using its pool meanwhile
            for i in range(50):
                store.add_user(User(name=f"parent{i}", email="", password_hash="x"))
                assert store.get_user(f"parent{i}") is not None

        parent = threading.Thread(target=parent_work, daemon=True)  # on shared sockets it would hang
        parent.start()
        parent.join(60)
        child.join(60)
        if child.is_alive():
            child.kill()
        assert not parent.is_alive() and child.exitcode == 0, "parent and child got in each other's way"
        assert len(store.list_users()) == 70 and store.get_user("child19") is not None
        store.close()
        wait_until(lambda: sessions() == 0, timeout=10, what="the closed pool's sessions to end")


def test_an_unreachable_store_is_a_one_line_error_without_the_password(postgres, url, tmp_path, caplog):
    wrong = url.replace(postgres.password, "not-the-password-x7")
    with pytest.raises(StoreUnavailable) as caught:
        PostgresStore(wrong).get_user("alice")
    detail = caught.value.detail  # for the log and the CLI
    assert "password authentication failed" in detail and "[redacted]" in detail
    assert "not-the-password-x7" not in detail
    assert str(caught.value) == UNREACHABLE  # HTTP clients learn no host, port, database or libpq text
    assert detail in [r.getMessage() for r in caplog.records if r.name == "wikibot.gitd.pg_store"]  # the log does
    data = tmp_path / "var"
    wb(data, "init")
    proc = wb(data, "user", "list", store_url=wrong, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("wikibot: error: ")
    assert len(proc.stderr.strip().splitlines()) == 1 and "not-the-password-x7" not in proc.stderr + proc.stdout
    assert "password authentication failed" in proc.stderr  # the admin is told why


@pytest.mark.parametrize("bad", ["postgresql://u:s3cr3t%zz@127.0.0.1:1/db", "postgresql://u:s3cr3t@127.0.0.1:1/db?nope=1",
                                 "host=127.0.0.1 password=s3cr3t dbname=db", "u:s3cr3t@127.0.0.1/db"])
def test_a_url_libpq_cannot_read_is_a_one_line_config_error_without_its_password(bad):
    with pytest.raises(ConfigError) as caught:
        open_store(load_config(Path("/nonexistent"), environ={"WIKIBOT_STORE_URL": bad}))
    assert "s3cr3t" not in str(caught.value) and len(str(caught.value).splitlines()) == 1


# timeouts and restarts
def test_a_lock_or_statement_that_does_not_end_is_a_503_and_the_store_goes_on(url, monkeypatch):
    monkeypatch.setattr(pg_store, "LOCK_TIMEOUT_MS", 300)
    monkeypatch.setattr(pg_store, "STATEMENT_TIMEOUT_MS", 600)
    store = PostgresStore(url)
    store.migrate()
    store.add_user(User(name="alice", email="", password_hash="x"))
    with psycopg.connect(url) as holder:  # a transaction stuck while it holds alice's row
        holder.execute("SELECT FROM users WHERE name = 'alice' FOR UPDATE")
        with pytest.raises(StoreUnavailable) as caught:
            store.add_wiki(Wiki(owner="alice", slug="w"))
        assert "lock timeout" in caught.value.detail and str(caught.value) == UNREACHABLE
    with pytest.raises(StoreUnavailable, match=re.escape(UNREACHABLE)) as caught, store._conn() as conn:
        conn.execute("SELECT pg_sleep(5)")
    assert "statement timeout" in caught.value.detail
    store.add_wiki(Wiki(owner="alice", slug="w"))  # nothing left behind
    assert [str(w.name) for w in store.list_wikis()] == ["alice/w"]
    with store._conn() as conn:
        assert "keepalives_idle=" in conn.info.dsn and "tcp_user_timeout=" in conn.info.dsn
    store.close()


def test_a_urls_own_options_come_after_the_timeouts(url):
    store = PostgresStore(url + "?options=-c%20lock_timeout%3D1234&keepalives_idle=7")
    store.migrate()
    with store._conn() as conn:
        shown = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in ("lock_timeout", "statement_timeout")}
        assert shown == {"lock_timeout": "1234ms", "statement_timeout": "30s"}
        assert "keepalives_idle=7" in conn.info.dsn
    store.close()


def test_connections_the_server_dropped_cost_no_request_an_error(url):
    """As after a PostgreSQL restart: each pooled connection is checked before a request gets it."""
    store = PostgresStore(url, max_connections=3)
    store.migrate()
    barrier = threading.Barrier(3)

    def hold() -> None:  # three requests at once: three pooled connections
        with store._conn() as conn:
            conn.execute("SELECT 1")
            barrier.wait(10)

    threads = [threading.Thread(target=hold) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    with psycopg.connect(url, autocommit=True) as admin:
        assert _backends(admin) == 3
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                      "AND pid <> pg_backend_pid()")
        wait_until(lambda: _backends(admin) == 0, timeout=10, what="the pooled sessions to end")
    for i in range(6):
        assert store.get_user(f"u{i}") is None
    store.close()


# configuration
def test_the_store_url_setting_chooses_the_backend(postgres, url, tmp_path):
    assert isinstance(open_store(load_config(tmp_path, environ={})), TinyStore)
    (tmp_path / "wikibot.toml").write_text(f'[store]\nurl = "{url}"\n')
    from_file = load_config(tmp_path, environ={})
    assert from_file.store_url == url and isinstance(open_store(from_file), PostgresStore)
    assert postgres.password not in repr(from_file)
    other = postgres.create_database()
    from_env = load_config(tmp_path, environ={"WIKIBOT_STORE_URL": other})
    assert from_env.store_url == other  # the environment overrides the file
    assert open_store(from_env).url == other
    short = load_config(tmp_path, environ={"WIKIBOT_STORE_URL": url.replace("postgresql://", "postgres://")})
    assert isinstance(open_store(short), PostgresStore)
    threads = load_config(tmp_path, environ={"WIKIBOT_STORE_URL": url, "WIKIBOT_THREADS": "9"})
    assert open_store(threads).max_connections == 11  # the pool follows the request threads
    for bad in ("mysql://root:hunter2@db/wikibot", "/var/lib/wikibot/db.json", "postgresql:/x"):
        with pytest.raises(ConfigError, match="is not a PostgreSQL URL") as caught:
            open_store(load_config(tmp_path, environ={"WIKIBOT_STORE_URL": bad}))
        assert "hunter2" not in str(caught.value)
    (tmp_path / "wikibot.toml").write_text('[store]\nnope = "x"\n')
    with pytest.raises(ConfigError, match=r"unknown setting \[store\] nope"):
        load_config(tmp_path, environ={})


def test_wikibot_init_on_postgres_creates_the_schema_and_keeps_no_db_file(url, tmp_path):
    data = tmp_path / "var"
    first = wb(data, "init", store_url=url).stdout
    assert f"at schema version {SCHEMA_VERSION}" in first and "password:" in first and "[redacted]@" in first
    assert _tables(url) == {"schema_version", "users", "wikis", "grants", "tokens", "identities", "invites"}
    assert not (data / "db.json").exists() and (data / "repos" / "admin" / "notes").is_dir()
    store = PostgresStore(url)
    assert [u.name for u in store.list_users()] == ["admin"] and len(store.list_tokens("admin")) == 1
    assert [str(w.name) for w in store.list_wikis()] == ["admin/notes"]
    again = wb(data, "init", store_url=url).stdout
    assert "already initialised" in again and "wbt_" not in again
    assert "admin" in wb(data, "user", "list", store_url=url).stdout
    store.close()


# wikibot store copy
def _fill(data: Path) -> None:
    wb(data, "init")
    wb(data, "user", "add", "carol", "--tier", "free")
    wb(data, "user", "add", "dave")
    wb(data, "wiki", "create", "carol/handbook", "--template", "empty", "--public")
    wb(data, "wiki", "grant", "carol/handbook", "dave", "--role", "editor")
    wb(data, "token", "create", "dave", "--wiki", "carol/handbook", "--expires-days", "3", "--note", "ci")
    store = TinyStore(data / "db.json")
    store.add_identity(Identity(provider="sso", subject="1234", user="dave", created=1.0, label="dave@sso"))
    store.add_user(User(name="erin", email="", password_hash="!", created=2.0), invite="inv-1")
    store.delete_user("erin")  # the invite stays spent


def _everything(store) -> dict[str, set]:
    users = store.list_users()
    return {"users": set(users), "wikis": set(store.list_wikis()), "grants": set(store.list_grants()),
            "tokens": set(store.list_tokens()), "identities": {i for u in users for i in store.list_identities(u.name)},
            "invites": set(store.list_used_invites())}


def _counts(out: str) -> dict[str, tuple[str, str]]:
    rows = [line.split() for line in out.splitlines()]
    return {r[0]: (r[1], r[2]) for r in rows if r and r[0] in ("users", "wikis", "grants", "tokens")}


def test_store_copy_into_postgres_and_back_keeps_every_record(url, tmp_path):
    data = tmp_path / "var"
    _fill(data)
    tiny = _everything(TinyStore(data / "db.json"))
    assert {k: len(v) for k, v in tiny.items()} == {"users": 3, "wikis": 2, "grants": 1, "tokens": 2, "identities": 1,
                                                    "invites": 1}

    out = wb(data, "store", "copy", "--to", url).stdout
    assert _counts(out) == {"users": ("3", "3"), "wikis": ("2", "2"), "grants": ("1", "1"), "tokens": ("2", "2")}
    assert "[store] url" in out and "[redacted]@" in out
    pg = PostgresStore(url)
    assert _everything(pg) == tiny
    refused = wb(data, "store", "copy", "--to", url, check=False)
    assert refused.returncode == 1
    assert "already has records (3 users, 2 wikis, 1 grants, 2 tokens, 1 identities, 1 invites)" in refused.stderr
    assert _everything(pg) == tiny

    # the platform now on PostgreSQL: it works there, and copies back into a new TinyDB file
    wb(data, "user", "add", "erin", store_url=url)
    back = tmp_path / "back" / "state.json"
    out = wb(data, "store", "copy", "--to", f"tinydb:{back}", store_url=url).stdout
    assert _counts(out) == {"users": ("4", "4"), "wikis": ("2", "2"), "grants": ("1", "1"), "tokens": ("2", "2")}
    assert _everything(TinyStore(back)) == _everything(pg)
    refused = wb(data, "store", "copy", "--to", str(back), store_url=url, check=False)  # a plain .json path
    assert refused.returncode == 1 and "already has records" in refused.stderr
    usage = wb(data, "store", "copy", "--to", "mysql://u:hunter2@h/db", check=False)
    assert usage.returncode == 2 and "hunter2" not in usage.stderr and "tinydb:PATH" in usage.stderr
    pg.close()


def test_a_copy_into_postgres_lands_whole_or_not_at_all(url):
    source = [User(name="a", email="", password_hash="x")], [Wiki(owner="a", slug="w")]
    target = PostgresStore(url)
    target.migrate()
    with pytest.raises(StoreError, match=r"nothing was copied.*Key \(username\)=\(ghost\) is not present"):
        target.load(*source, [Grant(wiki=WikiName("a", "w"), user="ghost", role="viewer")], [])  # no such user
    assert target.list_users() == [] and target.list_wikis() == []
    target.load(*source, [], [Token(id="t", user="a", hash="h", wikis=(WikiName("a", "w"),))])
    assert target.find_token("h").wikis == (WikiName("a", "w"),)
    target.close()


def test_store_copy_gives_a_database_that_is_not_empty_no_tables(url, tmp_path):
    data = tmp_path / "var"
    wb(data, "init")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE invoices (id integer)")
    refused = wb(data, "store", "copy", "--to", url, check=False)
    assert refused.returncode == 1 and "has tables but is no wikibot store (invoices)" in refused.stderr
    assert _tables(url) == {"invoices"}


def test_store_copy_fails_if_the_source_changed_meanwhile(url, tmp_path, monkeypatch):
    """A server left running writes during the copy: what it wrote is not in the target."""
    data = tmp_path / "var"
    wb(data, "init")
    core: Core = open_core(load_config(data, environ={}))
    load = PostgresStore.load

    def load_while_a_user_signs_up(self, *records) -> None:
        load(self, *records)
        core.store.add_user(User(name="late", email="", password_hash="x"))

    monkeypatch.setattr(PostgresStore, "load", load_while_a_user_signs_up)
    with pytest.raises(WikibotError, match=r"source changed during the copy \(users 1 -> 2\).*Stop the server"):
        cmd_store_copy(core, argparse.Namespace(to=url))
    for store in (PostgresStore(url),):
        assert [u.name for u in store.list_users()] == ["admin"]
        store.close()


def test_the_platform_suite_runs_on_the_store_it_was_asked_for(server: Server):
    """`make test` keeps the suite's platforms on TinyDB; `make test-postgres` (WIKIBOT_TEST_STORE=postgres)
    puts every one of them on PostgreSQL, the shared server included."""
    expected = PostgresStore if os.environ.get(TEST_STORE) == "postgres" else TinyStore
    assert isinstance(server.core.store, expected)
    assert (server.data / "db.json").exists() == (expected is TinyStore)
