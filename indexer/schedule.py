"""Fair indexing: every wiki's refresh runs on one thread (one model in memory), a slice at a time.

Wikis waiting for a refresh take turns, round-robin: a one-page change to one wiki waits for at
most one slice of another wiki's 5,000-page import, never for the whole import. A change that
arrives while its wiki's refresh is running is picked up by a fresh refresh right after it, from
the index it saved. At most `MAX_ACTIVE_JOBS` refreshes are under way at once (each holds its
wiki's index in memory): after a restart with every index stale, the others wait their turn
without loading anything. A failed refresh is retried with backoff, never blocking the other wikis; after
`max_attempts` it waits for the next change or the periodic reconcile (the index is rebuildable,
and `indexed_sha..HEAD` heals whatever was missed).
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass

from wikibot.gitd.change import MAIN, Change
from wikibot.gitd.names import WikiName
from wikibot.hooks.dispatcher import RetryPolicy

from .refresh import SLICE_CHUNKS, Indexer, RefreshJob

log = logging.getLogger(__name__)
MAX_ACTIVE_JOBS = 4  # refreshes under way at once: each holds its wiki's whole index in memory


@dataclass(frozen=True)
class SchedulerStatus:
    """What is waiting, for diagnostics (a test that timed out says where indexing stands)."""

    running: dict[str, str]  # wiki -> "done/total pages"
    waiting: list[str]
    retrying: dict[str, int]  # wiki -> failed attempts so far


class RefreshScheduler:
    def __init__(self, indexer: Indexer, retry: RetryPolicy | None = None) -> None:
        self.indexer = indexer
        self.retry = retry or RetryPolicy()
        self._turns: deque[WikiName] = deque()  # wikis with work, in the order they get their next slice
        self._jobs: dict[WikiName, RefreshJob] = {}
        self._again: set[WikiName] = set()  # changed while their job ran: refresh once more after it
        self._failures: dict[WikiName, tuple[int, float]] = {}  # wiki -> (attempts, not before)
        self._current: WikiName | None = None  # the wiki whose slice is running now
        self._cond = threading.Condition()

    def __call__(self, change: Change) -> None:
        """Event consumer: a change to a wiki's main branch asks for its refresh (returns at once)."""
        if change.ref == MAIN:
            self.request(change.wiki)

    def request(self, wiki: WikiName, *, changed: bool = True) -> None:
        """Refresh `wiki` soon. `changed`: it has a new commit, which deserves a new try at once even
        if its refresh was failing; a reader missing an index or the periodic check pass False."""
        with self._cond:
            if changed:
                self._failures.pop(wiki, None)
            if wiki in self._jobs or wiki == self._current:
                self._again.add(wiki)  # the running refresh may have read HEAD already: one more after it
            elif wiki not in self._turns:
                self._turns.append(wiki)
            self._cond.notify_all()

    def status(self) -> SchedulerStatus:
        with self._cond:
            running = {str(w): j.position for w, j in self._jobs.items()}
            return SchedulerStatus(running, [str(w) for w in self._turns if w not in self._jobs],
                                   {str(w): n for w, (n, _) in self._failures.items()})

    def run(self, stop: threading.Event) -> None:
        """Serve refreshes until `stop` is set."""
        while not stop.is_set():
            wiki = self._next(stop)
            if wiki is not None:
                self._turn(wiki)

    def _next(self, stop: threading.Event, idle_wait: float = 1.0) -> WikiName | None:
        """The next wiki whose turn it is: not backing off, and either under way or allowed to
        start (fewer than `MAX_ACTIVE_JOBS` under way). None after waiting a while."""
        with self._cond:
            now = time.monotonic()
            for _ in range(len(self._turns)):
                wiki = self._turns.popleft()
                backing_off = self._failures.get(wiki, (0, 0.0))[1] > now
                may_run = wiki in self._jobs or len(self._jobs) < MAX_ACTIVE_JOBS
                if not backing_off and may_run:
                    self._current = wiki
                    return wiki
                self._turns.append(wiki)
            if not stop.is_set():
                self._cond.wait(idle_wait)
            return None

    def _turn(self, wiki: WikiName) -> None:
        """One slice of `wiki`'s refresh; then it queues again behind the others."""
        try:
            job = self._jobs.get(wiki)
            if job is None:
                job = self.indexer.start(wiki)
                with self._cond:
                    self._jobs[wiki] = job
            # small slices even when no other wiki waits: a change may arrive at any moment, and
            # a model batch of 32 embeds as fast per chunk as larger calls do
            done = job.step(SLICE_CHUNKS)
        except Exception as exc:
            self._failed(wiki, exc)
            return
        finally:
            with self._cond:
                self._current = None
        with self._cond:
            if done:
                del self._jobs[wiki]
                self._failures.pop(wiki, None)
                if wiki not in self._again:
                    return
                self._again.discard(wiki)
            if wiki not in self._turns:
                self._turns.append(wiki)

    def _failed(self, wiki: WikiName, exc: Exception) -> None:
        error = "".join(traceback.format_exception_only(exc)).strip()
        with self._cond:
            self._jobs.pop(wiki, None)
            changed_since = wiki in self._again  # a new change deserves a fresh count of attempts
            self._again.discard(wiki)
            attempts = (0 if changed_since else self._failures.get(wiki, (0, 0.0))[0]) + 1
            if attempts >= self.retry.max_attempts:
                self._failures.pop(wiki, None)
                log.error("indexing %s failed %d times, last: %s; retried at its next change or reconcile",
                          wiki, attempts, error)
                return
            delay = self.retry.delay(attempts)
            self._failures[wiki] = (attempts, time.monotonic() + delay)
            if wiki not in self._turns:
                self._turns.append(wiki)
        log.warning("indexing %s failed (attempt %d), retrying in %.1fs: %s", wiki, attempts, delay, error,
                    exc_info=exc)
