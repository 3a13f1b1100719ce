"""`wikibot serve`: run every long-lived process of the platform in the foreground, supervised.

gunicorn serves `wikibot.app`; the worker delivers change events to consumers. If one process
exits, the others are stopped too, so a half-running platform never hides behind a live port.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from wikibot.config import Config


@dataclass(frozen=True)
class Process:
    name: str
    argv: list[str]


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
        "--preload",
        "wikibot.app:create_app()",
    ]
    return Process("web", argv)


def worker_process() -> Process:
    return Process("worker", [sys.executable, "-m", "wikibot.cli", "worker"])


def child_env(config: Config) -> dict[str, str]:
    """Children resolve the same config: pass the settings that may have come from flags."""
    return {
        **os.environ,
        "WIKIBOT_DATA": str(config.data_dir),
        "WIKIBOT_HOST": config.host,
        "WIKIBOT_PORT": str(config.port),
        "WIKIBOT_BASE_URL": config.public_url,
    }


def serve(config: Config) -> int:
    """Start all processes and wait; Ctrl-C or SIGTERM stops them all. Returns an exit code."""
    env = child_env(config)
    procs = [(p, subprocess.Popen(p.argv, env=env)) for p in (worker_process(), gunicorn_process(config))]
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"wikibot serving on {config.public_url} (data in {config.data_dir}); Ctrl-C stops",
          file=sys.stderr, flush=True)
    code = 0
    while not stopping:
        for p, proc in procs:
            if proc.poll() is not None:
                print(f"wikibot: {p.name} process exited with code {proc.returncode}; stopping",
                      file=sys.stderr, flush=True)
                code = proc.returncode or 1
                stopping = True
        time.sleep(0.2)
    for _, proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for _, proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return code
