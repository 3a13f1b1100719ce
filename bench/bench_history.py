"""The history in klaus: log and commit pages served through the platform against klaus's own app.

    .venv/bin/python bench/bench_history.py [--commits 500] [--runs 20]

In the same run, on copies of one generated wiki of `commits` commits (one new page and one edit
each), at the same path depth (DATA/repos/OWNER/WIKI):
- klaus 3.0.1's own `make_app` on its copy under gunicorn (2 gthread workers of 4 threads, as
  `wikibot serve` runs) against `wikibot serve` with the wiki pushed into it, visited by its owner,
  signed in (the wiki is private): the log of the wiki, the log of one page (where a page's History
  link leads) and one commit page;
- the same pages without HTTP: each app called in this process through the werkzeug test client
  (what the platform adds per request, without the network's noise).
The two sides' requests alternate, so a slower or busier moment of the machine costs both alike;
each figure is the median of `runs` warm requests. Target (issue 14): <= 1.1x klaus's make_app.
klaus's copy keeps the commit-graph `git gc` wrote for the generated repo; the pushed wiki has none
(the platform writes none), which makes its page logs (`git log -- PATH`) some 5-10% slower.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from werkzeug.test import Client

from wikibot.app import Platform, routes
from wikibot.bootstrap.create import create_wiki
from wikibot.gitd.names import WikiName
from wikibot.testing.bench_servers import _gunicorn, base_env
from wikibot.testing.corpus import make_wiki_repo
from wikibot.testing.servers import run_git, start_server, stop_server, wait_until, worker_idle
from wikibot.testing.web import PASSWORD, field, sign_in

WIKI = WikiName("bench", "w0")
TARGET = 1.10


def alternating(pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]], runs: int,
                warm: int = 5) -> dict[str, tuple[float, float]]:
    """For each named pair of calls (klaus's, wikibot's): the median ms of `runs` calls of each, the
    two taking turns, after `warm` untimed calls of each."""
    out = {}
    for name, pair in pairs.items():
        for _ in range(warm):
            for call in pair:
                call()
        times: tuple[list[float], list[float]] = ([], [])
        for _ in range(runs):
            for side, call in enumerate(pair):
                start = time.perf_counter()
                call()
                times[side].append((time.perf_counter() - start) * 1000)
        out[name] = (statistics.median(times[0]), statistics.median(times[1]))
    return out


def ok(get: Callable[[str], Any], url: str) -> Callable[[], bytes]:
    """A call of `get(url)` (requests' or werkzeug's client) that reads the whole answer and fails
    loudly unless it is a 200."""
    def call() -> bytes:
        got = get(url)
        if got.status_code != 200:
            raise RuntimeError(f"{url} answered {got.status_code}")
        return got.content if isinstance(got, requests.Response) else got.get_data()
    return call


def pages(source: Path) -> dict[str, str]:
    """Paths under a history root: the wiki's log, one page's log, a commit from the middle."""
    files = subprocess.run(["git", "-C", str(source), "ls-files"], capture_output=True, text=True,
                           check=True).stdout.split()
    middle = subprocess.run(["git", "-C", str(source), "rev-list", "--count", "main"], capture_output=True,
                            text=True, check=True).stdout.strip()
    commit = subprocess.run(["git", "-C", str(source), "rev-parse", f"main~{int(middle) // 2}"], capture_output=True,
                            text=True, check=True).stdout.strip()
    return {"log": "tree/main/", "page log": f"tree/main/{files[len(files) // 2]}", "commit": f"commit/{commit}/"}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    from klaus import make_app

    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        source = Path(tmp) / "source"
        make_wiki_repo(source, args.commits, commits=args.commits)
        urls = pages(source)
        stock_repo = Path(tmp) / "stock" / "repos" / WIKI.owner / WIKI.slug
        shutil.copytree(source, stock_repo)
        env = base_env(KLAUS_REPOS=str(stock_repo), KLAUS_SITE_NAME="bench")
        data = Path(tmp) / "var"
        data.mkdir()
        server = start_server(data)
        try:
            core = server.core
            core.add_user(WIKI.owner, password=PASSWORD, tier="premium")
            token = core.create_token(WIKI.owner, "write")[1]
            create_wiki(core, WIKI, template="empty")
            run_git("-C", str(source), "push", "-q", server.clone_url(WIKI, token), "main")
            wait_until(lambda: worker_idle(server), timeout=1800, what="the worker to index the pushed wiki",
                       server=server)
            session = requests.Session()
            form = session.get(f"{server.url}/-/login")
            session.post(f"{server.url}/-/login", data={"username": WIKI.owner, "password": PASSWORD,
                                                         "csrf_token": field(form.text, "csrf_token")})
            with _gunicorn("klaus.contrib.wsgi:application", env, Path(tmp) / "stock", f"/{WIKI.slug}/", []) as stock:
                stock_http = requests.Session()
                http = alternating({name: (ok(stock_http.get, f"{stock}/{WIKI.slug}/{path}"),
                                           ok(session.get, f"{server.url}/{WIKI}/-/history/{path}"))
                                    for name, path in urls.items()}, args.runs)
            stock_app = Client(make_app([str(stock_repo)], "bench"))
            ours_app = sign_in(Platform(routes(core)), WIKI.owner)
            local = alternating({name: (ok(stock_app.get, f"/{WIKI.slug}/{path}"),
                                        ok(ours_app.get, f"/{WIKI}/-/history/{path}"))
                                 for name, path in urls.items()}, args.runs)
        finally:
            stop_server(server)
    print(f"\nklaus history of a {args.commits}-commit wiki, medians of {args.runs} warm requests "
          f"(the owner, signed in, of a private wiki)")
    print(f"  {'page':22s} {'klaus make_app':>14s} {'wikibot':>9s}  ratio (target <= {TARGET:.2f}x)")
    worst = 0.0
    for how, results in (("HTTP", http), ("in-process", local)):
        for name, (theirs, ours) in results.items():
            worst = max(worst, ours / theirs)
            print(f"  {name + ' (' + how + ')':22s} {theirs:11.2f} ms {ours:6.2f} ms  {ours / theirs:5.2f}x")
    print(f"  worst ratio {worst:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
