"""The data dir holds private wikis and secrets: nothing in it may be readable by other accounts.

Rather than choosing a mode at each of the many places that create files (git, dulwich, SQLite,
FAISS, the indexer), every wikibot process sets a private umask at its entry point, which git
and every other child process inherit. `repair` fixes a data dir written under a looser umask.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077  # new dirs 0700, new files 0600 (0700 when executable, like git hooks)


def keep_private() -> None:
    """Make everything this process (and its children) creates from now on owner-only."""
    os.umask(PRIVATE_UMASK)


def repair(root: Path) -> int:
    """Remove group and other permission bits from `root` and everything under it; returns how
    many entries changed. A folder of the data dir itself kept elsewhere through a symlink (say
    `repos/` on another disk) is repaired at its target; no symlink deeper is followed or changed."""
    root = root.resolve()
    return _repair_tree(root) + sum(_repair_tree(target) for target in _linked_folders(root))


def _linked_folders(root: Path) -> list[Path]:
    """Targets of the symlinks directly in `root` that lead to folders outside it (those inside
    are repaired already; a link to `root` or above it would take in far more than wikibot's data)."""
    targets = []
    for entry in sorted(root.iterdir()):
        if entry.is_symlink() and entry.is_dir():
            target = entry.resolve()
            if not target.is_relative_to(root) and target not in root.parents:
                targets.append(target)
    return targets


def _repair_tree(top: Path) -> int:
    """Each directory is made private before its entries are looked at, so nobody else can swap
    one in meanwhile. Symlinks are neither followed nor changed."""
    changed = 0
    for _, _, files, dir_fd in os.fwalk(top, follow_symlinks=False):
        mode = os.fstat(dir_fd).st_mode
        if mode & PRIVATE_UMASK:
            os.fchmod(dir_fd, stat.S_IMODE(mode) & ~PRIVATE_UMASK)
            changed += 1
        for name in files:
            mode = os.lstat(name, dir_fd=dir_fd).st_mode
            if not stat.S_ISLNK(mode) and mode & PRIVATE_UMASK:
                os.chmod(name, stat.S_IMODE(mode) & ~PRIVATE_UMASK, dir_fd=dir_fd)
                changed += 1
    return changed
