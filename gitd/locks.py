"""Advisory file locks that hold across processes (gunicorn workers, the worker, CLI calls)."""
from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wikibot.errors import Unavailable

POLL_SECONDS = 0.05


class LockTimeout(Unavailable, TimeoutError):
    """The lock stayed taken for the whole wait; nothing was done under it."""


@contextmanager
def file_lock(path: Path, shared: bool = False, timeout: float | None = None) -> Iterator[None]:
    """Hold an flock on `path` (created if needed) for the duration of the block.

    flock locks belong to the open file description, so two threads of one process that each open
    the file exclude each other just as two processes do. `timeout` None waits as long as it takes;
    otherwise the lock is polled (a blocking flock cannot be given up) and LockTimeout raised once
    `timeout` seconds passed, so a caller whose request is over stops waiting.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if timeout is None:
            fcntl.flock(fd, mode)
        else:
            _poll(fd, mode, path, timeout)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _poll(fd: int, mode: int, path: Path, timeout: float) -> None:
    until = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            left = until - time.monotonic()
            if left <= 0:
                raise LockTimeout(f"{path.name} stayed locked for {timeout:.1f} s") from None
            time.sleep(min(POLL_SECONDS, left))
