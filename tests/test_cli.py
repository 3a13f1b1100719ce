"""The `wikibot` command line contract, run as a user would: a subprocess per command."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from wikibot.testing.servers import WIKIBOT, run_git, start_server, stop_server


def wb(data, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WIKIBOT_DATA": str(data)}
    proc = subprocess.run([*WIKIBOT, *args], env=env, capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"wikibot {' '.join(args)} failed: {proc.stderr}")
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wikibot: error: "), proc.stderr
    for word in words:
        assert word in lines[0]


def test_init_prints_secrets_once_and_its_clone_line_works(tmp_path):
    data = tmp_path / "var"
    server = start_server(data)  # `wikibot init` then `wikibot serve`, as `make run` does
    try:
        first = server.init_output
        assert "password:" in first and "wbt_" in first
        again = wb(data, "init")
        assert "already initialised" in again.stdout and "wbt_" not in again.stdout
        assert oct((data / "secret_key").stat().st_mode & 0o777) == "0o600"
        # the printed clone line works as it is
        line = next(ln for ln in first.splitlines() if ln.strip().startswith("git clone "))
        run_git(*line.split()[1:], str(tmp_path / "starter"))
        assert "Notes" in (tmp_path / "starter" / "home.md").read_text()
    finally:
        stop_server(server)


def test_users_wikis_grants_and_tokens(tmp_path):
    data = tmp_path / "var"
    wb(data, "init")
    out = wb(data, "user", "add", "carol", "--email", "c@example.org", "--tier", "free").stdout
    assert "password: " in out
    wb(data, "user", "add", "dave", "--password-stdin", input="a long enough secret\n")
    assert_one_line_error(wb(data, "user", "add", "dave", check=False), "already exists")
    listing = wb(data, "user", "list").stdout
    assert "carol" in listing and "c@example.org" in listing and "dave" in listing

    wb(data, "wiki", "create", "carol/handbook", "--name", "Handbook", "--purpose", "How we work", "--public")
    assert_one_line_error(wb(data, "wiki", "create", "carol/second", check=False), "limit")
    wb(data, "wiki", "grant", "carol/handbook", "dave", "--role", "editor")
    assert "dave:editor" in wb(data, "wiki", "list").stdout
    wb(data, "wiki", "visibility", "carol/handbook", "private")
    assert "private" in wb(data, "wiki", "list", "--owner", "carol").stdout
    wb(data, "wiki", "revoke", "carol/handbook", "dave")
    assert "dave" not in wb(data, "wiki", "list").stdout

    out = wb(data, "token", "create", "carol", "--scope", "write", "--wiki", "carol/handbook", "--expires-days", "7")
    token = out.stdout.splitlines()[-1]
    assert token.startswith("wbt_") and len(token) > 40
    listing = wb(data, "token", "list", "carol").stdout
    token_id = listing.splitlines()[1].split()[0]
    assert "carol/handbook" in listing and "write" in listing
    db = json.loads((data / "db.json").read_text())
    assert token not in json.dumps(db)  # only the hash is stored
    wb(data, "token", "revoke", token_id)
    assert token_id not in wb(data, "token", "list", "carol").stdout

    assert_one_line_error(wb(data, "user", "delete", "carol", check=False), "owns", "--purge")
    wb(data, "user", "delete", "carol", "--purge")
    assert not (data / "repos" / "carol" / "handbook").exists()
    assert "carol" not in wb(data, "user", "list").stdout


@pytest.mark.parametrize("args,words", [
    (["wiki", "create", "Bad/Name"], ["invalid user name"]),
    (["wiki", "create", "../etc"], ["invalid"]),
    (["wiki", "create", "nobody/wiki"], ["no such user"]),
    (["wiki", "delete", "admin/missing"], ["no such wiki"]),
    (["user", "add", "admin"], ["reserved"]),  # init's account: a name new users cannot take
    (["user", "add", "x", "--tier", "gold"], ["unknown tier"]),
    (["token", "create", "admin", "--wiki", "admin/missing"], ["no such wiki"]),
    (["token", "revoke", "nope"], ["no such token"]),
    (["wiki", "grant", "admin/notes", "admin", "--role", "editor"], ["owns"]),
    (["frobnicate"], ["invalid choice"]),
    (["token", "create"], ["required"]),
])
def test_every_error_is_one_line_and_non_zero(tmp_path, args, words):
    data = tmp_path / "var"
    wb(data, "init")
    assert_one_line_error(wb(data, *args, check=False), *words)


def test_commands_other_than_init_need_an_initialised_data_dir(tmp_path):
    assert_one_line_error(wb(tmp_path / "nothing", "user", "list", check=False), "wikibot init")
