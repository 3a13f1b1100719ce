"""The `post-commit` hook installed in every wiki repository: web edits become events.

Otterwiki commits with the git CLI, and so does anyone running `git commit` in a worktree; git
runs this hook after each of those commits. It must stay fast and import-light (no dulwich, no
model): it reads HEAD with git, queues one event and wakes the worker. Commits that wikibot makes
itself (MCP, bootstrap) run git with hooks disabled and publish their own event instead.
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from wikibot.gitd.repos import run_git

from .events import ZERO_SHA, Event
from .publish import Publisher

MARKER = "# installed by wikibot: turns commits into events (rewritten when the worker starts)"


def hook_script(data_dir: Path) -> str:
    """The script git runs after each commit in a wiki repository of `data_dir`."""
    return (f"#!/bin/sh\n{MARKER}\n"
            f"WIKIBOT_DATA={shlex.quote(str(data_dir.resolve()))} exec {shlex.quote(sys.executable)} "
            "-m wikibot.hooks.post_commit\n")


def _git(repo: Path, *args: str) -> str:
    proc = run_git(repo, *args, ok_codes=(0, 1, 128))
    return proc.stdout.decode(errors="replace").strip() if proc.returncode == 0 else ""


def event_for_head(repo: Path, repos_root: Path) -> Event | None:
    """The event for the commit HEAD now points at, or None when HEAD is detached."""
    ref = _git(repo, "symbolic-ref", "-q", "HEAD")
    new = _git(repo, "rev-parse", "-q", "--verify", "HEAD")
    if not ref or not new:
        return None
    # The first parent, not the reflog: pushes move refs without writing one. Consumers diff
    # from their own last-seen commit, so an amended commit is still handled right.
    old = _git(repo, "rev-parse", "-q", "--verify", f"{new}^1") or ZERO_SHA
    actor = _git(repo, "log", "-1", "--format=%an <%ae>", new) or None
    owner, slug = repo.resolve().relative_to(repos_root.resolve()).parts[:2]
    return Event(wiki=f"{owner}/{slug}", ref=ref, old_sha=old, new_sha=new, source="web", actor=actor)


def main() -> int:
    data_dir = Path(os.environ["WIKIBOT_DATA"])
    repo = Path(_git(Path.cwd(), "rev-parse", "--show-toplevel") or ".")
    event = event_for_head(repo, data_dir / "repos")
    if event is not None:
        Publisher(data_dir).publish(event)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # a hook failure must not look like a failed commit: report and go on
        print(f"wikibot post-commit hook: event not queued ({exc}); the worker will resync at start",
              file=sys.stderr)
        sys.exit(0)
