"""Advisory file locks that hold across processes (gunicorn workers, the worker, CLI calls).

A lock file may be removed, so that a deleted wiki leaves none behind. That stays correct under
one rule and one check:
- only a holder removes the file, as the last thing it does before releasing (`HeldLock.remove`);
- a taker, once its flock is granted, checks that the file it locked is still the one at the path
  (same device and inode) and otherwise starts over on the file now there.
So at any moment only the holder of the file at the path counts as holding the lock: one that waited
on a removed file wakes up to find it replaced and queues for the new one. Removing the emptied
folder is safe as well: rmdir removes only an empty folder, and a taker whose folder vanished between
making it and opening the file makes it again.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wikibot.errors import Unavailable

POLL_SECONDS = 0.05


class LockTimeout(Unavailable, TimeoutError):
    """The lock stayed taken for the whole wait; nothing was done under it."""


class HeldLock:
    """The lock being held; `remove()` asks for the file (and its folder, once empty) to go on release."""

    def __init__(self, path: Path, shared: bool) -> None:
        self.path = path
        self.shared = shared
        self.removing = False

    def remove(self) -> None:
        if self.shared:
            raise ValueError("only an exclusive holder may remove a lock file")
        self.removing = True


@contextmanager
def file_lock(path: Path, shared: bool = False, timeout: float | None = None) -> Iterator[HeldLock]:
    """Hold an flock on `path` (created if needed) for the duration of the block.

    flock locks belong to the open file description, so two threads of one process that each open
    the file exclude each other just as two processes do. `timeout` None waits as long as it takes;
    otherwise the lock is polled (a blocking flock cannot be given up) and LockTimeout raised once
    `timeout` seconds passed, so a caller whose request is over stops waiting.
    """
    until = None if timeout is None else time.monotonic() + timeout
    fd = _take(path, fcntl.LOCK_SH if shared else fcntl.LOCK_EX, until, timeout)
    held = HeldLock(path, shared)
    try:
        yield held
    finally:
        if held.removing:
            path.unlink(missing_ok=True)  # still held: a waiter on this file will see it gone
        os.close(fd)  # closing releases the lock
        if held.removing:
            remove_empty_folder(path.parent)


def _take(path: Path, mode: int, until: float | None, timeout: float | None) -> int:
    """An fd of the file at `path`, locked, that is still the file at `path` (see the module's docstring)."""
    while True:
        make_folder(path.parent)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            continue  # the folder was removed (emptied by a deletion) between making it and opening
        try:
            if until is None:
                fcntl.flock(fd, mode)
            else:
                _poll(fd, mode, path, until, timeout or 0.0)
            if _is_at(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its last holder removed it: lock the file there now


def _is_at(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def make_folder(folder: Path) -> None:
    """`folder.mkdir(parents=True, exist_ok=True)`, also when it is removed while made: pathlib raises
    FileExistsError if the folder vanishes between its mkdir (finding it there) and its check."""
    while True:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return
        except FileExistsError:
            if folder.exists():
                raise  # a file is in the way
            continue


def remove_tree(folder: Path) -> None:
    """Remove `folder` with everything in it, then its parent once empty (an owner's folder)."""
    shutil.rmtree(folder, ignore_errors=True)
    remove_empty_folder(folder.parent)


def remove_empty_folder(folder: Path) -> bool:
    """Remove `folder` if it is empty; True if it went. Safe against a creator racing it as long
    as creators make the folder again when it vanished before their entry was in it."""
    try:
        folder.rmdir()
        return True
    except OSError:
        return False  # not empty (another entry is there) or gone already


def _poll(fd: int, mode: int, path: Path, until: float, timeout: float) -> None:
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            left = until - time.monotonic()
            if left <= 0:
                raise LockTimeout(f"{path.name} stayed locked for {timeout:.1f} s") from None
            time.sleep(min(POLL_SECONDS, left))
