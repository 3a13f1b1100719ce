"""The web wiki: page view and save latency through the platform against stock Otterwiki, throughput
across wikis, and the web processes' memory as more wikis are viewed.

In the same run, on copies of the same generated 500-page repository:
- stock single-tenant Otterwiki 2.26.1 under gunicorn (anonymous read and write; 2 workers of 4
  threads, as `wikibot serve` runs) against `wikibot serve` (a signed-in owner of the wiki):
  the median of 20 warm page views, and of 20 saves (the POST of the editor's form, a new line each),
  both servers up at once and taking turns request by request;
- page views per second from 8 concurrent clients across 3 such wikis for a few seconds (the
  platform's one Otterwiki lock per process serialises them; stock Otterwiki, one wiki, 2 sync
  workers, is the baseline it is measured against);
- the web processes' memory (PSS of the gunicorn workers) after 1 and after 100 wikis were viewed.
Targets (issue 13): views <= 1.1x, saves <= 1.2x stock Otterwiki.
"""
from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from wikibot.bootstrap.create import create_wiki
from wikibot.gitd.commits import FileChange
from wikibot.gitd.names import WikiName
from wikibot.testing.bench_servers import _gunicorn, _otterwiki_settings, base_env
from wikibot.testing.corpus import make_wiki_repo
from wikibot.testing.servers import Server, run_git, start_server, stop_server, wait_until, worker_idle
from wikibot.testing.web import PASSWORD, field

PAGE = re.compile(r'href="(?:/bench/w\d)?/([A-Z][^"#?/]*)"')


@contextmanager
def stock_otterwiki(repo: Path, threads: int = 4) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="bench-web-otterwiki-") as tmp:
        workdir = Path(tmp)
        settings = workdir / "settings.cfg"
        settings.write_text(_otterwiki_settings(repo, workdir) + "COMMIT_MESSAGE = 'OPTIONAL'\n")
        args = ["--preload", "--threads", str(threads)] if threads != 4 else ["--preload"]
        with _gunicorn("otterwiki.server:app", base_env(OTTERWIKI_SETTINGS=str(settings)), workdir, "/-/index",
                       args) as url:
            yield url


@contextmanager
def platform(source: Path, wikis: int) -> Iterator[tuple[Server, requests.Session]]:
    with tempfile.TemporaryDirectory(prefix="bench-web-wikibot-") as tmp:
        data = Path(tmp) / "var"
        data.mkdir()
        server = start_server(data)
        try:
            core = server.core
            core.add_user("bench", password=PASSWORD, tier="premium")
            token = core.create_token("bench", "write")[1]
            for n in range(wikis):
                create_wiki(core, WikiName("bench", f"w{n}"), template="empty")
                run_git("-C", str(source), "push", "-q", server.clone_url(f"bench/w{n}", token), "main")
            session = requests.Session()
            form = session.get(f"{server.url}/-/login")
            session.post(f"{server.url}/-/login", data={"username": "bench", "password": PASSWORD,
                                                         "csrf_token": field(form.text, "csrf_token")})
            yield server, session
        finally:
            stop_server(server)


def pages_of(session: requests.Session, index_url: str) -> list[str]:
    html = session.get(index_url).text
    return sorted({m for m in PAGE.findall(html) if not m.startswith("-")})


@dataclass
class Target:
    """A wiki's root URL, a session for it, and what must be waited for (untimed) after a save there
    (wikibot's worker indexes each save)."""
    session: requests.Session
    base: str
    settle: Callable[[], None] = lambda: None


def view(target: Target, page: str) -> float:
    """Milliseconds one view of `page` took."""
    start = time.perf_counter()
    target.session.get(f"{target.base}/{page}").raise_for_status()
    return (time.perf_counter() - start) * 1000


def save(target: Target, page: str, i: int) -> float:
    """Milliseconds one save of `page` took: the POST of its editor's form, with a new line."""
    editor = target.session.get(f"{target.base}/{page}/edit")
    text = re.search(r"<textarea[^>]*>(.*?)</textarea>", editor.text, re.S)
    form = {"csrf_token": field(editor.text, "csrf_token"), "commit": f"bench save {i}",
            "content": (text.group(1) if text else "# Bench\n") + f"\nline {i} {random.random()}\n"}
    if "wikibot_base" in editor.text:
        form["wikibot_base"] = field(editor.text, "wikibot_base")
    start = time.perf_counter()
    got = target.session.post(f"{target.base}/{page}/save", data=form, allow_redirects=False)
    took = (time.perf_counter() - start) * 1000
    if got.status_code not in (302, 303):
        raise RuntimeError(f"save answered {got.status_code}: {got.text[:500]}")
    target.settle()
    return took


def latency(targets: list[Target], page: str, runs: int) -> list[tuple[float, float]]:
    """Per target, the medians of `runs` warm views and saves of `page`. The targets take turns
    request by request (who goes first alternating), so a change in the machine's speed during the
    run (another process, the CPU's clock) weighs on each of them alike."""
    for target in targets:
        for _ in range(5):
            target.session.get(f"{target.base}/{page}").raise_for_status()
    views: list[list[float]] = [[] for _ in targets]
    saves: list[list[float]] = [[] for _ in targets]
    turns = [list(enumerate(targets)), list(enumerate(targets))[::-1]]
    for i in range(runs):
        for n, target in turns[i % 2]:
            views[n].append(view(target, page))
    for i in range(runs):
        for n, target in turns[i % 2]:
            saves[n].append(save(target, page, i))
    return [(statistics.median(v), statistics.median(s)) for v, s in zip(views, saves, strict=True)]


def throughput(session: requests.Session, urls: list[str], clients: int = 8, seconds: float = 8.0) -> float:
    """Page views per second from `clients` threads, each viewing random URLs, each with its own
    connection (and the session's cookies)."""
    done = [0] * clients
    stop = time.monotonic() + seconds

    def client(n: int) -> None:
        own = requests.Session()
        own.cookies.update(session.cookies)
        rng = random.Random(n)
        while time.monotonic() < stop:
            own.get(rng.choice(urls)).raise_for_status()
            done[n] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - start)


def web_pss_mb(server: Server) -> float:
    """PSS of the gunicorn processes serving the web (master and workers), in MB."""
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(server.proc.pid)], capture_output=True,
                         text=True).stdout
    masters = [int(line.split()[0]) for line in out.splitlines() if "gunicorn" in line]
    pids = list(masters)
    for master in masters:
        kids = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True).stdout
        pids += [int(p) for p in kids.split()]
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total / 1024


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--wikis", type=int, default=100, help="wikis viewed for the memory figure")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        source = Path(tmp) / "source"
        make_wiki_repo(source, args.pages, commits=50)
        # as deep in the file system as the platform's copy (DATA/repos/OWNER/WIKI): Otterwiki resolves
        # the repository's path for every file it reads (500 per view, for the sidebar), at a cost that
        # grows with the number of path components
        stock_repo = Path(tmp) / "var" / "repos" / "bench" / "w0"
        shutil.copytree(source, stock_repo)
        stock_repo2 = Path(tmp) / "var" / "repos" / "bench" / "w1"
        shutil.copytree(source, stock_repo2)
        with stock_otterwiki(stock_repo2, threads=1) as stock:
            anonymous = requests.Session()
            urls = [f"{stock}/{p}" for p in pages_of(anonymous, f"{stock}/-/index")[:100]]
            stock_rate = throughput(anonymous, urls)
        with platform(source, 3) as (server, session):
            def settle() -> None:
                wait_until(lambda: worker_idle(server), timeout=1800, what="the worker to index", server=server)

            settle()  # the three wikis pushed are indexed before anything is timed
            with stock_otterwiki(stock_repo) as stock:
                anonymous = requests.Session()
                names = pages_of(anonymous, f"{stock}/-/index")
                page = names[len(names) // 2]
                (stock_view, stock_save), (ours_view, ours_save) = latency(
                    [Target(anonymous, stock), Target(session, f"{server.url}/bench/w0", settle)], page, args.runs)
            one = web_pss_mb(server)  # one wiki viewed so far
            urls = [f"{server.url}/bench/w{n}/{p}" for n in range(3)
                    for p in pages_of(session, f"{server.url}/bench/w{n}/-/index")[:100]]
            ours_rate = throughput(session, urls)
            core = server.core
            for n in range(args.wikis - 3):
                name = WikiName("bench", f"m{n}")
                create_wiki(core, name, template="empty")
                core.commit(name, [FileChange("home.md", f"# Home\n\nWiki {n}.\n".encode())], message="home",
                            author=("bench", "bench@example.org"), actor="bench", source="mcp")
                for _ in range(2):  # reach both workers most of the time
                    session.get(f"{server.url}/{name}/Home").raise_for_status()
            settle()
            many = web_pss_mb(server)
        print(f"\nweb wiki, {args.pages}-page repository, medians of {args.runs} warm requests", flush=True)
        print(f"  page view: stock Otterwiki {stock_view:6.1f} ms   wikibot {ours_view:6.1f} ms "
              f"({ours_view / stock_view:4.2f}x, target <= 1.10x)")
        print(f"  save:      stock Otterwiki {stock_save:6.1f} ms   wikibot {ours_save:6.1f} ms "
              f"({ours_save / stock_save:4.2f}x, target <= 1.20x)")
        print(f"  8 concurrent clients: wikibot {ours_rate:6.1f} views/s across 3 wikis; stock Otterwiki "
              f"{stock_rate:6.1f} views/s on one wiki (2 sync workers)")
        print(f"  web processes' memory (PSS): {one:6.1f} MB after 1 wiki viewed, {many:6.1f} MB after "
              f"{args.wikis}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
