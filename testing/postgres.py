"""A throwaway PostgreSQL server for tests and benchmarks: `initdb` and `pg_ctl` in a temp dir.

It listens on a free 127.0.0.1 port only (its unix socket stays in the temp dir), with fsync off:
nothing in it outlives the run. `create_database()` hands each test a database of its own, so no
state is shared. initdb refuses to run as root, and tests here run as root: the server then runs as
the `postgres` account (Debian's package creates it), in a temp dir that account owns.
"""
from __future__ import annotations

import atexit
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

from wikibot.config import Config, load_config
from wikibot.gitd.store import Store
from wikibot.testing.servers import free_port

SERVER_ACCOUNT = "postgres"
START_TIMEOUT = 60  # seconds
INSTALL_HINT = ("install PostgreSQL: Debian 'apt-get install -y postgresql' (its initdb is in "
                "/usr/lib/postgresql/*/bin), or put initdb and pg_ctl on PATH")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be run here; the message says what to install or why it did not start."""


def bin_dir() -> Path:
    """Where initdb and pg_ctl are: on PATH, else Debian's newest /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not candidates:
        raise PostgresUnavailable(f"initdb was not found, so the PostgreSQL tests cannot run: {INSTALL_HINT}")
    return Path(candidates[-1]).parent


@dataclass
class PostgresServer:
    """A running server; `stop()` ends it and removes its files."""

    root: Path
    port: int
    password: str
    bindir: Path
    started_in: float  # seconds initdb and the start took
    _names: count = field(default_factory=lambda: count(1))

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; returns its URL."""
        import psycopg

        name = f"wikibot_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.data.exists():
            _run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "stop", "-m", "immediate", "-w"], check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    @classmethod
    def start(cls, root: Path | None = None, timeout: float = START_TIMEOUT) -> PostgresServer:
        """initdb a cluster in `root` (default: a new temp dir; `stop()` removes it) and start it;
        PostgresUnavailable says why if it cannot."""
        began = time.monotonic()
        bindir = bin_dir()
        root = Path(tempfile.mkdtemp(prefix="wikibot-pg-")) if root is None else root
        root.mkdir(parents=True, exist_ok=True)
        account = _as_server_account()
        if account:
            os.chown(root, account["user"], account["group"])
        password = secrets.token_hex(12)
        try:
            pwfile = root / "pwfile"
            pwfile.write_text(password + "\n")
            if account:
                os.chown(pwfile, account["user"], account["group"])
            _run([str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--pwfile", str(pwfile),
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync",
                  "--no-instructions"])
            pwfile.unlink()
            log = root / "server.log"
            for _ in range(3):  # the free port may be taken before the server binds it
                port = free_port()
                options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off "
                           "-c full_page_writes=off -c max_connections=400")
                proc = _run([str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(log), "-o", options,
                             "-w", "-t", str(int(timeout)), "start"], check=False, timeout=timeout + 10)
                if proc.returncode == 0:
                    return cls(root, port, password, bindir, time.monotonic() - began)
                if "could not bind" not in _tail(log):
                    break
            said = proc.stderr.strip() or proc.stdout.strip()
            raise PostgresUnavailable(f"the PostgreSQL test server did not start (pg_ctl, waiting up to "
                                      f"{timeout:.0f}s: {said}); the end of its log:\n{_tail(log)}")
        except BaseException:
            if (root / "data" / "postmaster.pid").exists():  # started after pg_ctl gave up waiting
                _run([str(bindir / "pg_ctl"), "-D", str(root / "data"), "stop", "-m", "immediate"], check=False)
            shutil.rmtree(root, ignore_errors=True)
            raise


def _as_server_account() -> dict:
    """Popen arguments that run a server program as the `postgres` account when we are root."""
    if os.geteuid() != 0:
        return {}
    try:
        account = pwd.getpwnam(SERVER_ACCOUNT)
    except KeyError:
        raise PostgresUnavailable(f"running as root, and initdb refuses root, but there is no {SERVER_ACCOUNT!r} "
                                  f"account to run the server as: {INSTALL_HINT}") from None
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": [],
            "env": {**os.environ, "HOME": str(account.pw_dir), "USER": SERVER_ACCOUNT}}


def _run(cmd: list[str], check: bool = True, timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          cwd="/", **_as_server_account())
    if check and proc.returncode != 0:
        raise PostgresUnavailable(f"{Path(cmd[0]).name} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no server log)"


_shared: PostgresServer | None = None


def shared_postgres() -> PostgresServer:
    """One server for the whole test process, started on first use and stopped when the process exits."""
    global _shared
    if _shared is None:
        _shared = PostgresServer.start()
        owner = os.getpid()
        atexit.register(lambda: os.getpid() == owner and _shared.stop())  # not from a forked child
    return _shared


@dataclass
class StoreBackend:
    """One backend the store contract suite runs against: `location` is a TinyDB file or a PostgreSQL
    URL (a database of this test's own), which a child process can open again with `open_location`."""

    name: str
    location: str
    opened: list[Store] = field(default_factory=list)

    @property
    def is_postgres(self) -> bool:
        return self.name == "postgres"

    def open(self) -> Store:
        store = open_location(self.location)
        self.opened.append(store)
        return store

    def config(self, data_dir: Path) -> Config:
        """A platform config on this backend (PostgreSQL through WIKIBOT_STORE_URL, as an admin would)."""
        return load_config(data_dir, environ={"WIKIBOT_STORE_URL": self.location} if self.is_postgres else {})

    def keep(self, store: Store) -> Store:
        """Close `store` (a Core's, say) with the backend's own when the test ends."""
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            if hasattr(store, "close"):  # PostgresStore's pool; TinyStore holds nothing open
                store.close()


def postgres_backend(server: PostgresServer) -> StoreBackend:
    """A PostgreSQL backend on a new database of `server`, its schema created (as `wikibot init` does)."""
    from wikibot.gitd.store import open_postgres

    url = server.create_database()
    store = open_postgres(url)
    store.migrate()
    store.close()  # type: ignore[attr-defined]
    return StoreBackend("postgres", url)


def open_location(location: str) -> Store:
    """The store at a TinyDB path or a PostgreSQL URL."""
    from wikibot.gitd.store import open_postgres
    from wikibot.gitd.tiny_store import TinyStore

    return open_postgres(location) if "://" in location else TinyStore(Path(location))
