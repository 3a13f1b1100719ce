"""Which indexes the worker brings up to date when it starts (and every few minutes): in-process, on
a real Core, index store and model."""
from __future__ import annotations

from wikibot.bootstrap.create import create_wiki
from wikibot.gitd.names import WikiName
from wikibot.gitd.records import User, Wiki
from wikibot.indexer.index import WikiIndex
from wikibot.indexer.model import Model
from wikibot.indexer.refresh import Indexer
from wikibot.indexer.storage import IndexStore
from wikibot.testing.servers import platform_config
from wikibot.wiring import open_core


def test_stale_lists_wikis_with_unindexed_commits_only_and_drops_orphan_indexes(tmp_path):
    core = open_core(platform_config(tmp_path / "data"))
    core.initialise()
    core.add_user("ann", password="correct horse battery", tier="premium")
    pages, _ = create_wiki(core, WikiName("ann", "pages"), template="default")
    blank, first = create_wiki(core, WikiName("ann", "blank"), template="empty")
    assert first is None  # no commit yet: nothing to index
    core.store.add_user(User(name="filler", email="", password_hash="x"))
    core.store.add_wiki(Wiki(owner="filler", slug="norepo"))  # a record whose repository is not there (yet)
    store = IndexStore(core.config.index_dir)
    indexer = Indexer(core, store, Model(None, threads=1))
    orphan = WikiName("gone", "wiki")  # an index left by a wiki deleted while the worker was down
    with store.writer(orphan):
        store.save(orphan, WikiIndex.empty(indexer.model.dimension))

    assert indexer.stale() == [pages.name]
    assert orphan not in store.wikis()
    assert indexer.refresh(pages.name).chunks > 0
    assert indexer.stale() == []
    assert blank.name in {w.name for w in core.store.list_wikis()}
