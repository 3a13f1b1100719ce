"""`wikibot serve`: run every long-lived process of the platform in the foreground, supervised.

gunicorn serves `wikibot.app`; the worker delivers change events to consumers. A worker that dies
is restarted (events wait durably in the queue meanwhile); if gunicorn exits, everything stops,
so a half-running platform never hides behind a live port. Ctrl-C or SIGTERM stops it all.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from wikibot.access_log import ACCESS_FORMAT
from wikibot.config import Config

RESTART_DELAYS = (0.5, 1, 2, 5, 10, 30)  # a crash-looping worker backs off to one try per 30 s


@dataclass(frozen=True)
class Process:
    name: str
    argv: list[str]
    restart: bool  # restarted when it exits, rather than stopping the platform


def gunicorn_process(config: Config) -> Process:
    argv = [
        sys.executable, "-m", "gunicorn",
        "--bind", f"{config.host}:{config.port}",
        "--worker-class", "gthread",
        "--workers", str(config.workers),
        "--threads", str(config.threads),
        "--timeout", str(config.timeout),
        "--graceful-timeout", "10",
        "--no-control-socket",  # two instances would share ~/.gunicorn/gunicorn.ctl otherwise
        "--access-logfile", "-",
        "--access-logformat", ACCESS_FORMAT,
        "--logger-class", "wikibot.access_log.GunicornLogger",  # tokens never reach a log line
        "--preload",
        "wikibot.app:create_app()",
    ]
    return Process("web", argv, restart=False)


def worker_process() -> Process:
    return Process("worker", [sys.executable, "-m", "wikibot.cli", "worker"], restart=True)


def child_env(config: Config) -> dict[str, str]:
    """Children resolve the same config: pass the settings that may have come from flags."""
    return {
        **os.environ,
        "WIKIBOT_DATA": str(config.data_dir),
        "WIKIBOT_HOST": config.host,
        "WIKIBOT_PORT": str(config.port),
        "WIKIBOT_BASE_URL": config.public_url,
    }


def _say(message: str) -> None:
    print(f"wikibot: {message}", file=sys.stderr, flush=True)


def serve(config: Config) -> int:
    """Start all processes and supervise them; returns an exit code."""
    env = child_env(config)
    specs = [worker_process(), gunicorn_process(config)]
    running = {p.name: subprocess.Popen(p.argv, env=env) for p in specs}
    restarts = {p.name: 0 for p in specs}
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    _say(f"serving on {config.public_url} (data in {config.data_dir}); Ctrl-C stops")
    code = 0
    while not stopping:
        for spec in specs:
            proc = running[spec.name]
            if proc.poll() is None:
                continue
            if not spec.restart:
                _say(f"{spec.name} process exited with code {proc.returncode}; stopping")
                code, stopping = proc.returncode or 1, True
                break
            delay = RESTART_DELAYS[min(restarts[spec.name], len(RESTART_DELAYS) - 1)]
            _say(f"{spec.name} process exited with code {proc.returncode}; restarting in {delay}s")
            time.sleep(delay)
            restarts[spec.name] += 1
            running[spec.name] = subprocess.Popen(spec.argv, env=env)
        time.sleep(0.2)
    for proc in running.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in running.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return code
