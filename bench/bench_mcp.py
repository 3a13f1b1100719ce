"""MCP latency through the real client (fastmcp over streamable HTTP), warm, on a ~10,000-chunk wiki.

    python bench/bench_mcp.py [--pages 2600] [--runs 40]

Targets (DESIGN.md): read p50 <= 20 ms, write p50 <= 150 ms, search p50 <= 50 ms at 10k chunks.
Baselines measured in the same run against the same server: a JSON-RPC `ping` posted with
requests (the endpoint's round trip with no tool work; fastmcp's client.ping() is refused by the
stateless server as "Method not found"), the JSON search endpoint (search without MCP), and a `git push` of one changed
page (the other way to write a page).

The wiki's history is imported into the data folder before the server starts and indexed with
`wikibot index rebuild` (full speed), so the run does not wait for the worker to embed ~10k chunks
at its background priority. Every timed call is a separate HTTP request on one connected client.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from wikibot.testing.bench_servers import wikibot_data, wikibot_serving
from wikibot.testing.corpus import make_wiki_repo
from wikibot.testing.process_cpu import quiesce

QUERIES = ["how do we roll back a failed deployment", "billing invoice retries", "onboarding checklist",
           "postgres replication lag alert", "who owns the release calendar", "rotate the api keys"]


@contextmanager
def prepared_server(pages: int) -> Iterator[tuple[str, str, Path]]:
    """`wikibot serve` on a fresh data folder whose wiki bench/pages holds `pages` pages, indexed."""
    with wikibot_data(prefix="bench-mcp-") as setup:
        corpus = setup.workdir / "corpus"
        make_wiki_repo(corpus, pages=pages, commits=5)
        if not (setup.repo / ".git").is_dir():
            raise SystemExit(f"unexpected repository layout: {setup.repo} is not a wiki repository")
        # offline import: the worker announces it as a sync event at start (HEAD != last event)
        subprocess.run(["git", "-C", str(corpus), "push", "-q", str(setup.repo), "main",
                        "--receive-pack=git -c receive.denyCurrentBranch=ignore receive-pack"], check=True)
        subprocess.run(["git", "-C", str(setup.repo), "reset", "-q", "--hard", "main"], check=True)
        t = time.perf_counter()
        setup.cli("index", "rebuild", "bench/pages")
        status = next(line for line in setup.cli("index", "status").splitlines() if line.startswith("bench/pages "))
        print(f"indexed {pages} pages in {time.perf_counter() - t:.0f} s: {' '.join(status.split())}", flush=True)
        with wikibot_serving(setup):
            yield f"http://127.0.0.1:{setup.port}", setup.token, corpus


def timed(fn, runs: int) -> list[float]:
    times = []
    for i in range(runs):
        t = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t) * 1000)
    return sorted(times)


def report(label: str, times: list[float], target: float | None = None, baseline: list[float] | None = None) -> None:
    p50 = statistics.median(times)
    line = f"  {label:<34} p50 {p50:7.1f} ms   p90 {times[int(len(times) * 0.9)]:7.1f} ms"
    if baseline:
        line += f"   {p50 / statistics.median(baseline):5.2f}x baseline"
    if target:
        line += f"   (target p50 <= {target:.0f} ms: {'met' if p50 <= target else 'MISSED'})"
    print(line, flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=3000, help="wiki size (3,000 pages ~ 10,000 chunks)")
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args(argv)
    with prepared_server(args.pages) as (base, token, corpus):
        loop = asyncio.new_event_loop()
        client = Client(StreamableHttpTransport(f"{base}/mcp/bench/pages", auth=token))
        loop.run_until_complete(client.__aenter__())

        def call(tool: str, **arguments) -> dict:
            result = loop.run_until_complete(client.call_tool(tool, arguments, raise_on_error=True))
            return result.structured_content

        listing = call("list_pages", limit=1000)["pages"]
        paths = [p["path"] for p in listing]
        rng = random.Random(3)
        for query in QUERIES:  # warm: the index is loaded and BM25 built on the first query
            call("search", query=query, mode="hybrid")
        for path in paths[:6]:  # warm: each gunicorn worker builds the link graph of this revision once
            call("read_page", path=path)
        quiesce()
        print(f"\nMCP through fastmcp's client, warm ({args.runs} calls each; index status above):")
        http = requests.Session()
        rpc_ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
        ping = timed(lambda i: http.post(f"{base}/mcp/bench/pages", json=rpc_ping, headers=headers,
                                         timeout=30).raise_for_status(), args.runs)
        report("JSON-RPC ping over HTTP (baseline)", ping)
        report("read_page", timed(lambda i: call("read_page", path=rng.choice(paths)), args.runs), 20, ping)
        report("list_pages (50)", timed(lambda i: call("list_pages", limit=50), args.runs), None, ping)

        page = "Bench/Scratch"
        revision = call("write_page", path=page, content="# Scratch\n\nstart\n")["revision"]
        state = {"revision": revision}

        def write(i: int) -> None:
            state["revision"] = call("write_page", path=page, content=f"# Scratch\n\nversion {i}\n",
                                     base_revision=state["revision"])["revision"]
        writes = timed(write, args.runs)

        def edit(i: int) -> None:
            state["revision"] = call("edit_page", path=page, base_revision=state["revision"],
                                     edits=[{"old": "version", "new": f"edit {i} of version"}])["revision"]
        edits = timed(edit, args.runs)
        pushes = push_times(corpus, base, token, max(5, args.runs // 4))
        report("write_page (update, base revision)", writes, 150, pushes)
        report("edit_page", edits, 150, pushes)
        report("git push of one page (baseline)", pushes)

        wait_indexed(call, call("list_pages", limit=1)["revision"])
        direct = timed(lambda i: requests.get(f"{base}/api/wikis/bench/pages/search", auth=("x", token),
                                              params={"q": QUERIES[i % len(QUERIES)], "mode": "semantic"},
                                              timeout=60).raise_for_status(), args.runs)
        for mode in ("semantic", "hybrid", "keyword"):
            report(f"search {mode}", timed(lambda i, m=mode: call("search", query=QUERIES[i % len(QUERIES)], mode=m),
                                           args.runs), 50, direct)
        report("JSON search endpoint, semantic (baseline)", direct)
        loop.run_until_complete(client.__aexit__(None, None, None))
    return 0


def wait_indexed(call, revision: str, timeout: float = 120.0) -> None:
    """Let the worker finish what the timed writes caused (indexing, a repack): searches are
    measured on an idle machine."""
    deadline = time.monotonic() + timeout
    while call("search", query="scratch", mode="keyword")["indexed_sha"] != revision:
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not index the last write")
        time.sleep(0.2)
    quiesce(timeout=60)


def push_times(corpus: Path, base: str, token: str, runs: int) -> list[float]:
    """Milliseconds of `git push` of one changed page (the pull before it is not timed)."""
    url = base.replace("http://", f"http://bench:{token}@") + "/bench/pages.git"
    git = ["git", "-C", str(corpus)]
    times = []
    for i in range(runs):
        subprocess.run([*git, "pull", "-q", "--rebase", url, "main"], check=True, capture_output=True)
        (corpus / "bench-push.md").write_text(f"# Push\n\nversion {i}\n")
        subprocess.run([*git, "add", "bench-push.md"], check=True)
        subprocess.run([*git, "commit", "-qm", f"push {i}"], check=True)
        t = time.perf_counter()
        subprocess.run([*git, "push", "-q", url, "HEAD:main"], check=True)
        times.append((time.perf_counter() - t) * 1000)
    return sorted(times)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
