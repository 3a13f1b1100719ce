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
from dataclasses import asdict
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
from wikibot.indexer.schedule import RefreshScheduler
from wikibot.indexer.search import Searcher
from wikibot.indexer.service import SearchServer
from wikibot.indexer.storage import IndexStore
from wikibot.redaction import redact_handlers
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


def build_dispatcher(core: Core, publisher: Publisher, indexing: Handler) -> Dispatcher:
    dispatcher = Dispatcher(publisher.queue)
    dispatcher.subscribe("usage", UsageConsumer(core))
    dispatcher.subscribe("repack", RepackConsumer(core))
    dispatcher.subscribe("index", indexing)
    for spec in core.config.consumers:
        dispatcher.subscribe(*load_consumer(spec, core))
    return dispatcher


def _maintain(indexer: Indexer, scheduler: RefreshScheduler, searcher: Searcher, stop: threading.Event) -> None:
    """Evict idle indexes every minute; every few minutes, heal indexes whose refresh failed."""
    ticks = 0
    while not stop.wait(EVICT_EVERY):
        searcher.evict_idle()
        ticks += 1
        if ticks % RECONCILE_EVERY_TICKS == 0:
            _request_stale(indexer, scheduler)


def _request_stale(indexer: Indexer, scheduler: RefreshScheduler) -> int:
    try:
        stale = indexer.stale()
    except Exception:
        log.exception("could not list the indexes to bring up to date; tried again later")
        return 0
    for wiki in stale:
        scheduler.request(wiki, changed=False)
    return len(stale)


def _warm_up(model: Model, indexer: Indexer, scheduler: RefreshScheduler) -> None:
    """Load the model before the first query needs it, then index wikis that moved while down."""
    try:
        model.load()
    except Exception:
        log.exception("loading the model failed; indexing and semantic search will retry on first use")
    log.info("search ready; %d index(es) to bring up to date", _request_stale(indexer, scheduler))


def run_worker(config: Config, stop: threading.Event | None = None) -> int:
    """Serve events until SIGTERM/SIGINT (or `stop`); returns an exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [worker] %(levelname)s %(name)s: %(message)s")
    redact_handlers(logging.getLogger())  # no secret reaches the log, whatever a message carries
    stop = stop or threading.Event()
    os.nice(WORKER_NICENESS)  # background work yields the CPU to requests
    core = open_core(config)
    publisher = Publisher(config.data_dir)
    try:
        listener = WakeListener(config.data_dir)
    except OSError as exc:  # WorkerRunning, or a run/ folder that is not ours
        raise ConfigError(str(exc)) from None
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    # Leave a core to the web processes: indexing must not slow down the next push or clone.
    model = Model(Path(config.model_path) if config.model_path else None, threads=max(1, (os.cpu_count() or 2) - 1))
    index_store = IndexStore(config.index_dir)
    searcher = Searcher(index_store, model, core.store,
                        on_missing=lambda wiki: scheduler.request(wiki, changed=False))
    indexer = Indexer(core, index_store, model, on_saved=searcher.adopt)
    scheduler = RefreshScheduler(indexer)
    dispatcher = build_dispatcher(core, publisher, scheduler)
    search_server = SearchServer(config.data_dir, searcher, status=lambda: asdict(scheduler.status()))
    search_server.start()
    threading.Thread(target=scheduler.run, args=(stop,), name="indexing", daemon=True).start()
    threading.Thread(target=_warm_up, args=(model, indexer, scheduler), name="index-warm-up", daemon=True).start()
    threading.Thread(target=_maintain, args=(indexer, scheduler, searcher, stop), name="index-maintenance",
                     daemon=True).start()
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
