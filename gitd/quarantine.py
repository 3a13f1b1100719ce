"""Incoming objects wait in a quarantine until the push is accepted, as git's own receive-pack does.

The pushed pack is indexed by `git index-pack` into `objects/incoming-*/`, with the repository's
objects as an alternate, so thin packs resolve and every check (run with `env`) sees old and new
objects together. index-pack streams: big blobs never sit in memory, the input size is capped,
and `--strict` rejects malformed objects. Accepted: the packs move into `objects/pack/`. Refused:
the folder is removed and the repository is exactly as it was, down to the bytes on disk.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from dulwich.object_store import DiskObjectStore

from wikibot.errors import WikibotError

from .git_process import git_command, git_env

# Move the pack before its index: readers find packs through their .idx files.
_MOVE_ORDER = (".pack", ".rev", ".bitmap", ".mtimes", ".idx")
STALE_AFTER = 3600.0  # seconds after which an abandoned quarantine (a killed worker) is swept


class PackRejected(WikibotError):
    """index-pack refused the pushed pack; the message says why, in git's words."""


class Quarantine:
    def __init__(self, git_dir: Path) -> None:
        self.objects = git_dir / "objects"
        self.path = Path(tempfile.mkdtemp(prefix="incoming-", dir=self.objects))
        (self.path / "pack").mkdir()
        (self.path / "info").mkdir()
        (self.path / "info" / "alternates").write_text(str(self.objects.resolve()) + "\n")

    @property
    def env(self) -> dict[str, str]:
        """Environment for git commands that must see the quarantined objects."""
        return {
            "GIT_OBJECT_DIRECTORY": str(self.path),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(self.objects.resolve()),
            "GIT_QUARANTINE_PATH": str(self.path),
        }

    @cached_property
    def store(self) -> DiskObjectStore:
        """dulwich's view of old plus quarantined objects (open it after the pack is in)."""
        return DiskObjectStore(str(self.path))

    def receive(self, read: Callable[[int], bytes], max_bytes: int | None) -> None:
        """Stream the pack from `read` into `git index-pack`; raises PackRejected."""
        args = ["-c", "core.bigFileThreshold=1m", "index-pack", "--stdin", "--fix-thin", "--strict"]
        if max_bytes:
            args.append(f"--max-input-size={max_bytes}")
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(git_command(self.objects.parent, *args), stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=errors, env=git_env(self.env))
            assert proc.stdin is not None
            try:
                while chunk := read(1 << 16):
                    proc.stdin.write(chunk)
                proc.stdin.close()
            except BrokenPipeError:
                pass  # index-pack stopped reading: its exit status says why
            if proc.wait() != 0:
                errors.seek(0)
                lines = errors.read().decode(errors="replace").strip().splitlines()
                raise PackRejected(_reason(lines))

    def size(self) -> int:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    def accept(self) -> None:
        """Move the new packs and loose objects into the repository (before any ref points at them)."""
        self.close()
        target = self.objects / "pack"
        target.mkdir(exist_ok=True)
        for pack in sorted(self.path.glob("pack/*.pack")):
            for suffix in _MOVE_ORDER:
                src = pack.with_suffix(suffix)
                dst = target / src.name
                if src.exists() and not dst.exists():
                    os.replace(src, dst)
        for loose in sorted(self.path.glob("[0-9a-f][0-9a-f]/*")):  # written by commits built here
            dst = self.objects / loose.parent.name / loose.name
            dst.parent.mkdir(exist_ok=True)
            if not dst.exists():
                os.replace(loose, dst)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()

    def discard(self) -> None:
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)


def _reason(lines: list[str]) -> str:
    """git's own words: the first specific error (e.g. fsck's), then the fatal summary."""
    fatal = next((ln.removeprefix("fatal: ") for ln in reversed(lines) if ln.startswith("fatal: ")), "")
    detail = next((ln.removeprefix("error: ") for ln in lines if ln.startswith("error: ")), "")
    return "; ".join(p for p in (detail, fatal) if p) or "index-pack failed"


def sweep_stale(git_dir: Path, older_than: float = STALE_AFTER) -> int:
    """Remove quarantines abandoned by killed processes; returns how many were removed."""
    removed = 0
    for folder in (git_dir / "objects").glob("incoming-*"):
        if time.time() - folder.stat().st_mtime > older_than:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed
