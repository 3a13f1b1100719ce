"""Hand queued events to consumers, off the request path, in the long-lived worker.

Each consumer has its own cursor and thread and sees events in queue order. A failing handler is
retried with exponential backoff; after `max_attempts` the event goes to the consumer's dead
letters and the consumer moves on. Consumers must be idempotent: delivery is at-least-once. An
event forgotten while it is being retried (its wiki was deleted: see queue.py) is not tried again.
"""
from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from wikibot.config import ConfigError
from wikibot.gitd.change import Change

from .queue import EventQueue

log = logging.getLogger(__name__)
Handler = Callable[[Change], None]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    first_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.first_delay * 2 ** (attempt - 1))


class Dispatcher:
    def __init__(self, queue: EventQueue, retry: RetryPolicy = RetryPolicy(), batch: int = 100) -> None:
        self.queue = queue
        self.retry = retry
        self.batch = batch
        self.consumers: dict[str, Handler] = {}
        self._new_events = threading.Condition()
        self._generation = 0

    def subscribe(self, name: str, handler: Handler) -> None:
        if name in self.consumers:
            raise ConfigError(f"consumer {name!r} is already subscribed: give each consumer its own name")
        self.consumers[name] = handler

    def notify(self) -> None:
        """New events were queued: wake every consumer waiting for them."""
        with self._new_events:
            self._generation += 1
            self._new_events.notify_all()

    def start(self, stop: threading.Event) -> list[threading.Thread]:
        threads = [threading.Thread(target=self.run_consumer, args=(name, stop), name=f"consumer-{name}", daemon=True)
                   for name in self.consumers]
        for t in threads:
            t.start()
        return threads

    def run_consumer(self, name: str, stop: threading.Event, idle_wait: float = 30.0) -> None:
        """Deliver events to `name` until `stop` is set."""
        while not stop.is_set():
            with self._new_events:
                seen = self._generation
            if not self.drain(name, stop):
                with self._new_events:
                    if self._generation == seen and not stop.is_set():
                        self._new_events.wait(idle_wait)

    def drain(self, name: str, stop: threading.Event | None = None) -> int:
        """Deliver every event past `name`'s cursor; returns how many were handled."""
        handler = self.consumers[name]
        handled = 0
        while stop is None or not stop.is_set():
            events = self.queue.read(self.queue.cursor(name), self.batch)
            if not events:
                break
            for event in events:
                if stop is not None and stop.is_set():
                    return handled
                if not self._deliver(name, handler, event, stop):
                    return handled  # stopping mid-retry: the event stays queued
                assert event.id is not None
                self.queue.set_cursor(name, event.id)
                handled += 1
        return handled

    def _deliver(self, name: str, handler: Handler, event: Change, stop: threading.Event | None) -> bool:
        """True once the event is handled or buried; False when stopping between retries."""
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                handler(event)
                return True
            except Exception as exc:
                error = "".join(traceback.format_exception_only(exc)).strip()
                if attempt == self.retry.max_attempts:
                    log.error("consumer %s gave up on event %s after %d attempts: %s", name, event.id, attempt, error)
                    self.queue.bury(name, event, attempt, error)
                    return True
                delay = self.retry.delay(attempt)
                log.warning("consumer %s failed on event %s (attempt %d), retrying in %.1fs: %s",
                            name, event.id, attempt, delay, error)
                if (stop or threading.Event()).wait(delay):
                    return False
                if event.id is not None and not self.queue.queued(event.id):
                    log.info("consumer %s dropped event %s: its wiki was deleted", name, event.id)
                    return True
        return True
