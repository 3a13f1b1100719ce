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

from collections.abc import Sequence

from wikibot.config import MB, TierLimits
from wikibot.gitd.names import path_problem
from wikibot.gitd.receive import MAIN_REF, ZERO_BYTES, PushContext, RefUpdate
from wikibot.gitd.refs import ZERO
from wikibot.gitd.repository import RepoError

MODE_SYMLINK = "120000"
MODE_GITLINK = "160000"
# Branches and tags besides main: every push, fetch and clone lists them all, so they are bounded.
MAX_REFS = 1000
SHOWN_PATH = 120  # characters of a path a refusal quotes


def _object_type(ctx: PushContext, sha: str, peel: bool = False) -> str:
    """The type of what `sha` names ("commit", "tag", "tree", "blob"), tags peeled if `peel`; in-process."""
    try:
        obj = ctx.objects[sha.encode()]
        while peel and obj.type_name == b"tag":
            obj = ctx.objects[obj.object[1]]
    except KeyError:
        return "missing"
    return obj.type_name.decode()


class PushPolicy:
    """The default `ReceivePolicy`, parameterised by the wiki owner's tier limits."""

    def __init__(self, limits: TierLimits) -> None:
        self.limits = limits

    def check(self, ctx: PushContext, updates: Sequence[RefUpdate]) -> dict[bytes, str]:
        reasons: dict[bytes, str] = {}
        try:
            size_after = ctx.repo.object_bytes() + ctx.incoming_bytes
            for u in updates:
                if reason := self._check_ref(ctx, u):
                    reasons[u.ref] = reason
            tips = [u for u in updates if u.ref not in reasons and u.new != ZERO_BYTES]
            reasons.update(self._check_contents(ctx, tips))
            for u in tips:
                if u.ref not in reasons and (reason := self._check_limits(ctx, u, size_after)):
                    reasons[u.ref] = reason
            reasons.update(self._check_ref_count(ctx, [u for u in updates if u.ref not in reasons]))
        except RepoError as exc:  # git could not answer: refuse, nothing changes
            return {u.ref: reasons.get(u.ref, f"cannot check this push: {exc}") for u in updates}
        return reasons

    def _check_ref(self, ctx: PushContext, u: RefUpdate) -> str | None:
        old, new = u.old.decode(), u.new.decode()
        is_main = u.ref == MAIN_REF
        if new == ZERO:
            return "main is the wiki and cannot be deleted" if is_main else None
        if u.ref.startswith(b"refs/heads/") and _object_type(ctx, new) != "commit":
            # a tag on a branch would be peeled by the worktree sync: main moved without an event
            return "a branch must point at a commit: push tags under refs/tags/"
        if _object_type(ctx, new, peel=True) != "commit":
            return "only commits and tags of commits may be pushed"
        if is_main and old != ZERO and not ctx.repo.is_ancestor(old, new):
            return "non-fast-forward: main cannot be rewritten; pull, merge and push again"
        return None

    def _check_contents(self, ctx: PushContext, tips: Sequence[RefUpdate]) -> dict[bytes, str]:
        """Content problems per ref, from one walk over every new commit of the push; only if
        that finds a problem is each ref walked alone, so the refusal names the refs it concerns."""
        if not tips or (problem := self._content_problem(ctx, [u.new.decode() for u in tips])) is None:
            return {}
        if len(tips) == 1:
            return {tips[0].ref: problem}
        return {u.ref: p for u in tips if (p := self._content_problem(ctx, [u.new.decode()]))}

    def _content_problem(self, ctx: PushContext, tips: list[str]) -> str | None:
        blobs: list[tuple[str, bytes]] = []
        for change in ctx.repo.new_entries(tips):
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
        sizes = ctx.repo.object_sizes(sorted({sha for sha, _ in blobs}))
        for sha, path in blobs:
            if sizes.get(sha, 0) > cap:
                return (f"file {_shown(path)} is {sizes[sha] / MB:.1f} MB, "
                        f"over the {self.limits.max_file_mb} MB per-file limit")
        return None

    def _check_limits(self, ctx: PushContext, u: RefUpdate, size_after: int) -> str | None:
        if size_after > self.limits.max_repo_bytes:
            return (f"repository size limit {self.limits.max_repo_mb} MB reached: "
                    f"push would make it {size_after / MB:.1f} MB")
        if u.ref != MAIN_REF:
            return None
        old, new = u.old.decode(), u.new.decode()
        # Packs compress: 200 MB of repeated text packs to kilobytes, so the files main checks
        # out (the worktree, what the indexer reads) are bounded too. A wiki already over a
        # limit (lowered since) may still shrink or stay the same.
        after = ctx.repo.tree_usage(new)
        before = ctx.repo.tree_usage(old) if old != ZERO and (
            after.pages > self.limits.max_pages or after.disk_bytes > self.limits.max_repo_bytes) else None
        if after.pages > self.limits.max_pages and after.pages > (before.pages if before else 0):
            return f"page limit {self.limits.max_pages} reached: push would make {after.pages} pages"
        if after.disk_bytes > self.limits.max_repo_bytes and after.disk_bytes > (before.disk_bytes if before else 0):
            return (f"repository size limit {self.limits.max_repo_mb} MB reached: the files on main would "
                    f"take {after.disk_bytes / MB:.1f} MB on disk")
        return None

    def _check_ref_count(self, ctx: PushContext, updates: Sequence[RefUpdate]) -> dict[bytes, str]:
        """Refuse the refs a push creates if the wiki would then hold over MAX_REFS besides main."""
        zero = ZERO_BYTES
        created = [u.ref for u in updates if u.old == zero and u.new != zero and u.ref != MAIN_REF]
        if not created:
            return {}
        deleted = sum(1 for u in updates if u.new == zero and u.ref != MAIN_REF)
        after = sum(1 for name in ctx.repo.ref_names() if name != MAIN_REF) + len(created) - deleted
        if after <= MAX_REFS:
            return {}
        reason = (f"ref limit reached: a wiki holds at most {MAX_REFS} branches and tags besides main: "
                  f"this push would make {after}; delete some and push again")
        return dict.fromkeys(created, reason)


def _shown(path: bytes) -> str:
    """A path as a refusal quotes it: a hostile 4 KB path would drown the reason."""
    name = path.decode("utf-8", "replace")
    return name if len(name) <= SHOWN_PATH else f"{name[:SHOWN_PATH // 2]}...{name[-SHOWN_PATH // 2:]}"
