"""Git smart-HTTP servers under benchmark, each a context manager yielding a clone URL.

Every server serves the repository it is given in place (pass a copy), binds only
127.0.0.1 on a free port, runs as a child process of the caller (bench_git measures
server CPU over the caller's descendants) and is stopped when the block exits, even on
error. All use gunicorn with the same worker settings so only the Git handling differs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from wikibot.testing.servers import free_port

WORKER_ARGS = ["-k", "gthread", "--workers", "2", "--threads", "4"]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def base_env(**extra: str) -> dict[str, str]:
    """A minimal environment: Otterwiki reads any of its config keys from os.environ, and
    gunicorn reads GUNICORN_CMD_ARGS, so nothing is inherited beyond what git needs."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, **extra}


def _wait_ready(proc: subprocess.Popen, probe_url: str, log: Path) -> None:
    """Poll until the server answers 200, failing fast (with its log) if it died."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with NO_PROXY.open(probe_url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:  # refused, HTTP error or timeout: not ready yet
            pass
        time.sleep(0.1)
    raise TimeoutError(f"no answer from {probe_url}:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Graceful stop (SIGTERM to the master); kill its process group if that hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group of the session started for it
        proc.wait()


@contextmanager
def _gunicorn(app: str, env: dict[str, str], workdir: Path, probe_path: str,
              extra_args: list[str]) -> Iterator[str]:
    """Run `gunicorn app` in its own session; yield http://127.0.0.1:PORT once it answers.

    gunicorn 27 opens a control socket in ~/.gunicorn/ by default and two instances
    collide, hence --no-control-socket. cwd is workdir so no ./gunicorn.conf.py is picked up.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = workdir / "gunicorn.log"
    cmd = [sys.executable, "-m", "gunicorn", *WORKER_ARGS, "--no-control-socket",
           "--bind", f"127.0.0.1:{port}", *extra_args, app]
    with log.open("wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log_file,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(proc, base + probe_path, log)
        yield base
    finally:
        _stop(proc)


def _allow_push_to_checked_out_branch(repo_path: Path) -> None:
    subprocess.run(["git", "-C", str(repo_path), "config", "receive.denyCurrentBranch",
                    "updateInstead"], check=True)


@contextmanager
def git_http_backend(repo_path: Path) -> Iterator[str]:
    """`git http-backend` as CGI (wikibot.testing.git_cgi) under gunicorn.

    URL: http://127.0.0.1:PORT/<repo dir name>; GIT_PROJECT_ROOT is the repo's parent.
    The repo keeps its worktree; receive.denyCurrentBranch=updateInstead lets pushes to
    main through, as Otterwiki configures its own repo.
    """
    _allow_push_to_checked_out_branch(repo_path)
    with tempfile.TemporaryDirectory(prefix="bench-http-backend-") as tmp:
        env = base_env(GIT_PROJECT_ROOT=str(repo_path.parent))
        probe = f"/{repo_path.name}/info/refs?service=git-upload-pack"
        with _gunicorn("wikibot.testing.git_cgi:app", env, Path(tmp), probe, []) as base:
            yield f"{base}/{repo_path.name}"


def _otterwiki_settings(repo_path: Path, workdir: Path) -> str:
    """Settings file for Otterwiki: anonymous read/write/upload, so that clone and push
    need no credentials (its git server checks READ for clone and UPLOAD for push)."""
    settings = {
        "REPOSITORY": str(repo_path),
        "SITE_NAME": "bench",
        "SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{workdir / 'otterwiki.db'}",
        "GIT_WEB_SERVER": True,
        "READ_ACCESS": "ANONYMOUS",
        "WRITE_ACCESS": "ANONYMOUS",
        "ATTACHMENT_ACCESS": "ANONYMOUS",
    }
    return "".join(f"{key} = {value!r}\n" for key, value in settings.items())


@contextmanager
def otterwiki_git_server(repo_path: Path) -> Iterator[str]:
    """Otterwiki 2.26.1's own smart-HTTP server (GIT_WEB_SERVER) under gunicorn.

    URL: http://127.0.0.1:PORT/.git (one wiki per server). --preload as Otterwiki creates
    its tables at import and several workers would race; at start it sets
    receive.denyCurrentBranch=updateInstead in the repo itself.
    """
    with tempfile.TemporaryDirectory(prefix="bench-otterwiki-") as tmp:
        workdir = Path(tmp)
        settings = workdir / "settings.cfg"
        settings.write_text(_otterwiki_settings(repo_path, workdir))
        env = base_env(OTTERWIKI_SETTINGS=str(settings))
        with _gunicorn("otterwiki.server:app", env, workdir,
                       "/.git/info/refs?service=git-upload-pack", ["--preload"]) as base:
            yield f"{base}/.git"


# ---------------------------------------------------------------------------------------
# wikibot: a fresh data folder served by `wikibot serve`, for bench_git and the other benchmarks.
# ---------------------------------------------------------------------------------------
def _wait_indexed(wikibot: Callable[..., str], wiki: str, timeout: float = 1800.0) -> None:
    """Measure git in steady state: wait until the worker has embedded the imported pages."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [line.split() for line in wikibot("index", "status").splitlines()[1:]]
        if any(row[0] == wiki and row[3] == "0" for row in rows):
            return
        time.sleep(1)
    raise TimeoutError(f"{wiki} was not indexed within {timeout}s")


@dataclass(frozen=True)
class Wikibot:
    """A fresh wikibot data folder with user `bench`, an empty wiki `bench/pages` and a write token."""
    workdir: Path
    port: int
    token: str
    env: dict[str, str]

    @property
    def repo(self) -> Path:
        return self.workdir / "var" / "repos" / "bench" / "pages"

    def cli(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "wikibot.cli", *args], env=self.env, cwd=self.workdir,
                              check=True, capture_output=True, text=True).stdout


@contextmanager
def wikibot_data(prefix: str = "bench-wikibot-") -> Iterator[Wikibot]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        workdir = Path(tmp)
        port = free_port()
        env = base_env(WIKIBOT_DATA=str(workdir / "var"), WIKIBOT_PORT=str(port),
                       WIKIBOT_WORKERS="2", WIKIBOT_THREADS="4")
        setup = Wikibot(workdir, port, "", env)
        setup.cli("init")
        setup.cli("user", "add", "bench", "--tier", "premium")
        setup.cli("wiki", "create", "bench/pages", "--template", "empty")
        token = setup.cli("token", "create", "bench", "--scope", "write").splitlines()[-1]
        yield replace(setup, token=token)


@contextmanager
def wikibot_serving(setup: Wikibot) -> Iterator[None]:
    """`wikibot serve` on the data folder, same gunicorn worker settings as the other servers."""
    log = setup.workdir / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "wikibot.cli", "serve"], env=setup.env, cwd=setup.workdir,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(proc, f"http://127.0.0.1:{setup.port}/", log)
        yield
    finally:
        _stop(proc)


@contextmanager
def wikibot_server(repo_path: Path) -> Iterator[str]:
    """`wikibot serve` on a fresh data dir, holding repo_path's history pushed into a new wiki.

    The history arrives the way a user's would (a push into an empty wiki), so the server's
    repository is what wikibot itself made of it.
    """
    with wikibot_data() as setup, wikibot_serving(setup):
        url = f"http://bench:{setup.token}@127.0.0.1:{setup.port}/bench/pages.git"
        subprocess.run(["git", "-C", str(repo_path), "push", "-q", url, "main"], check=True,
                       env=base_env(GIT_TERMINAL_PROMPT="0"), capture_output=True)
        _wait_indexed(setup.cli, "bench/pages")
        yield url


SERVERS = {
    "http-backend": git_http_backend,
    "otterwiki": otterwiki_git_server,
    "wikibot": wikibot_server,
}
