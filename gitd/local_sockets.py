"""Unix sockets between wikibot's own processes, kept inside the private data dir.

A socket in a shared folder (or Linux's abstract namespace) has a name another local account can
take first: it would then receive what was meant for the worker, or keep the worker from starting.
Inside `DATA/run/` (0700, checked to be ours) no other account can reach them. Socket addresses
are limited to 107 bytes; a longer path is reached through `/proc/self/fd/<fd of run/>`, a short
alias that still resolves inside the data dir.
"""
from __future__ import annotations

import os
import socket
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MAX_ADDRESS = 107  # bytes in a Unix socket address (sun_path holds 108 with the final NUL)


def run_dir(data_dir: Path) -> Path:
    return data_dir / "run"


def private_run_dir(data_dir: Path) -> Path:
    """Create (or take back) `run/` as a folder only this account can enter."""
    folder = run_dir(data_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise OSError(f"{folder} is not a folder of this account: remove it and start again")
    folder.chmod(0o700)
    return folder


@contextmanager
def socket_address(data_dir: Path, name: str) -> Iterator[str]:
    """The address to bind, connect or send to for socket `name` of this data dir."""
    path = run_dir(data_dir) / name
    if len(os.fsencode(path)) <= MAX_ADDRESS:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{name}"
    finally:
        os.close(fd)


def peer_uid(sock: socket.socket) -> int:
    """The account of the process at the other end of a connected socket."""
    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                          struct.calcsize("3i")))
    return uid
