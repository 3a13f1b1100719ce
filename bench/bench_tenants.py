"""Platform state at scale: request cost at 10, 1,000 and 10,000 tenants, for each store backend.

For each backend and tenant count, a fresh data dir is filled with that many tenants (a user, a wiki
record and a write token each, written straight into the store), one measured tenant is created
through the Core with a real repository, and `wikibot serve` runs on it. The platforms of every count
run at once and the calls go round them in turn (a batch each, ten rounds), so drift on the machine
weighs on every count alike. Warm:
- a token-authenticated `git ls-remote` of the measured wiki (the git CLI's own start-up included);
- an MCP `read_page` through fastmcp's client;
- a tenant creation through the Core: user (password hash), wiki (repository, empty template), token;
  the password hash alone (argon2id, deliberately slow, the same at every size); and the store's
  share of a creation alone (its three writes: user, wiki, token records), the part that grows.
Medians, with each figure's ratio to the 10-tenant run of the same backend. Targets (issue 12):
reads within 1.1x at 10,000 tenants; tenant creation on TinyDB under 100 ms at 10,000, which the
hash alone exceeds here: the store's share is the figure that grows with the file.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from wikibot.bootstrap.create import create_wiki
from wikibot.gitd.names import WikiName
from wikibot.gitd.records import Token, User, Wiki, to_doc
from wikibot.gitd.secrets import hash_password
from wikibot.testing.servers import run_git, start_server, stop_server, wait_until, worker_idle
from wikibot.testing.web import timed

COUNTS = (10, 1000, 10000)
PASSWORD = "correct horse battery"


def fill(db: Path, tenants: int) -> None:
    """`tenants` users with a wiki record and a write token each, in the TinyDB file format."""
    users = {str(i + 1): to_doc(User(name=f"t{i}", email=f"t{i}@example.org", password_hash="$scrypt$" + "x" * 90,
                                     created=1.0)) for i in range(tenants)}
    wikis = {str(i + 1): to_doc(Wiki(owner=f"t{i}", slug="notes", title="Notes", created=1.0))
             for i in range(tenants)}
    tokens = {str(i + 1): to_doc(Token(id=f"{i:08x}", user=f"t{i}", hash=f"{i:064x}", scope="write", created=1.0))
              for i in range(tenants)}
    db.write_text(json.dumps({"users": users, "wikis": wikis, "tokens": tokens}))


@contextmanager
def platform(tenants: int, backend: str, pg) -> Iterator[tuple]:
    with tempfile.TemporaryDirectory(prefix="bench-tenants-") as tmp:
        data = Path(tmp) / "var"
        data.mkdir()
        fill(data / "db.json", tenants)
        env = {}
        if backend == "postgres":
            url = pg.create_database()
            subprocess.run([sys.executable, "-m", "wikibot.cli", "store", "copy", "--to", url, "--data", str(data)],
                           check=True, capture_output=True, text=True)
            (data / "wikibot.toml").write_text(f'[store]\nurl = "{url}"\n')
        server = start_server(data, env)
        try:
            core = server.core
            core.add_user("bench", password=PASSWORD, tier="premium")
            create_wiki(core, WikiName("bench", "pages"), template="default")
            token = core.create_token("bench", "write")[1]
            wait_until(lambda: worker_idle(server), timeout=600, what="the worker to finish its start-up work",
                       server=server)
            yield server, core, token
        finally:
            stop_server(server)


class Probe:
    """The timed operations against one running platform."""

    def __init__(self, server, core, token: str, loop: asyncio.AbstractEventLoop) -> None:
        self.core, self.loop = core, loop
        self.url = server.clone_url("bench/pages", token)
        self.client = Client(StreamableHttpTransport(f"{server.url}/mcp/bench/pages", auth=token))
        loop.run_until_complete(self.client.__aenter__())
        self.made = 0

    def close(self) -> None:
        self.loop.run_until_complete(self.client.__aexit__(None, None, None))

    def read_page(self, _: int) -> None:
        self.loop.run_until_complete(self.client.call_tool("read_page", {"path": "Home"}, raise_on_error=True))

    def ls_remote(self, _: int) -> None:
        run_git("ls-remote", self.url)

    def create_tenant(self, _: int) -> None:
        self.made += 1
        name = f"new{self.made}"
        self.core.add_user(name, password=PASSWORD)
        create_wiki(self.core, WikiName(name, "notes"), template="empty")
        self.core.create_token(name, "write")

    def write_records(self, _: int) -> None:  # the store's share of a creation: three writes
        self.made += 1
        name = f"rec{self.made}"
        self.core.store.add_user(User(name=name, email="", password_hash="x"))
        self.core.store.add_wiki(Wiki(owner=name, slug="notes"), max_owned=1)
        self.core.store.add_token(Token(id=name, user=name, hash=name))

    @staticmethod
    def password_hash(_: int) -> None:
        hash_password(PASSWORD)


OPERATIONS = {"git ls-remote (token)": ("ls_remote", 1), "MCP read_page": ("read_page", 1),
              "tenant creation": ("create_tenant", 3), "password hash": ("password_hash", 3),
              "its 3 store writes": ("write_records", 3)}  # name: (method, one call in N rounds)
ROUNDS = 10


def measure(counts: list[int], backend: str, runs: int, pg) -> dict[int, dict[str, float]]:
    """Every tenant count's platform runs at once, and the calls go round them in turn (a batch to each,
    ROUNDS times), so what drifts on the machine meanwhile weighs on every count alike."""
    loop = asyncio.new_event_loop()
    with ExitStack() as stack:
        probes = {n: Probe(*stack.enter_context(platform(n, backend, pg)), loop) for n in counts}
        stack.callback(lambda: [probe.close() for probe in probes.values()])
        for probe in probes.values():  # warm: every gunicorn worker, the token's last-used time
            timed(probe.read_page, 6)
            timed(probe.ls_remote, 6)
        times: dict[int, dict[str, list[float]]] = {n: {name: [] for name in OPERATIONS} for n in counts}
        for _ in range(ROUNDS):
            for n, probe in probes.items():
                for name, (method, every) in OPERATIONS.items():
                    times[n][name] += timed(getattr(probe, method), max(1, runs // ROUNDS // every))
    loop.close()
    return {n: {name: statistics.median(ts) for name, ts in ops.items()} for n, ops in times.items()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--tenants", type=int, nargs="+", default=list(COUNTS))
    parser.add_argument("--backend", choices=["tinydb", "postgres"], action="append",
                        help="default: both (postgres needs initdb on PATH)")
    args = parser.parse_args(argv)
    backends = args.backend or ["tinydb", "postgres"]
    pg_server = None
    if "postgres" in backends:
        from wikibot.testing.postgres import PostgresServer

        pg_server = PostgresServer.start(Path(tempfile.mkdtemp(prefix="bench-pg-")))
    try:
        for backend in backends:
            print(f"\n{backend}: medians of {args.runs} calls (tenant creation, hash, store writes: "
                  f"{args.runs // 3}), in {ROUNDS} interleaved rounds, ratio to {args.tenants[0]} tenants", flush=True)
            figures = measure(args.tenants, backend, args.runs, pg_server)
            base = figures[args.tenants[0]]
            for tenants in args.tenants:
                line = "  ".join(f"{name} {ms:7.1f} ms ({ms / base[name]:4.2f}x)"
                                 for name, ms in figures[tenants].items())
                print(f"  {tenants:>6} tenants: {line}", flush=True)
    finally:
        if pg_server is not None:
            pg_server.stop()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main(sys.argv[1:]))
