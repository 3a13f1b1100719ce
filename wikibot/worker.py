"""The event worker: one long-lived process that runs every consumer, started by `wikibot serve`.

Heavy consumers (the indexer's embedding model) live here, never in a web request.
"""
from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
import time
from pathlib import Path

from wikibot.config import Config, ConfigError
from wikibot.gitd.core import Core
from wikibot.hooks.consumers import RepackConsumer, UsageConsumer
from wikibot.hooks.dispatcher import Dispatcher, Handler
from wikibot.hooks.publish import Publisher
from wikibot.hooks.reconcile import reconcile
from wikibot.hooks.wake import WakeListener
from wikibot.indexer.model import Model
from wikibot.indexer.refresh import Indexer
from wikibot.indexer.search import Searcher
from wikibot.indexer.service import SearchServer
from wikibot.indexer.storage import IndexStore
from wikibot.wiring import open_core

log = logging.getLogger("wikibot.worker")
BUILTIN_CONSUMERS = ("usage", "repack", "index")
WORKER_NICENESS = 10
EVICT_EVERY = 60.0  # seconds
SHUTDOWN_GRACE = 5.0  # seconds
RECONCILE_EVERY_TICKS = 5


def load_consumer(spec: str, core: Core) -> tuple[str, Handler]:
    """`name=module:factory` -> (name, factory(core))."""
    name, _, target = spec.partition("=")
    module, _, attr = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load consumer {spec!r}: {exc}") from None
    return name.strip(), factory(core)


def build_dispatcher(core: Core, publisher: Publisher, indexer: Indexer) -> Dispatcher:
    dispatcher = Dispatcher(publisher.queue)
    dispatcher.subscribe("usage", UsageConsumer(core))
    dispatcher.subscribe("repack", RepackConsumer(core))
    dispatcher.subscribe("index", indexer)
    for spec in core.config.consumers:
        dispatcher.subscribe(*load_consumer(spec, core))
    return dispatcher


class Rebuilds:
    """Rebuild a wiki's index in the background when a reader finds it missing or damaged."""

    def __init__(self, indexer: Indexer) -> None:
        self.indexer = indexer
        self._pending: set[str] = set()
        self._lock = threading.Lock()

    def request(self, wiki: str) -> None:
        with self._lock:
            if wiki in self._pending:
                return
            self._pending.add(wiki)
        threading.Thread(target=self._run, args=(wiki,), name=f"rebuild-{wiki}", daemon=True).start()

    def _run(self, wiki: str) -> None:
        try:
            self.indexer.refresh(wiki)
        except Exception:
            log.exception("rebuilding the index of %s failed; retried by the next reconcile", wiki)
        finally:
            with self._lock:
                self._pending.discard(wiki)


def _maintain(indexer: Indexer, searcher: Searcher, stop: threading.Event) -> None:
    """Evict idle indexes every minute; every few minutes, heal indexes whose refresh failed."""
    ticks = 0
    while not stop.wait(EVICT_EVERY):
        searcher.evict_idle()
        ticks += 1
        if ticks % RECONCILE_EVERY_TICKS == 0:
            indexer.reconcile()


def _warm_up(model: Model, indexer: Indexer) -> None:
    """Load the model before the first query needs it, then index wikis that moved while down."""
    try:
        model.load()
        resynced = indexer.reconcile()
        log.info("search ready; %d index(es) brought up to date", len(resynced))
    except Exception:
        log.exception("index warm-up failed; indexes are refreshed on the next change")


def run_worker(config: Config, stop: threading.Event | None = None) -> int:
    """Serve events until SIGTERM/SIGINT (or `stop`); returns an exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [worker] %(levelname)s %(name)s: %(message)s")
    stop = stop or threading.Event()
    os.nice(WORKER_NICENESS)  # background work yields the CPU to requests
    core = open_core(config)
    publisher = Publisher(config.data_dir)
    try:
        listener = WakeListener(config.data_dir)
    except OSError:
        raise ConfigError(f"another worker is already running for {config.data_dir}") from None
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    # Leave a core to the web processes: indexing must not slow down the next push or clone.
    model = Model(Path(config.model_path) if config.model_path else None, threads=max(1, (os.cpu_count() or 2) - 1))
    index_store = IndexStore(config.index_dir)
    indexer = Indexer(core, index_store, model)
    dispatcher = build_dispatcher(core, publisher, indexer)
    rebuilds = Rebuilds(indexer)
    searcher = Searcher(index_store, model, core.store, on_missing=rebuilds.request)
    indexer.on_saved = searcher.adopt
    search_server = SearchServer(config.data_dir, searcher)
    search_server.start()
    threading.Thread(target=_warm_up, args=(model, indexer), name="index-warm-up", daemon=True).start()
    threading.Thread(target=_maintain, args=(indexer, searcher, stop), name="index-maintenance", daemon=True).start()
    pid_file = publisher.queue.path.parent / "worker.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    drifted = reconcile(core, publisher)
    log.info("worker started: consumers %s; %d wiki(s) resynced", ", ".join(dispatcher.consumers), len(drifted))
    threads = dispatcher.start(stop)
    try:
        while not stop.is_set():
            if listener.wait(timeout=0.5):
                dispatcher.notify()
    finally:
        search_server.shutdown()
        search_server.server_close()
        listener.close()
        dispatcher.notify()
        # Unfinished events stay queued (cursors move only after success) and index saves are
        # atomic, so a consumer still busy after a few seconds is simply abandoned.
        deadline = time.monotonic() + SHUTDOWN_GRACE
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        pid_file.unlink(missing_ok=True)
    log.info("worker stopped")
    return 0
