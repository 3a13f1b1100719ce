"""The `post-commit` hook installed in every wiki repository: web edits become events.

Otterwiki commits with the git CLI, and so does anyone running `git commit` in a worktree; git
runs this hook after each of those commits, in the worktree's root. It must stay fast and
import-light (no dulwich, no model): it reads HEAD, queues one change and wakes the worker. Commits
that wikibot makes itself (MCP, bootstrap) run git with hooks disabled and publish their own.
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from wikibot.gitd.change import ZERO, Change
from wikibot.gitd.names import WikiName
from wikibot.gitd.repository import Repository

from .post_receive import Publisher

MARKER = "# installed by wikibot: turns commits into events (rewritten when the worker starts)"


def hook_script(data_dir: Path) -> str:
    """The script git runs after each commit in a wiki repository of `data_dir`."""
    return (f"#!/bin/sh\n{MARKER}\n"
            f"WIKIBOT_DATA={shlex.quote(str(data_dir.resolve()))} exec {shlex.quote(sys.executable)} "
            "-m wikibot.hooks.post_commit\n")


def change_for_head(repo_path: Path, repos_root: Path) -> Change | None:
    """The change the commit HEAD now points at makes, or None when HEAD is detached."""
    repo = Repository(repo_path)
    checked_out = repo.checked_out()
    if checked_out is None:
        return None
    ref, new = checked_out
    # The first parent, not the reflog: pushes move refs without writing one. Consumers diff
    # from their own last-seen commit, so an amended commit is still handled right.
    old = repo.first_parent(new) or ZERO
    last = repo.log(new, limit=1)
    actor = f"{last[0].author} <{last[0].email}>" if last else None
    owner, slug = repo_path.resolve().relative_to(repos_root.resolve()).parts[:2]
    return Change(WikiName(owner, slug), ref, old, new, "web", actor)


def main() -> int:
    data_dir = Path(os.environ["WIKIBOT_DATA"])
    change = change_for_head(Path.cwd(), data_dir / "repos")
    if change is not None:
        Publisher(data_dir).publish(change)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # a hook failure must not look like a failed commit: report and go on
        print(f"wikibot post-commit hook: event not queued ({exc}); the worker will resync at start",
              file=sys.stderr)
        sys.exit(0)
