"""The built-in event consumers: usage accounting and repacking."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from wikibot.gitd.change import MAIN, Change
from wikibot.gitd.core import Core

log = logging.getLogger(__name__)
REPACK_AFTER_PACKS = 8  # every push adds a pack; fetches slow down as they pile up
PACK_REFS_AFTER = 100  # loose refs: each is a file every push, fetch and clone reads


def _exists(core: Core, change: Change) -> bool:
    """Whether the wiki a change is about still exists (it may have been deleted since)."""
    return core.repos.exists(change.wiki) and core.store.get_wiki(change.wiki) is not None


class UsageConsumer:
    """Keeps each wiki's page count and bytes current (limits and the dashboard read them)."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def __call__(self, change: Change) -> None:
        if change.ref != MAIN or not _exists(self.core, change):
            return
        repo = self.core.repo(change.wiki)
        head = repo.head()
        pages = len(repo.page_files(head)) if head else 0
        self.core.store.set_usage(change.wiki, pages=pages, bytes=repo.object_bytes())


class RepackConsumer:
    """Repacks a wiki once its pack count passes a threshold, and packs its refs then or once
    loose refs pile up (a push of many tags adds one pack but many files), under the writer lock."""

    def __init__(self, core: Core, threshold: int = REPACK_AFTER_PACKS) -> None:
        self.core = core
        self.threshold = threshold

    def __call__(self, change: Change) -> None:
        if not _exists(self.core, change):
            return
        git_dir = self.core.repos.path(change.wiki) / ".git"
        packs = len(list((git_dir / "objects" / "pack").glob("*.pack")))
        repack = packs > self.threshold
        if not repack and _loose_refs(git_dir / "refs") <= PACK_REFS_AFTER:
            return
        self.core.repos.pack(change.wiki, objects=repack)
        if repack:
            log.info("repacked %s: %d packs into one", change.wiki, packs)


def _loose_refs(refs_dir: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(refs_dir))
