"""The dashboard's `/` for a user with 20 wikis, against the same page for a user with one wiki and
the sign-in page (no store reads beyond the session), all on the same `wikibot serve` in the same
run: the median of N warm requests each, in interleaved rounds so a busy moment hits all alike.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import requests

from wikibot.gitd.names import WikiName
from wikibot.gitd.records import Grant
from wikibot.testing.servers import start_server, stop_server, wait_until, worker_idle
from wikibot.testing.web import PASSWORD, field, timed


def signed_in(url: str, user: str) -> requests.Session:
    session = requests.Session()
    form = session.get(f"{url}/-/login", timeout=30)
    got = session.post(f"{url}/-/login", data={"username": user, "password": PASSWORD,
                                              "csrf_token": field(form.text, "csrf_token")},
                       allow_redirects=False, timeout=30)
    assert got.status_code == 303, got.text
    return session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--wikis", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        server = start_server(Path(tmp) / "var")
        try:
            core = server.core
            core.add_user("many", password=PASSWORD, tier="premium")
            core.add_user("one", password=PASSWORD, tier="premium")
            core.add_user("friend", password=PASSWORD, tier="premium")
            for n in range(args.wikis - 5):
                core.create_wiki(WikiName("many", f"w{n}"), title=f"Wiki {n}", purpose="benchmark wiki")
            for n in range(5):  # a few shared with them, as a dashboard usually lists
                core.create_wiki(WikiName("friend", f"s{n}"))
                core.store.set_grant(Grant(WikiName("friend", f"s{n}"), "many", "editor"))
            core.create_wiki(WikiName("one", "w"))
            wait_until(lambda: worker_idle(server), timeout=300, what="the worker to finish indexing", server=server)
            many, one = signed_in(server.url, "many"), signed_in(server.url, "one")
            assert many.get(f"{server.url}/", timeout=30).text.count("/-/history/") == args.wikis
            cases = {"/ with 1 wiki": (one, "/"), f"/ with {args.wikis} wikis": (many, "/"),
                     "/-/login (baseline)": (one, "/-/login")}
            times: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(3):  # warm
                for session, path in cases.values():
                    session.get(f"{server.url}{path}", timeout=30).raise_for_status()
            for _ in range(args.runs):
                for name, (session, path) in cases.items():
                    times[name] += timed(lambda _i, s=session, p=path: s.get(f"{server.url}{p}",
                                                                              timeout=30).raise_for_status(), 1)
        finally:
            stop_server(server)
    base = statistics.median(times["/-/login (baseline)"])
    print(f"dashboard pages, median of {args.runs} warm requests (wikibot serve, TinyDB)")
    print(f"{'page':<24} {'median ms':>10} {'vs sign-in page':>16}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<24} {median:>10.1f} {median / base:>15.2f}x")


if __name__ == "__main__":
    main()
