"""Incoming objects wait in a quarantine until the push is accepted, as git's own receive-pack does.

The received pack is stored in `objects/incoming-*/` with the repository's objects as an
alternate, so thin packs resolve and policy checks (run with `env`) see old and new objects
together. Accepted: its packs move into `objects/pack/`. Refused: the folder is removed and the
repository is exactly as it was, down to the bytes on disk.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from dulwich.object_store import DiskObjectStore

# Move the pack before its index: readers find packs through their .idx files.
_MOVE_ORDER = (".pack", ".rev", ".bitmap", ".mtimes", ".idx")


class Quarantine:
    def __init__(self, git_dir: Path) -> None:
        self.objects = git_dir / "objects"
        self.path = Path(tempfile.mkdtemp(prefix="incoming-", dir=self.objects))
        (self.path / "pack").mkdir()
        (self.path / "info").mkdir()
        (self.path / "info" / "alternates").write_text(str(self.objects.resolve()) + "\n")
        self.store = DiskObjectStore(str(self.path))

    @property
    def env(self) -> dict[str, str]:
        """Environment for git commands that must see the quarantined objects."""
        return {
            "GIT_OBJECT_DIRECTORY": str(self.path),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(self.objects.resolve()),
            "GIT_QUARANTINE_PATH": str(self.path),
        }

    def size(self) -> int:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    def accept(self) -> None:
        """Move the received packs into the repository (call before any ref points at them)."""
        self.store.close()
        target = self.objects / "pack"
        target.mkdir(exist_ok=True)
        packs = sorted(self.path.glob("pack/*.pack"))
        for pack in packs:
            for suffix in _MOVE_ORDER:
                src = pack.with_suffix(suffix)
                dst = target / src.name
                if src.exists() and not dst.exists():
                    os.replace(src, dst)

    def discard(self) -> None:
        self.store.close()
        shutil.rmtree(self.path, ignore_errors=True)
