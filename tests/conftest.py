"""Fixtures that run the real platform: `wikibot serve` (gunicorn) on a free 127.0.0.1 port.

The helpers behind them (Server, run_git, wait_until, ...) are in wikibot.testing.servers.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from wikibot.gitd.names import WikiName
from wikibot.testing.postgres import PostgresServer, StoreBackend, postgres_backend, shared_postgres
from wikibot.testing.servers import Account, Server, start_server, stop_server, unique


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("wikibot-data")
    srv = start_server(data)
    yield srv
    stop_server(srv)


@pytest.fixture
def make_user(server: Server):
    def make(tier: str = "premium") -> Account:
        name = unique("u")
        server.core.add_user(name, password="correct horse battery", tier=tier)
        _, secret = server.core.create_token(name, scope="write")
        return Account(name, secret)
    return make


@pytest.fixture
def make_wiki(server: Server):
    from wikibot.bootstrap.create import create_wiki

    def make(owner: Account, public: bool = False, template: str = "empty") -> WikiName:
        """A new wiki of `owner`'s; starter pages only for tests that ask for `template="default"`."""
        wiki, _ = create_wiki(server.core, WikiName(owner.name, unique("w")), public=public, template=template)
        return wiki.name
    return make


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    return shared_postgres()  # PostgresUnavailable (a failure, not a skip) says what to install


@pytest.fixture(params=["tinydb", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreBackend]:
    """Each store test runs on both backends; TinyDB's file is where a Core on tmp_path/data has it."""
    if request.param == "postgres":
        backend = postgres_backend(request.getfixturevalue("postgres"))
    else:
        backend = StoreBackend("tinydb", str(tmp_path / "data" / "db.json"))
    yield backend
    backend.close()
