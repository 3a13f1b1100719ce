"""Running git for the platform: the environment and config every server-side git process gets.

Private to gitd. Other components read a wiki's repository through `Repository` (repository.py)
and change it through `Core`, so there is one place that decides how git is run.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from wikibot.errors import InternalError


class RepoError(InternalError):
    """A repository operation failed; the message says which and why."""


# Server-side git must see the repository as it is: no machine or user config (log.showRoot=false
# would hide root commits from the push policy), no replace refs (they change what git shows),
# no hooks (wikibot announces its own writes; the post-commit hook is for everyone else's).
SAFE_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_NO_REPLACE_OBJECTS": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}
SAFE_CONFIG = ("-c", "log.showRoot=true", "-c", "diff.ignoreSubmodules=none", "-c", "core.hooksPath=/dev/null")


def git_command(repo: Path, *args: str) -> list[str]:
    return ["git", "-C", str(repo), *SAFE_CONFIG, *args]


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **SAFE_ENV, **(extra or {})}


def run_git(repo: Path, *args: str, env: dict[str, str] | None = None, input: bytes | None = None,
            ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[bytes]:
    """Run git in `repo` with the safe environment; exit codes outside `ok_codes` raise `RepoError`."""
    proc = subprocess.run(git_command(repo, *args), capture_output=True, env=git_env(env), input=input)
    if proc.returncode not in ok_codes:
        message = proc.stderr.decode(errors="replace").strip()
        raise RepoError(f"git {args[0]} failed in {repo}: {message}")
    return proc


def git(repo: Path, *args: str, env: dict[str, str] | None = None, input: bytes | None = None) -> str:
    """Run git in `repo`, returning stdout as text; failures raise `RepoError` with git's message."""
    return run_git(repo, *args, env=env, input=input).stdout.decode(errors="replace")


def batch_blobs(out: bytes, keys: list[str]) -> dict[str, bytes]:
    """Parse `git cat-file --batch` output for the requests `keys` (in order): the blobs among
    them; missing objects ("<request> missing") and other object types are left out."""
    found: dict[str, bytes] = {}
    pos = 0
    for key in keys:
        end = out.index(b"\n", pos)
        header = out[pos:end]
        pos = end + 1
        if header.endswith(b" missing"):
            continue
        _, kind, size = header.rsplit(b" ", 2)
        if kind == b"blob":
            found[key] = out[pos:pos + int(size)]
        pos += int(size) + 1
    return found

