"""A wiki created while its owner is being deleted leaves nothing behind for a later user of the
same name. The real Core, store and repositories; the test only holds `Repos.create` at the
moment the race needs (a slow disk), so the interleaving is the same on every run. Each test runs
on both store backends (TinyDB, and PostgreSQL: a real server, a database per test)."""
from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from wikibot.gitd.core import Core, CoreError
from wikibot.gitd.names import WikiName
from wikibot.gitd.repos import Repos
from wikibot.testing.postgres import StoreBackend
from wikibot.wiring import open_core

WAIT = 30.0  # seconds: only reached when the code under test deadlocks


class HeldRepos(Repos):
    """`create` announces it has begun, then waits until the test lets it go on."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.entered = threading.Event()
        self.go = threading.Event()

    def create(self, name: WikiName) -> Path:
        self.entered.set()
        assert self.go.wait(WAIT), "the test never let the creation go on"
        return super().create(name)


def _core(data: Path, backend: StoreBackend) -> Core:
    core = open_core(backend.config(data))
    backend.keep(core.store)
    core.initialise()
    return dataclasses.replace(core, repos=HeldRepos(core.repos.root, core.repos.locks, core.repos.hook_scripts))


def test_wiki_created_while_its_owner_is_deleted_leaves_no_repository(tmp_path, backend):
    core = _core(tmp_path / "data", backend)
    notes = WikiName("alice", "notes")
    core.add_user("alice", password="correct horse battery")
    outcome: dict[str, object] = {}

    def create() -> None:
        try:
            outcome["wiki"] = core.create_wiki(notes)
        except Exception as exc:
            outcome["error"] = exc

    creator = threading.Thread(target=create)
    creator.start()
    assert core.repos.entered.wait(WAIT)  # the record is written, the repository not yet
    assert core.delete_user("alice", purge=True) == ["alice/notes"]
    core.repos.go.set()
    creator.join(WAIT)
    assert not creator.is_alive()

    assert isinstance(outcome.get("error"), CoreError), outcome
    assert "owner was deleted meanwhile" in str(outcome["error"])
    assert core.store.get_wiki(notes) is None and core.store.get_user("alice") is None
    assert not core.repos.path(notes).exists()

    core.repos.go.set()  # from now on creations go straight through
    core.add_user("alice", password="another horse battery")
    wiki = core.create_wiki(notes)  # the name is free for the new alice
    assert wiki.name == notes and str(wiki.name) == "alice/notes" and core.repos.exists(notes)


def test_deleting_a_wiki_whose_record_is_gone_removes_its_repository(tmp_path, backend):
    core = _core(tmp_path / "data", backend)
    notes = WikiName("bob", "notes")
    core.repos.go.set()
    core.add_user("bob", password="correct horse battery")
    core.create_wiki(notes)
    core.store.delete_wiki(notes)  # as a concurrent deletion may have, or an older version left
    assert core.repos.exists(notes)

    core.delete_wiki(notes)
    assert not core.repos.path(notes).exists()
    assert core.create_wiki(notes).name == notes
    with pytest.raises(CoreError, match="no such wiki"):
        core.delete_wiki(WikiName("bob", "absent"))
