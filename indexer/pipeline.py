"""The index pipeline the worker runs, assembled in one place: model, index store, writer, scheduler,
reader and the query service, wired to each other by constructor arguments.

    events -> scheduler (fair, sliced refreshes) -> indexer (embeds, saves a generation)
           -> searcher (adopts it) <- query service (Unix socket) <- web processes and the CLI

The worker subscribes `consumer` to the event dispatcher and calls `start` and `stop`.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import asdict
from pathlib import Path

from wikibot.gitd.core import Core
from wikibot.gitd.names import WikiName

from .model import Model
from .refresh import Indexer
from .schedule import RefreshScheduler
from .search import Searcher
from .service import SearchServer
from .storage import IndexStore

log = logging.getLogger(__name__)
EVICT_EVERY = 60.0  # seconds
RECONCILE_EVERY_TICKS = 5  # evictions between checks for indexes left behind


class IndexPipeline:
    def __init__(self, core: Core, model_threads: int) -> None:
        config = core.config
        self.model = Model(Path(config.model_path) if config.model_path else None, threads=model_threads)
        self.store = IndexStore(config.index_dir)
        self.searcher = Searcher(self.store, self.model, core.store, on_missing=self._missing)
        self.indexer = Indexer(core, self.store, self.model, on_saved=self.searcher.adopt)
        self.scheduler = RefreshScheduler(self.indexer)
        self.server = SearchServer(config.data_dir, self.searcher, status=lambda: asdict(self.scheduler.status()))

    @property
    def consumer(self) -> RefreshScheduler:
        """The event handler: a change to a wiki's main branch asks for its refresh."""
        return self.scheduler

    def start(self, stop: threading.Event) -> None:
        """Serve queries, refresh indexes, warm the model up and keep memory in check until `stop`."""
        self.server.start()
        for target, name in ((self.scheduler.run, "indexing"), (self._maintain, "index-maintenance")):
            threading.Thread(target=target, args=(stop,), name=name, daemon=True).start()
        threading.Thread(target=self._warm_up, name="index-warm-up", daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _missing(self, wiki: WikiName) -> None:
        self.scheduler.request(wiki, changed=False)

    def _maintain(self, stop: threading.Event) -> None:
        """Evict idle indexes every minute; every few minutes, heal indexes whose refresh failed."""
        ticks = 0
        while not stop.wait(EVICT_EVERY):
            self.searcher.evict_idle()
            ticks += 1
            if ticks % RECONCILE_EVERY_TICKS == 0:
                self._request_stale()

    def _request_stale(self) -> int:
        try:
            stale = self.indexer.stale()
        except Exception:
            log.exception("could not list the indexes to bring up to date; tried again later")
            return 0
        for wiki in stale:
            self.scheduler.request(wiki, changed=False)
        return len(stale)

    def _warm_up(self) -> None:
        """Load the model before the first query needs it, then index wikis that moved while down."""
        try:
            self.model.load()
        except Exception:
            log.exception("loading the model failed; indexing and semantic search will retry on first use")
        log.info("search ready; %d index(es) to bring up to date", self._request_stale())
