"""The pre-receive policy: what a push may change. Runs on quarantined objects, before any ref moves.

- `main` is the wiki: it can be neither deleted nor rewritten (fast-forward only).
- No pushed commit may bring a symlink, a submodule, or a path that is unsafe or invalid on
  common filesystems (`..`, `.git`, absolute, reserved Windows names and characters, ...).
- The owner's tier limits: pages at the new `main`, repository size after the push, file size.
Every refusal names the ref and says why, in words git shows after `[remote rejected]`.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from wikibot.config import MB, TierLimits
from wikibot.gitd.names import path_problem
from wikibot.gitd.receive import MAIN_REF, PushContext, RefUpdate
from wikibot.gitd.refs import ZERO as ZERO_SHA
from wikibot.gitd.repos import RepoError, run_git

MODE_SYMLINK = "120000"
MODE_GITLINK = "160000"


class PolicyError(Exception):
    """Git could not answer a question the policy asked; the push is refused, nothing changes."""


@dataclass(frozen=True)
class TreeUsage:
    """What a commit's files take once checked out: the worktree, and what the indexer reads."""

    pages: int
    files_bytes: int


@dataclass(frozen=True)
class Change:
    mode: str
    sha: str
    path: bytes


class Git:
    """git commands against the repository plus its quarantined objects."""

    def __init__(self, ctx: PushContext) -> None:
        self.ctx = ctx

    def _proc(self, *args: str, input: bytes | None = None,
              ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[bytes]:
        try:
            return run_git(self.ctx.repo_path, *args, env=self.ctx.git_env, input=input, ok_codes=ok_codes)
        except RepoError as exc:
            raise PolicyError(str(exc)) from None

    def run(self, *args: str, input: bytes | None = None) -> bytes:
        return self._proc(*args, input=input).stdout

    def is_ancestor(self, old: str, new: str) -> bool:
        return self._proc("merge-base", "--is-ancestor", old, new, ok_codes=(0, 1)).returncode == 0

    def peeled_type(self, sha: str) -> str:
        """The type of what `sha` names once tags are peeled ("commit", "tree", "blob"), in-process."""
        store = self.ctx.objects
        try:
            obj = store[sha.encode()]
            while obj.type_name == b"tag":
                obj = store[obj.object[1]]
        except KeyError:
            return "missing"
        return obj.type_name.decode()

    def new_changes(self, tip: str) -> Iterator[Change]:
        """Every entry that commits new to the repository add or modify (vs their first parent).

        An entry a new commit shares with its first parent came from that parent, which is
        either already in the repository (and was checked when it arrived) or new (and checked
        here), so diffing against first parents covers every tree of the push.
        """
        out = self.run("log", "--no-renames", "--diff-merges=first-parent", "--raw", "--no-abbrev", "-z",
                       "--format=", tip, "--not", "--all")
        tokens = iter(out.split(b"\0"))
        for token in tokens:
            meta = token.lstrip(b"\n")
            if not meta.startswith(b":"):
                continue
            path = next(tokens)
            _, new_mode, _, new_sha, status = meta.decode().lstrip(":").split(" ")
            if status[0] in "AMT":
                yield Change(new_mode, new_sha, path)

    def blob_sizes(self, shas: list[str]) -> dict[str, int]:
        if not shas:
            return {}
        out = self.run("cat-file", "--batch-check=%(objectname) %(objectsize)", input="\n".join(shas).encode() + b"\n")
        sizes = {}
        for line in out.decode().splitlines():
            sha, size = line.split(" ", 1)
            if size != "missing":  # cannot happen after the connectivity check; never crash on it
                sizes[sha] = int(size)
        return sizes

    def tree_usage(self, commit: str) -> TreeUsage:
        """Pages and uncompressed file bytes at `commit`, from one `ls-tree` (no blob is read)."""
        out = self.run("ls-tree", "-r", "-l", "-z", "--full-tree", commit)
        pages = files_bytes = 0
        for entry in out.split(b"\0"):
            if not entry:
                continue
            meta, _, path = entry.partition(b"\t")
            size = meta.rsplit(b" ", 1)[-1].strip()
            if size.isdigit():  # "-" for trees and submodules, which the content check refuses anyway
                files_bytes += int(size)
            pages += path.endswith(b".md")
        return TreeUsage(pages, files_bytes)


def repo_bytes(repo_path: Path) -> int:
    """Bytes the repository's objects take on disk (what the size limit counts), quarantine excluded."""
    total = 0
    for root, dirs, files in os.walk(repo_path / ".git" / "objects"):
        dirs[:] = [d for d in dirs if not d.startswith("incoming-")]
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


class PushPolicy:
    """The default `ReceivePolicy`, parameterised by the wiki owner's tier limits."""

    def __init__(self, limits: TierLimits) -> None:
        self.limits = limits

    def check(self, ctx: PushContext, updates: Sequence[RefUpdate]) -> dict[bytes, str]:
        git = Git(ctx)
        reasons: dict[bytes, str] = {}
        size_after = repo_bytes(ctx.repo_path) + ctx.incoming_bytes
        for u in updates:
            try:
                reason = self._check_ref(git, u, size_after)
            except PolicyError as exc:
                reason = f"cannot check this push: {exc}"
            if reason:
                reasons[u.ref] = reason
        return reasons

    def _check_ref(self, git: Git, u: RefUpdate, size_after: int) -> str | None:
        old, new = u.old.decode(), u.new.decode()
        is_main = u.ref == MAIN_REF
        if new == ZERO_SHA:
            return "main is the wiki and cannot be deleted" if is_main else None
        if git.peeled_type(new) != "commit":
            return "only commits and tags of commits may be pushed"
        if is_main and old != ZERO_SHA and not git.is_ancestor(old, new):
            return "non-fast-forward: main cannot be rewritten; pull, merge and push again"
        return self._check_content(git, new) or self._check_limits(git, u, old, new, is_main, size_after)

    def _check_content(self, git: Git, tip: str) -> str | None:
        blobs: list[tuple[str, bytes]] = []
        for change in git.new_changes(tip):
            name = change.path.decode("utf-8", "replace")
            if change.mode == MODE_SYMLINK:
                return f"symlinks are not allowed: {name}"
            if change.mode == MODE_GITLINK:
                return f"submodules are not allowed: {name}"
            problem = path_problem(change.path)
            if problem:
                return f"path {name!r} {problem}"
            blobs.append((change.sha, change.path))
        cap = self.limits.max_file_bytes
        sizes = git.blob_sizes(sorted({sha for sha, _ in blobs}))
        for sha, path in blobs:
            if sizes.get(sha, 0) > cap:
                return (f"file {path.decode('utf-8', 'replace')} is {sizes[sha] / MB:.1f} MB, "
                        f"over the {self.limits.max_file_mb} MB per-file limit")
        return None

    def _check_limits(self, git: Git, u: RefUpdate, old: str, new: str, is_main: bool, size_after: int) -> str | None:
        if size_after > self.limits.max_repo_bytes:
            return (f"repository size limit {self.limits.max_repo_mb} MB reached: "
                    f"push would make it {size_after / MB:.1f} MB")
        if not is_main:
            return None
        # Packs compress: 200 MB of repeated text packs to kilobytes, so the files main checks
        # out (the worktree, what the indexer reads) are bounded too. A wiki already over a
        # limit (lowered since) may still shrink or stay the same.
        after = git.tree_usage(new)
        before = git.tree_usage(old) if old != ZERO_SHA and (
            after.pages > self.limits.max_pages or after.files_bytes > self.limits.max_repo_bytes) else None
        if after.pages > self.limits.max_pages and after.pages > (before.pages if before else 0):
            return f"page limit {self.limits.max_pages} reached: push would make {after.pages} pages"
        if after.files_bytes > self.limits.max_repo_bytes and after.files_bytes > (before.files_bytes if before else 0):
            return (f"repository size limit {self.limits.max_repo_mb} MB reached: the files on main would "
                    f"take {after.files_bytes / MB:.1f} MB uncompressed")
        return None
