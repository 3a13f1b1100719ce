"""Wake the worker when an event is queued, so no consumer polls.

A datagram on a Linux abstract-namespace socket named after the data dir: no file to clean up,
and sending never blocks or fails a write (if the worker is down, the event waits in the queue).
"""
from __future__ import annotations

import hashlib
import socket
from pathlib import Path


def address(data_dir: Path) -> str:
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:24]
    return f"\0wikibot-wake-{digest}"


def wake(data_dir: Path) -> None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            s.sendto(b"1", address(data_dir))
    except OSError:
        pass  # no worker listening: it reads the queue when it starts


class WakeListener:
    """The worker's end: `wait(timeout)` returns True when woken."""

    def __init__(self, data_dir: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address(data_dir))  # fails if another worker serves this data dir

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
