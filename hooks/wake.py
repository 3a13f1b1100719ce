"""Wake the worker when an event is queued, so no consumer polls.

A datagram to the worker's socket in the private data dir (`run/wake.sock`): sending never blocks
or fails a write (if the worker is down, the event waits in the queue). One worker per data dir:
it holds `run/worker.lock` while it listens, so a socket left by a worker that died is replaced,
and no other account can take the name first (the folder is ours alone).
"""
from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from wikibot.errors import Unavailable
from wikibot.gitd.local_sockets import private_run_dir, run_dir, socket_address

SOCKET_NAME = "wake.sock"


class WorkerRunning(Unavailable):
    """Another worker already serves this data dir."""


def wake(data_dir: Path) -> None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s, socket_address(data_dir, SOCKET_NAME) as address:
            s.setblocking(False)
            s.sendto(b"1", address)
    except OSError:
        pass  # no worker listening: it reads the queue when it starts


class WakeListener:
    """The worker's end: `wait(timeout)` returns True when woken."""

    def __init__(self, data_dir: Path) -> None:
        private_run_dir(data_dir)
        self._lock = os.open(run_dir(data_dir) / "worker.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise WorkerRunning(f"another worker is already running for {data_dir}") from None
        (run_dir(data_dir) / SOCKET_NAME).unlink(missing_ok=True)  # left by a worker that died
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        with socket_address(data_dir, SOCKET_NAME) as address:
            self.sock.bind(address)

    def wait(self, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            self.sock.recv(16)
        except TimeoutError:
            return False
        self.sock.setblocking(False)
        try:  # coalesce a burst of wake-ups into one
            while self.sock.recv(16):
                pass
        except BlockingIOError:
            pass
        return True

    def close(self) -> None:
        self.sock.close()
        os.close(self._lock)
