"""Clone and push speed of Git smart-HTTP servers on copies of one wiki repository.

    .venv/bin/python bench/bench_git.py [--pages 500] [--runs 5]
                                        [--servers http-backend,otterwiki,wikibot]

Each server gets its own copy of one generated corpus. Per server: one untimed warm-up
clone (later used for the pushes), `runs` timed full clones into fresh directories, then
`runs` timed one-page pushes (edit and commit untimed). Server CPU is read from
/proc/<pid>/stat over this process's descendants, i.e. the server's process tree.

Server repos live in the system temp dir; clients' clones go to --client-dir (tmpfs by
default): on this VM's disk creating a file costs ~0.5 ms of kernel time, varying with
load, so a 5,000-page checkout took 3 s +- 1 s and buried the servers' share in noise.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from wikibot.testing.bench_servers import SERVERS
from wikibot.testing.corpus import GIT_ENV, make_wiki_repo
from wikibot.testing.process_cpu import cpu_seconds, descendants, quiesce

BASELINES = ("http-backend", "otterwiki")
CLIENT_ENV = {**os.environ, **GIT_ENV, "GIT_TERMINAL_PROMPT": "0", "NO_PROXY": "127.0.0.1",
              "no_proxy": "127.0.0.1"}


@dataclass
class Result:
    """Seconds per run for one server."""

    server: str
    clone: list[float] = field(default_factory=list)
    clone_cpu: list[float] = field(default_factory=list)
    push: list[float] = field(default_factory=list)
    push_cpu: list[float] = field(default_factory=list)


def _settle(idle: set[int], timeout: float = 2.0) -> None:
    """Wait until the server's per-request children are reaped, so their CPU is counted."""
    deadline = time.monotonic() + timeout
    while descendants(os.getpid()) - idle and time.monotonic() < deadline:
        time.sleep(0.005)


def git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=CLIENT_ENV, text=True, capture_output=True)
    if done.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def measure(*args: str, cwd: Path | None = None) -> tuple[float, float]:
    """Wall seconds of one git command on an idle server, and the server CPU seconds it caused."""
    quiesce()
    idle = descendants(os.getpid())
    cpu_before = cpu_seconds(idle)
    start = time.perf_counter()
    git(*args, cwd=cwd)
    wall = time.perf_counter() - start
    _settle(idle)
    return wall, cpu_seconds(idle) - cpu_before


def bench_clones(url: str, runs: int, client_dir: Path, result: Result) -> None:
    for _ in range(runs):
        with tempfile.TemporaryDirectory(dir=client_dir, prefix="bench-clone-") as target:
            wall, cpu = measure("clone", "--quiet", url, target)
        result.clone.append(wall)
        result.clone_cpu.append(cpu)


def bench_pushes(url: str, clone: Path, runs: int, result: Result) -> None:
    """Push one edited page per run from a prepared clone; check the server got the last."""
    pages = sorted(str(p.relative_to(clone)) for p in clone.rglob("*.md"))
    for run in range(runs):
        page = pages[run * 7 % len(pages)]
        with open(clone / page, "a") as f:
            f.write(f"\nEdited in benchmark run {run}.\n")
        git("commit", "--quiet", "-am", f"Edit {page}", cwd=clone)
        wall, cpu = measure("push", "--quiet", "origin", "main", cwd=clone)
        result.push.append(wall)
        result.push_cpu.append(cpu)
    local = git("rev-parse", "HEAD", cwd=clone).strip()
    remote = git("ls-remote", url, "refs/heads/main").split()[0]
    if local != remote:
        raise RuntimeError(f"server has {remote} after pushing {local}")


def bench_server(name: str, corpus: Path, runs: int, workdir: Path,
                 client_dir: Path) -> Result | None:
    """Benchmark one server on its own copy of the corpus; None if not implemented."""
    repo = workdir / "wiki.git"
    shutil.copytree(corpus, repo, symlinks=True)
    with ExitStack() as stack:
        try:
            url = stack.enter_context(SERVERS[name](repo))
        except NotImplementedError as e:
            print(f"skipping {name}: {e}", flush=True)
            return None
        print(f"{name}: {re.sub(r'//[^@/]*@', '//', url)}", flush=True)
        result = Result(name)
        prepared = Path(stack.enter_context(
            tempfile.TemporaryDirectory(dir=client_dir, prefix="bench-push-")))
        git("clone", "--quiet", url, str(prepared))  # warm-up, then the push source
        bench_clones(url, runs, client_dir, result)
        bench_pushes(url, prepared, runs, result)
        return result


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.1f}"


def _mean_ms(values: list[float]) -> str:
    """Mean, not median: CPU times come in 10 ms clock ticks, averaging smooths that."""
    return f"{statistics.fmean(values) * 1000:7.1f}"


def _spread(values: list[float]) -> str:
    return f"{min(values) * 1000:6.1f}-{max(values) * 1000:<6.1f}"


def print_table(results: list[Result]) -> None:
    print(f"\n{'server':<13} {'clone ms':>8} {'min-max':>13} {'srv CPU':>8}"
          f" {'push ms':>8} {'min-max':>13} {'srv CPU':>8}")
    for r in results:
        print(f"{r.server:<13} {_ms(r.clone):>8} {_spread(r.clone):>13}"
              f" {_mean_ms(r.clone_cpu):>8} {_ms(r.push):>8} {_spread(r.push):>13}"
              f" {_mean_ms(r.push_cpu):>8}")
    print("(wall ms: median and min-max; srv CPU: server CPU ms per operation, mean)")


def print_ratios(results: list[Result]) -> None:
    """Each server's median over the faster baseline's median, per operation."""
    baselines = [r for r in results if r.server in BASELINES]
    if not baselines:
        print("\nno baseline server measured: no ratios")
        return
    print("\nratio to the faster of " + " and ".join(BASELINES) + " (median / median):")
    for op in ("clone", "push"):
        best = min(baselines, key=lambda r: statistics.median(getattr(r, op)))
        best_median = statistics.median(getattr(best, op))
        cells = [f"{r.server} {statistics.median(getattr(r, op)) / best_median:.2f}x"
                 for r in results]
        print(f"  {op:<5} (vs {best.server}, {best_median * 1000:.1f} ms): " + "   ".join(cells))


def _default_client_dir() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--commits", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--client-dir", type=Path, default=_default_client_dir(),
                        help="where clients clone (default: /dev/shm if writable)")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help="comma-separated, from: " + ", ".join(SERVERS))
    args = parser.parse_args(argv)
    args.servers = args.servers.split(",")
    unknown = set(args.servers) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-git-") as tmp:
        corpus = Path(tmp) / "corpus"
        start = time.perf_counter()
        make_wiki_repo(corpus, args.pages, args.commits)
        pack_kib = sum(p.stat().st_size for p in (corpus / ".git/objects/pack").iterdir()) // 1024
        commits = git("rev-list", "--count", "HEAD", cwd=corpus).strip()
        print(f"corpus: {args.pages} pages, {commits} commits, {pack_kib} KiB packed,"
              f" built in {time.perf_counter() - start:.1f} s; {args.runs} runs per figure;"
              f" clones in {args.client_dir}",
              flush=True)
        results = []
        for name in args.servers:
            workdir = Path(tmp) / name
            workdir.mkdir()
            result = bench_server(name, corpus, args.runs, workdir, args.client_dir)
            if result:
                results.append(result)
    if results:
        print_table(results)
        print_ratios(results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
