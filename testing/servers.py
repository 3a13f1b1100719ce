"""The running platform tests drive: `wikibot serve` (gunicorn) on a free 127.0.0.1 port, the real git CLI,
and waits that explain themselves when background work (events, indexing) does not arrive.

tests/conftest.py wraps these in fixtures; bench_servers borrows free_port.
"""
from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wikibot.config import Config, load_config
from wikibot.gitd.core import Core
from wikibot.gitd.names import WikiName
from wikibot.wiring import open_core

if TYPE_CHECKING:  # configured_server's signature only: the bench scripts import this module and need no pytest
    import pytest

WIKIBOT = [sys.executable, "-m", "wikibot.cli"]
TEST_STORE = "WIKIBOT_TEST_STORE"  # "postgres": every platform a test starts keeps its state in PostgreSQL
_names = itertools.count(1)


def free_port() -> int:
    """A port the OS reports free on 127.0.0.1 (bind to port 0, then release it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid() % 10000}-{next(_names)}"


def run_git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The real git CLI, never prompting and ignoring any credential helper of the machine."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
           "GIT_AUTHOR_NAME": "Tester", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "Tester", "GIT_COMMITTER_EMAIL": "t@example.org"}
    proc = subprocess.run(["git", "-c", "credential.helper=", "-c", "init.defaultBranch=main", *args],
                          cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen on port {port} within {timeout}s")


def on_test_store(data: Path) -> Path:
    """Put the data dir `data` on the store backend this test run is for (`make test-postgres` sets
    WIKIBOT_TEST_STORE=postgres): a new, migrated database of the run's PostgreSQL server, named in
    data/wikibot.toml so every process on the data dir (server, CLI, in-process Core) uses it.
    TinyDB, the default, needs nothing. Returns `data`."""
    backend = os.environ.get(TEST_STORE, "tinydb")
    if backend == "tinydb":
        return data
    if backend != "postgres":
        raise RuntimeError(f"{TEST_STORE}={backend!r}: expected 'tinydb' or 'postgres'")
    from wikibot.testing.postgres import postgres_backend, shared_postgres

    settings = data / "wikibot.toml"
    existing = settings.read_text() if settings.exists() else ""
    if "[store]" not in existing:  # a test that names a store of its own keeps it
        data.mkdir(parents=True, exist_ok=True)
        url = postgres_backend(shared_postgres()).location
        settings.write_text(f'{existing}\n[store]\nurl = "{url}"\n' if existing else f'[store]\nurl = "{url}"\n')
    return data


def platform_config(data: Path) -> Config:
    """The config of a platform on `data` for an in-process test, on this run's store backend."""
    return load_config(on_test_store(data), environ={})


@dataclass
class Server:
    url: str
    port: int
    data: Path
    core: Core
    proc: subprocess.Popen
    init_output: str  # what `wikibot init` printed before the server started

    def clone_url(self, wiki: WikiName | str, token: str | None = None) -> str:
        auth = f"user:{token}@" if token else ""
        return f"http://{auth}127.0.0.1:{self.port}/{wiki}.git"


def start_server(data: Path, extra_env: dict[str, str] | None = None) -> Server:
    port = free_port()
    # every test's client registers from 127.0.0.1: the per-address limit is tested on a server of its own
    env = {**os.environ, "WIKIBOT_DATA": str(data), "WIKIBOT_PORT": str(port), "WIKIBOT_WORKERS": "2",
           "WIKIBOT_OAUTH_REGISTRATIONS_PER_HOUR": "100000", **(extra_env or {})}
    on_test_store(data)
    init = subprocess.run([*WIKIBOT, "init"], env=env, check=True, capture_output=True, text=True)
    log = open(data / "serve.log", "wb")
    proc = subprocess.Popen([*WIKIBOT, "serve"], env=env, stdout=log, stderr=log, start_new_session=True)
    wait_for_port(port, proc)
    core = open_core(load_config(data, environ={}))
    return Server(url=f"http://127.0.0.1:{port}", port=port, data=data, core=core, proc=proc,
                  init_output=init.stdout)


def stop_server(server: Server) -> None:
    close = getattr(server.core.store, "close", None)  # a PostgreSQL store's pool; TinyDB holds nothing open
    if close:
        close()
    server.proc.terminate()
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


def configured_server(tmp_path_factory: pytest.TempPathFactory, name: str, settings: str) -> Iterator[Server]:
    """A server of its own with `settings` as its wikibot.toml, for a module fixture to yield from."""
    data = tmp_path_factory.mktemp(name)
    (data / "wikibot.toml").write_text(settings)
    srv = start_server(data)
    yield srv
    stop_server(srv)


@dataclass
class Account:
    name: str
    token: str  # write token on all the user's wikis


def wait_until(predicate, timeout: float = 120.0, interval: float = 0.1, what: str = "condition",
               server: Server | None = None):
    """Poll `predicate` until it returns something truthy (event delivery is asynchronous).

    Generous by default: the suite must pass on a busy machine. A wait that times out says why:
    with `server`, how far each event consumer lags, what the indexer is busy with, and the tail
    of the server's log.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (diagnose(server) if server else ""))


def worker_idle(server: Server) -> bool:
    """The worker has delivered every event and has no index to refresh: nothing competes with what
    a benchmark times (its start-up walk over every wiki, indexing a wiki just pushed)."""
    from wikibot.hooks.post_receive import Publisher
    from wikibot.indexer.service import SearchUnavailable, remote_status

    queue = Publisher(server.data).queue
    if any(queue.cursor(name) < queue.last_id() for name in queue.consumers()):
        return False
    try:
        status = remote_status(server.data)
    except SearchUnavailable:  # the worker is still starting
        return False
    return not (status["running"] or status["waiting"] or status["retrying"])


def diagnose(server: Server, log_lines: int = 40) -> str:
    """Where the platform's background work stands, for a test's failure message."""
    from wikibot.hooks.post_receive import Publisher
    from wikibot.indexer.service import remote_status

    parts = []
    try:
        queue = Publisher(server.data).queue
        last = queue.last_id()
        lags = {name: last - queue.cursor(name) for name in queue.consumers()}
        parts.append(f"events queued: {last}; consumer lag: {lags}")
    except Exception as exc:  # a diagnosis never hides the failure it explains
        parts.append(f"queue unreadable: {exc}")
    try:
        parts.append(f"indexing: {remote_status(server.data)}")
    except Exception as exc:
        parts.append(f"indexing status unavailable: {exc}")
    try:
        tail = (server.data / "serve.log").read_text(errors="replace").splitlines()[-log_lines:]
        parts.append("server log (tail):\n  " + "\n  ".join(tail))
    except OSError as exc:
        parts.append(f"server log unreadable: {exc}")
    return "\n" + "\n".join(parts)


def events_of(server: Server, wiki: WikiName | str):
    """The changes queued for `wiki` ("OWNER/SLUG" or a WikiName), oldest first."""
    from wikibot.hooks.post_receive import Publisher

    return Publisher(server.data).queue.events_of(WikiName.parse(str(wiki)))


def commit_files(repo: Path, files: dict[str, bytes | str | None], message: str = "edit") -> str:
    """Write (or, for None, delete) files in a clone and commit them all; returns the new HEAD."""
    for name, content in files.items():
        path = repo / name
        if content is None:
            run_git("rm", "-q", name, cwd=repo)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    run_git("add", "-A", cwd=repo)
    run_git("commit", "-q", "-m", message, cwd=repo)
    return run_git("rev-parse", "HEAD", cwd=repo).stdout.strip()
