"""Caps on personal access tokens, on the real Core and store of a temp data dir: the wikis one token
is limited to (each once, at most 50) and the live tokens one user holds (at most 100)."""
from __future__ import annotations

import time

import pytest

from wikibot.gitd.core import MAX_TOKEN_WIKIS, MAX_TOKENS, Core, CoreError
from wikibot.gitd.names import WikiName
from wikibot.gitd.records import Token
from wikibot.testing.servers import platform_config
from wikibot.wiring import open_core

NOTES, DRAFTS = WikiName("ann", "notes"), WikiName("ann", "drafts")


@pytest.fixture
def core(tmp_path) -> Core:
    core = open_core(platform_config(tmp_path / "data"))
    core.initialise()
    core.add_user("ann", password="correct horse battery", tier="premium")
    core.create_wiki(NOTES)
    core.create_wiki(DRAFTS)
    return core


def test_a_token_lists_each_wiki_once_in_the_order_given(core):
    token, _ = core.create_token("ann", wikis=[DRAFTS, NOTES, DRAFTS, NOTES, DRAFTS])
    assert token.wikis == (DRAFTS, NOTES)
    [stored] = core.store.list_tokens(user="ann")
    assert stored.wikis == (DRAFTS, NOTES)
    many, _ = core.create_token("ann", wikis=[NOTES] * (MAX_TOKEN_WIKIS + 10))  # repeats count once
    assert many.wikis == (NOTES,)


def test_a_token_is_limited_to_at_most_fifty_wikis(core):
    names = [WikiName("ann", f"w{i}") for i in range(MAX_TOKEN_WIKIS + 1)]
    with pytest.raises(CoreError, match=f"at most {MAX_TOKEN_WIKIS} wikis"):
        core.create_token("ann", wikis=names)  # refused before any of them is looked up
    with pytest.raises(CoreError, match="no such wiki: ann/w0"):
        core.create_token("ann", wikis=names[:MAX_TOKEN_WIKIS])  # fifty are looked up as any list is
    assert core.store.list_tokens(user="ann") == []


def test_a_user_holds_a_hundred_tokens_and_expired_ones_make_room(core):
    now = time.time()
    for i in range(3):  # expired: worth nothing, they go when the cap is reached
        core.store.add_token(Token(id=f"old{i}", user="ann", hash=f"{i:064x}", created=now - 100, expires=now - 1))
    made = [core.create_token("ann", expires_days=1 if i % 2 else None)[0] for i in range(MAX_TOKENS)]
    with pytest.raises(CoreError, match=f"you have {MAX_TOKENS} tokens; revoke some first"):
        core.create_token("ann")
    held = core.store.list_tokens(user="ann")
    assert len(held) == MAX_TOKENS and not any(t.id.startswith("old") for t in held)
    core.add_user("bob", password="correct horse battery")
    core.create_token("bob")  # the cap is per user
    core.revoke_token(made[0].id)
    core.create_token("ann")
    with pytest.raises(CoreError, match="one line"):
        core.create_token("bob", note="line\x00two")
