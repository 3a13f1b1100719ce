"""The built-in event consumers: usage accounting and repacking."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from wikibot.gitd.core import Core
from wikibot.gitd.refs import MAIN
from wikibot.gitd.repos import git, page_files

from .events import Event
from .policy import repo_bytes

log = logging.getLogger(__name__)
REPACK_AFTER_PACKS = 8  # every push adds a pack; fetches slow down as they pile up
PACK_REFS_AFTER = 100  # loose refs: each is a file every push, fetch and clone reads


def _wiki(core: Core, event: Event) -> tuple[str, str] | None:
    """The wiki an event is about, or None if it has been deleted since."""
    owner, slug = event.wiki.split("/", 1)
    return (owner, slug) if core.repos.exists(owner, slug) and core.store.get_wiki(owner, slug) else None


class UsageConsumer:
    """Keeps each wiki's page count and bytes current (limits and the dashboard read them)."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def __call__(self, event: Event) -> None:
        wiki = _wiki(self.core, event)
        if wiki is None or event.ref != MAIN:
            return
        path = self.core.repos.path(*wiki)
        head = self.core.repos.head(*wiki)
        pages = len(page_files(path, head)) if head else 0
        self.core.store.set_usage(*wiki, pages=pages, bytes=repo_bytes(path))


class RepackConsumer:
    """Repacks a wiki once its pack count passes a threshold, and packs its refs then or once
    loose refs pile up (a push of many tags adds one pack but many files), under the writer lock."""

    def __init__(self, core: Core, threshold: int = REPACK_AFTER_PACKS) -> None:
        self.core = core
        self.threshold = threshold

    def __call__(self, event: Event) -> None:
        wiki = _wiki(self.core, event)
        if wiki is None:
            return
        path = self.core.repos.path(*wiki)
        packs = len(list((path / ".git" / "objects" / "pack").glob("*.pack")))
        repack = packs > self.threshold
        if not repack and _loose_refs(path / ".git" / "refs") <= PACK_REFS_AFTER:
            return
        with self.core.repos.lock(*wiki):
            if repack:
                git(path, "repack", "-a", "-d", "-q")
            git(path, "pack-refs", "--all")
        if repack:
            log.info("repacked %s: %d packs into one", event.wiki, packs)


def _loose_refs(refs_dir: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(refs_dir))
