"""The pre-receive policy: what a push may change. Runs on quarantined objects, before any ref moves.

- `main` is the wiki: it can be neither deleted nor rewritten (fast-forward only).
- Branches point at commits; tags at commits or at tags of commits.
- No pushed commit may bring a symlink, a submodule, or a path that is unsafe or invalid on
  common filesystems (`..`, `.git`, absolute, reserved Windows names and characters, ...).
- The owner's tier limits: pages at the new `main`, repository size after the push, file size,
  and the disk the files at the new `main` take; and at most MAX_REFS branches and tags.
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
BLOCK = 4096  # what a file (or folder) takes on disk at least, and the unit it grows by
# Branches and tags besides main: every push, fetch and clone lists them all, so they are bounded.
MAX_REFS = 1000
SHOWN_PATH = 120  # characters of a path a refusal quotes


class PolicyError(Exception):
    """Git could not answer a question the policy asked; the push is refused, nothing changes."""


@dataclass(frozen=True)
class TreeUsage:
    """What a commit's files take once checked out: the worktree, and what the indexer reads."""

    pages: int
    disk_bytes: int  # each file and folder rounded up to whole blocks: 200,000 empty files are not free


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

    def object_type(self, sha: str, peel: bool = False) -> str:
        """The type of what `sha` names ("commit", "tag", "tree", "blob"), tags peeled if `peel`; in-process."""
        store = self.ctx.objects
        try:
            obj = store[sha.encode()]
            while peel and obj.type_name == b"tag":
                obj = store[obj.object[1]]
        except KeyError:
            return "missing"
        return obj.type_name.decode()

    def refs_besides_main(self) -> int:
        return sum(1 for name in self.run("for-each-ref", "--format=%(refname)").split(b"\n")
                   if name and name != MAIN_REF)

    def new_changes(self, tips: Sequence[str]) -> Iterator[Change]:
        """Every entry that commits new to the repository add or modify (vs their first parent),
        for all `tips` in one walk.

        An entry a new commit shares with its first parent came from that parent, which is
        either already in the repository (and was checked when it arrived) or new (and checked
        here), so diffing against first parents covers every tree of the push.
        """
        out = self.run("log", "--no-renames", "--diff-merges=first-parent", "--raw", "--no-abbrev", "-z",
                       "--format=", *tips, "--not", "--all")
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
        """Pages, and the disk the files and folders at `commit` take once checked out (the
        repository's attributes make the worktree hold the blobs' bytes exactly), from one `ls-tree`."""
        out = self.run("ls-tree", "-r", "-t", "-l", "-z", "--full-tree", commit)
        pages = disk_bytes = 0
        for entry in out.split(b"\0"):
            if not entry:
                continue
            meta, _, path = entry.partition(b"\t")
            _, kind, _, size = meta.split(maxsplit=3)  # size "-" for folders (and submodules, refused anyway)
            disk_bytes += _on_disk(int(size)) if size.isdigit() else BLOCK
            pages += kind == b"blob" and path.endswith(b".md")
        return TreeUsage(pages, disk_bytes)


def _on_disk(size: int) -> int:
    """A file's size rounded up to whole blocks, at least one (an empty file still takes an inode)."""
    return max(1, -(-size // BLOCK)) * BLOCK


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
        try:
            size_after = repo_bytes(ctx.repo_path) + ctx.incoming_bytes
            for u in updates:
                if reason := self._check_ref(git, u):
                    reasons[u.ref] = reason
            tips = [u for u in updates if u.ref not in reasons and u.new != ZERO_SHA.encode()]
            reasons.update(self._check_contents(git, tips))
            for u in tips:
                if u.ref not in reasons and (reason := self._check_limits(git, u, size_after)):
                    reasons[u.ref] = reason
            reasons.update(self._check_ref_count(git, [u for u in updates if u.ref not in reasons]))
        except PolicyError as exc:
            return {u.ref: reasons.get(u.ref, f"cannot check this push: {exc}") for u in updates}
        return reasons

    def _check_ref(self, git: Git, u: RefUpdate) -> str | None:
        old, new = u.old.decode(), u.new.decode()
        is_main = u.ref == MAIN_REF
        if new == ZERO_SHA:
            return "main is the wiki and cannot be deleted" if is_main else None
        if u.ref.startswith(b"refs/heads/") and git.object_type(new) != "commit":
            # a tag on a branch would be peeled by the worktree sync: main moved without an event
            return "a branch must point at a commit: push tags under refs/tags/"
        if git.object_type(new, peel=True) != "commit":
            return "only commits and tags of commits may be pushed"
        if is_main and old != ZERO_SHA and not git.is_ancestor(old, new):
            return "non-fast-forward: main cannot be rewritten; pull, merge and push again"
        return None

    def _check_contents(self, git: Git, tips: Sequence[RefUpdate]) -> dict[bytes, str]:
        """Content problems per ref, from one walk over every new commit of the push; only if
        that finds a problem is each ref walked alone, so the refusal names the refs it concerns."""
        if not tips or (problem := self._content_problem(git, [u.new.decode() for u in tips])) is None:
            return {}
        if len(tips) == 1:
            return {tips[0].ref: problem}
        return {u.ref: p for u in tips if (p := self._content_problem(git, [u.new.decode()]))}

    def _content_problem(self, git: Git, tips: list[str]) -> str | None:
        blobs: list[tuple[str, bytes]] = []
        for change in git.new_changes(tips):
            name = _shown(change.path)
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
                return (f"file {_shown(path)} is {sizes[sha] / MB:.1f} MB, "
                        f"over the {self.limits.max_file_mb} MB per-file limit")
        return None

    def _check_limits(self, git: Git, u: RefUpdate, size_after: int) -> str | None:
        if size_after > self.limits.max_repo_bytes:
            return (f"repository size limit {self.limits.max_repo_mb} MB reached: "
                    f"push would make it {size_after / MB:.1f} MB")
        if u.ref != MAIN_REF:
            return None
        old, new = u.old.decode(), u.new.decode()
        # Packs compress: 200 MB of repeated text packs to kilobytes, so the files main checks
        # out (the worktree, what the indexer reads) are bounded too. A wiki already over a
        # limit (lowered since) may still shrink or stay the same.
        after = git.tree_usage(new)
        before = git.tree_usage(old) if old != ZERO_SHA and (
            after.pages > self.limits.max_pages or after.disk_bytes > self.limits.max_repo_bytes) else None
        if after.pages > self.limits.max_pages and after.pages > (before.pages if before else 0):
            return f"page limit {self.limits.max_pages} reached: push would make {after.pages} pages"
        if after.disk_bytes > self.limits.max_repo_bytes and after.disk_bytes > (before.disk_bytes if before else 0):
            return (f"repository size limit {self.limits.max_repo_mb} MB reached: the files on main would "
                    f"take {after.disk_bytes / MB:.1f} MB on disk")
        return None

    def _check_ref_count(self, git: Git, updates: Sequence[RefUpdate]) -> dict[bytes, str]:
        """Refuse the refs a push creates if the wiki would then hold over MAX_REFS besides main."""
        zero = ZERO_SHA.encode()
        created = [u.ref for u in updates if u.old == zero and u.new != zero and u.ref != MAIN_REF]
        if not created:
            return {}
        deleted = sum(1 for u in updates if u.new == zero and u.ref != MAIN_REF)
        after = git.refs_besides_main() + len(created) - deleted
        if after <= MAX_REFS:
            return {}
        reason = (f"ref limit reached: a wiki holds at most {MAX_REFS} branches and tags besides main: "
                  f"this push would make {after}; delete some and push again")
        return dict.fromkeys(created, reason)


def _shown(path: bytes) -> str:
    """A path as a refusal quotes it: a hostile 4 KB path would drown the reason."""
    name = path.decode("utf-8", "replace")
    return name if len(name) <= SHOWN_PATH else f"{name[:SHOWN_PATH // 2]}...{name[-SHOWN_PATH // 2:]}"
