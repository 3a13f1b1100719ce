"""How long a tool call may still run: the bridge gives each request a deadline, tools check it.

Tools run in threads that nothing can interrupt. When the bridge gives up on a request (504), the
tool behind it would go on using a thread and CPU, and a write could still commit although its
caller was told it failed. So the bridge puts a `Deadline` in the request state, and tools call
`check` between expensive steps and before they commit: past the deadline, the work stops there.
What cannot be checked mid-way ends at the deadline too: a write's wait for the wiki's lock, and a
git diff (killed).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from fastmcp.exceptions import ToolError

from wikibot.gitd.repository import ReadTimedOut, Repository

log = logging.getLogger(__name__)


class OutOfTime(ToolError):
    """The request this work serves has timed out; nothing after the failed check was done."""


@dataclass(frozen=True)
class Deadline:
    at: float  # time.monotonic() when the request's answer is due
    request: str  # what the request was, for the log

    @classmethod
    def after(cls, seconds: float, request: str) -> Deadline:
        return cls(time.monotonic() + seconds, request)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def check(self, step: str = "going on") -> None:
        """Raise OutOfTime once the deadline has passed: a checkpoint before `step`."""
        if self.remaining() <= 0:
            self.stop(step)

    def stop(self, step: str) -> NoReturn:
        """Raise OutOfTime: the request is over (a wait or a git run was given up at the deadline)."""
        log.warning("%s ran out of time (%.1f s late); its tool stopped before %s", self.request,
                    -self.remaining(), step)
        raise OutOfTime(f"this request ran out of time and was stopped before {step}; nothing after that was "
                        "done. Retry with a smaller request.")


def diff_until(deadline: Deadline | None, repo: Repository, old: str | None, new: str,
               paths: Sequence[str] | None = None) -> str:
    """`repo.diff`, stopped at the deadline: git is killed then (a diff of two big, very different
    pages can take minutes) and the tool stops with OutOfTime."""
    if deadline is None:
        return repo.diff(old, new, paths)
    deadline.check("diffing")
    try:
        text = repo.diff(old, new, paths, timeout=deadline.remaining())
    except ReadTimedOut:
        deadline.stop("answering with the diff")
    deadline.check("answering with the diff")
    return text
