"""Read-only access to one wiki's git objects at a revision.

Tools read commits, never the worktree: the worktree may be mid-sync, and a revision pins what an
agent saw so a later write can be checked against it. Every call is plain git plumbing run with the
platform's safe git environment.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from wikibot.gitd.repos import RepoError, git, run_git

REVISION_RE = re.compile(r"[0-9a-fA-F]{4,64}|HEAD(~\d{1,6})?")
LOG_FORMAT = "%x1e%H%x1f%an%x1f%ae%x1f%aI%x1f%s"  # with -z: record, NUL, then "status NUL path NUL" pairs


class RevisionNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Entry:
    path: str
    size: int
    blob: str


@dataclass(frozen=True)
class Commit:
    revision: str
    author: str
    email: str
    date: str  # ISO 8601
    message: str
    files: tuple[tuple[str, str], ...] = ()  # (status letter, path), when asked for

    def as_dict(self) -> dict:
        doc = {"revision": self.revision, "author": self.author, "date": self.date, "message": self.message}
        if self.files:
            doc["files"] = [{"status": status, "path": path} for status, path in self.files]
        return doc


class WikiRepo:
    def __init__(self, path: Path) -> None:
        self.path = path

    def head(self) -> str | None:
        proc = run_git(self.path, "rev-parse", "--verify", "-q", "HEAD^{commit}", ok_codes=(0, 1, 128))
        return proc.stdout.decode().strip() or None

    def resolve(self, revision: str) -> str:
        """The full commit id of `revision` (a sha, a prefix, HEAD or HEAD~N)."""
        if not REVISION_RE.fullmatch(revision):
            raise RevisionNotFound(f"revision {revision!r} is not a commit id of this wiki")
        proc = run_git(self.path, "rev-parse", "--verify", "-q", "--end-of-options", f"{revision}^{{commit}}",
                       ok_codes=(0, 1, 128))
        sha = proc.stdout.decode().strip()
        if proc.returncode != 0 or not sha:
            raise RevisionNotFound(f"revision {revision!r} is not a commit of this wiki")
        return sha

    def read(self, commit: str, path: str) -> bytes | None:
        """The file's content at `commit`, or None if it does not exist there."""
        return self.read_many(commit, [path]).get(path)

    def read_many(self, commit: str, paths: list[str]) -> dict[str, bytes]:
        """Contents of the files that exist at `commit` (blobs only), in one git process."""
        if not paths:
            return {}
        request = "".join(f"{commit}:{path}\n" for path in paths).encode()
        out = run_git(self.path, "cat-file", "--batch", input=request).stdout
        found: dict[str, bytes] = {}
        pos = 0
        for path in paths:
            end = out.index(b"\n", pos)
            header = out[pos:end].split()
            pos = end + 1
            if len(header) == 3 and header[1] == b"blob":
                size = int(header[2])
                found[path] = out[pos:pos + size]
                pos += size + 1
        return found

    def blob_id(self, commit: str, path: str) -> str | None:
        proc = run_git(self.path, "rev-parse", "--verify", "-q", f"{commit}:{path}", ok_codes=(0, 1, 128))
        return proc.stdout.decode().strip() or None

    def entries(self, commit: str, under: str = "") -> list[Entry]:
        """Every file at `commit` (recursively), optionally only below the folder `under`."""
        args = ["ls-tree", "-r", "-l", "-z", commit]
        if under:
            args += ["--", under.rstrip("/") + "/"]
        listed = git(self.path, *args).split("\0")
        entries = []
        for line in listed:
            if not line:
                continue
            meta, _, path = line.partition("\t")
            _, kind, blob, size = meta.split()
            if kind == "blob":
                entries.append(Entry(path, int(size), blob))
        return entries

    def log(self, commit: str, path: str | None = None, limit: int = 20, skip: int = 0,
            since: str | None = None, with_files: bool = False) -> list[Commit]:
        args = ["log", f"--format={LOG_FORMAT}", f"--max-count={limit}", f"--skip={skip}", "-z"]
        if since:
            args.append(f"--since={since}")
        if with_files:
            args += ["--name-status", "--no-renames"]
        args.append(commit)
        if path:
            args += ["--", path]
        out = git(self.path, *args)
        commits = []
        for record in out.split("\x1e")[1:]:
            head, _, rest = record.partition("\0")
            fields = head.split("\x1f")
            parts = [p for p in rest.lstrip("\n").split("\0") if p]
            files = tuple((parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2))
            commits.append(Commit(*fields, files=files))
        return commits

    def diff(self, old: str | None, new: str, paths: list[str] | None = None, max_bytes: int = 200_000) -> str:
        """Unified diff from `old` (None: the empty tree) to `new`, limited to `paths`."""
        base = old or git(self.path, "hash-object", "-t", "tree", "/dev/null").strip()
        args = ["diff", "--no-color", "--no-ext-diff", "--no-renames", base, new, "--"]
        text = git(self.path, *args, *(paths or []))
        if len(text) > max_bytes:
            text = text[:max_bytes] + f"\n... diff cut at {max_bytes} bytes; ask for one page at a time\n"
        return text

    def changed_files(self, old: str, new: str) -> list[str]:
        out = git(self.path, "diff-tree", "-r", "--no-renames", "--name-only", "-z", old, new)
        return [path for path in out.split("\0") if path]


__all__ = ["Commit", "Entry", "RepoError", "RevisionNotFound", "WikiRepo"]
