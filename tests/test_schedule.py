"""The indexing scheduler's turn-taking, in process: jobs here are scripted stand-ins whose steps
record what ran, so the order and the limits are asserted exactly (the real refresh and model are
exercised end to end in test_indexing_fairness.py)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from wikibot.gitd.names import WikiName
from wikibot.hooks.dispatcher import RetryPolicy
from wikibot.indexer import schedule
from wikibot.indexer.schedule import RefreshScheduler

w = WikiName.parse


@dataclass
class ScriptedJob:
    wiki: WikiName
    steps: int
    log: list[WikiName]
    fail: bool = False  # its first step raises
    taken: int = 0

    @property
    def position(self) -> str:
        return f"{self.taken}/{self.steps}"

    def step(self, slice_chunks: int) -> bool:
        self.taken += 1
        if self.fail:
            self.fail = False
            raise RuntimeError(f"{self.wiki} broke")
        self.log.append(self.wiki)
        return self.taken >= self.steps


@dataclass
class ScriptedIndexer:
    sizes: dict[WikiName, int]
    failures: dict[WikiName, int] = field(default_factory=dict)  # wiki -> how many of its next jobs fail
    log: list[WikiName] = field(default_factory=list)
    started: list[WikiName] = field(default_factory=list)
    on_start: object = None  # called inside start(), as a request racing it would be

    def start(self, wiki: WikiName) -> ScriptedJob:
        self.started.append(wiki)
        if callable(self.on_start):
            self.on_start(wiki)
        fail = self.failures.get(wiki, 0) > 0
        if fail:
            self.failures[wiki] -= 1
        return ScriptedJob(wiki, self.sizes[wiki], self.log, fail)


def drain(scheduler: RefreshScheduler, limit: int = 10_000) -> None:
    """Run turns until nothing is left (no thread: the order is the scheduler's alone)."""
    stop = threading.Event()
    for _ in range(limit):
        wiki = scheduler._next(stop, idle_wait=0)
        if wiki is None:
            if not scheduler.status().waiting and not scheduler.status().running:
                return
            continue
        scheduler._turn(wiki)
    raise AssertionError(f"still busy after {limit} turns: {scheduler.status()}")


def test_a_small_change_waits_one_slice_of_a_big_refresh_not_all_of_it():
    indexer = ScriptedIndexer({w("a/big"): 50, w("b/small"): 1})
    scheduler = RefreshScheduler(indexer)
    scheduler.request(w("a/big"))
    scheduler._turn(scheduler._next(threading.Event(), 0))  # the import is under way
    scheduler.request(w("b/small"))
    drain(scheduler)
    # after the request, at most the one slice of the import already in line runs before it
    assert indexer.log.index(w("b/small")) <= 2, indexer.log[:5]
    assert indexer.log.count(w("a/big")) == 50


def test_at_most_a_few_refreshes_hold_an_index_at_once(monkeypatch):
    monkeypatch.setattr(schedule, "MAX_ACTIVE_JOBS", 3)
    wikis = {w(f"u/w{i}"): 5 for i in range(8)}
    indexer = ScriptedIndexer(wikis)
    scheduler = RefreshScheduler(indexer)
    for wiki in wikis:
        scheduler.request(wiki)
    peak = 0
    stop = threading.Event()
    while (wiki := scheduler._next(stop, idle_wait=0)) is not None:
        scheduler._turn(wiki)
        peak = max(peak, len(scheduler.status().running))
    assert peak == 3 and sorted(indexer.started) == sorted(wikis) and len(indexer.log) == 40


def test_a_change_racing_the_start_of_its_refresh_gets_one_more_refresh_and_one_place():
    indexer = ScriptedIndexer({w("a/w"): 3})
    scheduler = RefreshScheduler(indexer)
    indexer.on_start = lambda wiki: (scheduler.request(wiki), setattr(indexer, "on_start", None))
    scheduler.request(w("a/w"))
    stop = threading.Event()
    scheduler._turn(scheduler._next(stop, 0))
    assert list(scheduler._turns) == [w("a/w")], "the wiki holds one place in the rotation"
    drain(scheduler)
    assert indexer.started == [w("a/w"), w("a/w")], "the change that raced the start is refreshed after it"


def test_a_failing_refresh_backs_off_without_holding_up_others_and_recovers():
    indexer = ScriptedIndexer({w("a/flaky"): 1, w("b/fine"): 1}, failures={w("a/flaky"): 2})
    scheduler = RefreshScheduler(indexer, RetryPolicy(max_attempts=5, first_delay=0.01, max_delay=0.01))
    scheduler.request(w("a/flaky"))
    scheduler.request(w("b/fine"))
    drain(scheduler)
    assert indexer.log == [w("b/fine"), w("a/flaky")] and indexer.started.count(w("a/flaky")) == 3


def test_a_refresh_that_keeps_failing_gives_up_until_the_next_change(caplog):
    indexer = ScriptedIndexer({w("a/broken"): 1}, failures={w("a/broken"): 99})
    scheduler = RefreshScheduler(indexer, RetryPolicy(max_attempts=3, first_delay=0.0, max_delay=0.0))
    scheduler.request(w("a/broken"))
    drain(scheduler)
    assert indexer.started == [w("a/broken")] * 3 and "failed 3 times" in caplog.text
    scheduler.request(w("a/broken"), changed=False)  # a reader or the periodic check: one more round
    indexer.failures[w("a/broken")] = 0
    drain(scheduler)
    assert indexer.log == [w("a/broken")]


@pytest.mark.parametrize("changed", [True, False])
def test_a_reader_asking_again_does_not_reset_the_backoff(changed):
    indexer = ScriptedIndexer({w("a/w"): 1}, failures={w("a/w"): 1})
    scheduler = RefreshScheduler(indexer, RetryPolicy(max_attempts=5, first_delay=60, max_delay=60))
    scheduler.request(w("a/w"))
    scheduler._turn(scheduler._next(threading.Event(), 0))
    scheduler.request(w("a/w"), changed=changed)
    assert (scheduler._next(threading.Event(), 0) == w("a/w")) is changed
