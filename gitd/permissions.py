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
    many entries changed. Symlinks are neither followed nor changed. Each directory is made
    private before its entries are looked at, so nobody else can swap one in meanwhile."""
    changed = 0
    for _, _, files, dir_fd in os.fwalk(root.resolve(), follow_symlinks=False):
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
