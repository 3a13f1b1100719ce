"""CPU time of this process's descendants, read from /proc: the benchmarks' measure of server work.

A benchmark starts its servers as child processes, so their process trees are its descendants.
"""
from __future__ import annotations

import os
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (which may contain spaces)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2:].split()


def descendants(root: int) -> set[int]:
    """Pids of all live descendants of root."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(_stat_fields(int(entry))[1]), []).append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                pass
    found, todo = set(), [root]
    while todo:
        kids = children.get(todo.pop(), [])
        found.update(kids)
        todo.extend(kids)
    return found


def cpu_seconds(pids: set[int]) -> float:
    """utime+stime of the processes plus cutime+cstime of their reaped children (the
    git processes a server spawns per request are counted once their parent waits)."""
    ticks = 0
    for pid in pids:
        try:
            ticks += sum(int(v) for v in _stat_fields(pid)[11:15])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return ticks / CLOCK_TICKS


def quiesce(timeout: float = 30.0) -> None:
    """Wait until the servers use no CPU for a while: each operation is timed on an idle server.

    wikibot's worker embeds each pushed page after the push has returned; without this, that
    background work would land on the next timed push on a 2-core machine.
    """
    deadline = time.monotonic() + timeout
    previous = cpu_seconds(descendants(os.getpid()))
    while time.monotonic() < deadline:
        time.sleep(0.15)
        now = cpu_seconds(descendants(os.getpid()))
        if now == previous:
            return
        previous = now
