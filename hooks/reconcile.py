"""Heal missed events: a wiki whose HEAD differs from the last event seen for it gets a `sync` event.

Run when the worker starts, so a commit made while nothing listened (hooks disabled, a crash
between commit and publish, a repository restored from backup) still reaches every consumer.
"""
from __future__ import annotations

from wikibot.gitd.core import Core
from wikibot.gitd.quarantine import sweep_stale
from wikibot.gitd.refs import MAIN

from .events import ZERO_SHA, Event
from .publish import Publisher


def reconcile(core: Core, publisher: Publisher) -> list[Event]:
    """Repair each repository's settings (hooks, attributes), sweep abandoned quarantines, and
    publish a sync event for each wiki that drifted."""
    published = []
    for wiki in core.store.list_wikis():
        if not core.repos.exists(wiki.owner, wiki.slug):
            continue
        core.repos.repair(wiki.owner, wiki.slug)
        sweep_stale(core.repos.path(wiki.owner, wiki.slug) / ".git")
        head = core.repos.head(wiki.owner, wiki.slug) or ZERO_SHA
        last = publisher.queue.last_seen(wiki.full_name, MAIN) or ZERO_SHA
        if head != last:
            event = Event(wiki=wiki.full_name, ref=MAIN, old_sha=last, new_sha=head, source="sync")
            publisher.publish(event)
            published.append(event)
    return published
