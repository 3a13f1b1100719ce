"""Heal missed events: a wiki whose HEAD differs from the last event seen for it gets a `sync` change.

Run when the worker starts, so a commit made while nothing listened (hooks disabled, a crash
between commit and publish, a repository restored from backup) still reaches every consumer.
"""
from __future__ import annotations

from wikibot.gitd.change import MAIN, ZERO, Change
from wikibot.gitd.core import Core
from wikibot.gitd.quarantine import sweep_stale

from .post_receive import Publisher


def reconcile(core: Core, publisher: Publisher) -> list[Change]:
    """Repair each repository's settings (hooks, attributes), sweep abandoned quarantines, and
    publish a sync change for each wiki that drifted."""
    published = []
    for wiki in core.store.list_wikis():
        if not core.repos.exists(wiki.name):
            continue
        core.repos.repair(wiki.name)
        sweep_stale(core.repos.path(wiki.name) / ".git")
        head = core.repos.head(wiki.name) or ZERO
        last = publisher.queue.last_seen(wiki.name, MAIN) or ZERO
        if head != last:
            change = Change(wiki.name, MAIN, last, head, "sync")
            publisher.publish(change)
            published.append(change)
    return published
