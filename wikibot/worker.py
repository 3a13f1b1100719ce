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

from wikibot.config import Config, ConfigError
from wikibot.gitd.core import Core
from wikibot.hooks.consumers import RepackConsumer, UsageConsumer
from wikibot.hooks.dispatcher import Dispatcher, Handler
from wikibot.hooks.post_receive import Publisher
from wikibot.hooks.reconcile import reconcile
from wikibot.hooks.wake import WakeListener
from wikibot.indexer.pipeline import IndexPipeline
from wikibot.redaction import redact_handlers
from wikibot.wiring import open_core

log = logging.getLogger("wikibot.worker")
BUILTIN_CONSUMERS = ("usage", "repack", "index")
WORKER_NICENESS = 10
SHUTDOWN_GRACE = 5.0  # seconds


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
    except OSError as exc:  # a run/ folder that is not ours
        raise ConfigError(str(exc)) from None
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    # Leave a core to the web processes: indexing must not slow down the next push or clone.
    pipeline = IndexPipeline(core, model_threads=max(1, (os.cpu_count() or 2) - 1))
    dispatcher = build_dispatcher(core, publisher, pipeline.consumer)
    pipeline.start(stop)
    drifted = reconcile(core, publisher)
    # Written once missed events are healed: a reader of the file knows start-up has repaired hooks.
    pid_file = publisher.queue.path.parent / "worker.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    log.info("worker started: consumers %s; %d wiki(s) resynced", ", ".join(dispatcher.consumers), len(drifted))
    threads = dispatcher.start(stop)
    try:
        while not stop.is_set():
            if listener.wait(timeout=0.5):
                dispatcher.notify()
    finally:
        pipeline.stop()
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
