"""Fetching from a Git URL someone gave us, fenced: the tip of one branch into a scratch bare repository.

The URL and the server behind it are untrusted, so git runs with the safe environment and only the
settings the caller passes (credentials in the environment, never on the command line `ps` shows),
with file size and memory limits, and with its whole process group killed on timeout. What comes
back is read as a tree listing and blobs, never checked out: nothing fetched is written as a file.
Checking what may enter a wiki (paths, sizes) is the caller's (templates now, external sync next).
"""
from __future__ import annotations

import os
import resource
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from wikibot.config import MB
from wikibot.errors import WikibotError
from wikibot.redaction import redact

from .git_process import SAFE_ENV, batch_blobs

FETCHED_REF = "refs/heads/fetched"
MEMORY_BYTES = 2 * 1024 * MB  # address space of each git process (curl buffers, delta resolution)


class FetchError(WikibotError):
    """The fetch failed or went over a limit; nothing was kept. The message names what was fetched."""


@dataclass(frozen=True)
class TreeEntry:
    mode: bytes
    kind: bytes  # b"blob", b"tree" or b"commit" (a submodule)
    blob: str
    size: int  # -1 when git reports none (submodules)
    path: bytes


class FencedFetch:
    """git in a scratch bare repository `repo`, fenced (see the module docstring). `shown` names what
    is fetched in every message (without credentials)."""

    def __init__(self, repo: Path, settings: dict[str, str], max_bytes: int, timeout: int, shown: str) -> None:
        self.repo = repo
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.shown = shown
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(repo.parent), **SAFE_ENV,
                    "GIT_CONFIG_COUNT": str(len(settings))}
        for i, (key, value) in enumerate(settings.items()):
            self.env[f"GIT_CONFIG_KEY_{i}"], self.env[f"GIT_CONFIG_VALUE_{i}"] = key, value

    def fetch(self, url: str) -> None:
        """The remote's HEAD, shallow, into FETCHED_REF."""
        # init + fetch rather than clone: a failed clone deletes its folder, and with it the evidence
        # (a pack cut off at the limit) that tells "too large" from other failures
        self._run("init", "--quiet", "--bare", str(self.repo), cwd=self.repo.parent)
        proc = self._run("fetch", "--quiet", "--depth=1", "--no-tags", "--", url, f"+HEAD:{FETCHED_REF}",
                         check=False)
        if proc.returncode == 0:
            return
        if any(f.stat().st_size >= self.max_bytes for f in self.repo.rglob("*") if f.is_file()):
            raise FetchError(f"{self.shown} is larger than {self.max_bytes / MB:g} MB; nothing was created")
        # git names the URL in its messages, query and all
        reason = redact(proc.stderr.decode(errors="replace")).strip().splitlines()
        if reason and "couldn't find remote ref" in reason[-1]:
            raise FetchError(f"{self.shown} has no commits (or there is no repository there)")
        detail = reason[-1] if reason else f"git exited with {proc.returncode}"
        raise FetchError(f"cannot clone {self.shown}: {detail}")

    def tree(self) -> list[TreeEntry]:
        """Every entry of the fetched tip's tree, recursively."""
        listing = self._run("ls-tree", "-r", "-l", "-z", "--full-tree", FETCHED_REF).stdout.split(b"\0")
        entries = []
        for line in filter(None, listing):
            meta, _, path = line.partition(b"\t")
            mode, kind, blob, size = meta.split()
            entries.append(TreeEntry(mode, kind, blob.decode(), int(size) if size.isdigit() else -1, path))
        return entries

    def blobs(self, shas: list[str]) -> dict[str, bytes]:
        """The contents of the blobs `shas`, in one `git cat-file --batch`."""
        out = self._run("cat-file", "--batch", data="".join(f"{sha}\n" for sha in shas).encode()).stdout
        return batch_blobs(out, shas)

    def _run(self, *args: str, data: bytes | None = None, cwd: Path | None = None,
             check: bool = True) -> subprocess.CompletedProcess[bytes]:
        limit = self.max_bytes

        def fence() -> None:  # in the child, inherited by git's own children
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # a pack over the limit kills git
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES + limit, MEMORY_BYTES + limit))

        with subprocess.Popen(["git", *args], cwd=cwd or self.repo, env=self.env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=fence,
                              start_new_session=True) as proc:
            try:
                out, err = proc.communicate(data, timeout=self.timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # git's helpers (remote-https) too
                proc.communicate()
                raise FetchError(f"cloning {self.shown} took longer than {self.timeout} s; nothing was created"
                                 ) from None
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        if check and proc.returncode != 0:
            raise FetchError(f"{self.shown}: git {args[0]} failed "
                             f"({redact(err.decode(errors='replace')).strip()[-200:]})")
        return result
