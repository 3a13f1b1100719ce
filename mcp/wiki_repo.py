"""Read-only access to one wiki's git objects at a revision.

Tools read commits, never the worktree: the worktree may be mid-sync, and a revision pins what an
agent saw so a later write can be checked against it. Every call is plain git plumbing run with the
platform's safe git environment.
"""
from __future__ import annotations

import re
import secrets
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from wikibot.gitd.refs import MAIN
from wikibot.gitd.repos import RepoError, git, git_command, git_env, read_files, run_git

from .deadline import Deadline

REVISION_RE = re.compile(r"[0-9a-fA-F]{4,64}|HEAD(~\d{1,6})?")
COMMIT_ID_RE = re.compile(r"[0-9a-fA-F]{7,64}")  # what a write may name as its base: never HEAD


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
    def __init__(self, path: Path, deadline: Deadline | None = None) -> None:
        self.path = path
        self.deadline = deadline  # of the request this serves: git runs that may be slow stop there

    def head(self) -> str | None:
        """The commit main points at (None while unborn), read from the ref files without running git:
        git writes them atomically, and a read costs microseconds instead of a process."""
        git_dir = self.path / ".git"
        loose = git_dir / "refs" / "heads" / "main"
        try:
            return loose.read_text().strip() or None
        except FileNotFoundError:
            pass
        try:
            packed = (git_dir / "packed-refs").read_text()
        except FileNotFoundError:
            return None
        for line in packed.splitlines():
            sha, _, name = line.partition(" ")
            if name == MAIN:
                return sha
        return None

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

    def read_many(self, commit: str, paths: list[str], max_bytes: int | None = None) -> dict[str, bytes]:
        """Contents of the files that exist at `commit` (blobs only, each at most `max_bytes`)."""
        if max_bytes is not None:
            sizes = self.blobs(commit, paths)
            paths = [p for p in paths if p in sizes and sizes[p][1] <= max_bytes]
        return read_files(self.path, commit, paths)

    def blobs(self, commit: str, paths: list[str]) -> dict[str, tuple[str, int]]:
        """(blob id, size) of each path that is a file at `commit`; folders and missing paths are left out."""
        if not paths:
            return {}
        request = "".join(f"{commit}:{path}\n" for path in paths).encode()
        lines = run_git(self.path, "cat-file", "--batch-check", input=request).stdout.decode().splitlines()
        found = {}
        for path, line in zip(paths, lines, strict=True):
            parts = line.split()
            if len(parts) == 3 and parts[1] == "blob":
                found[path] = (parts[0], int(parts[2]))
        return found

    def read_blob(self, blob: str) -> bytes:
        return run_git(self.path, "cat-file", "blob", blob).stdout

    def blob_id(self, commit: str, path: str) -> str | None:
        found = self.blobs(commit, [path]).get(path)
        return found[0] if found else None

    def entries(self, commit: str, under: str = "", sizes: bool = True) -> list[Entry]:
        """Every file at `commit` (recursively), optionally only below the folder `under`. Sizes cost
        a look at every blob (slow on big wikis); without them `size` is -1."""
        args = ["ls-tree", "-r", *(["-l"] if sizes else []), "-z", commit]
        if under:
            args += ["--", under.rstrip("/") + "/"]
        listed = git(self.path, *args).split("\0")
        entries = []
        for line in listed:
            if not line:
                continue
            meta, _, path = line.partition("\t")
            _, kind, blob, *size = meta.split()
            if kind == "blob":
                entries.append(Entry(path, int(size[0]) if size else -1, blob))
        return entries

    def log(self, commit: str, path: str | None = None, limit: int = 20, skip: int = 0,
            since: str | None = None, with_files: bool = False) -> list[Commit]:
        # Names and subjects may hold any character, so fields are cut at a random marker no commit
        # can know in advance. With -z, "status NUL path NUL" pairs follow each record.
        mark = f"\x1e{secrets.token_hex(8)}\x1f"
        fields = mark.join(("%H", "%an", "%ae", "%aI", "%s"))
        args = ["log", f"--format={mark}{fields}", f"--max-count={limit}", f"--skip={skip}", "-z"]
        if since:
            args.append(f"--since={since}")
        if with_files:
            args += ["--name-status", "--no-renames"]
        args.append(commit)
        if path:
            args += ["--", literal(path)]
        parts = git(self.path, *args).split(mark)[1:]
        commits = []
        for i in range(0, len(parts) - 4, 5):
            revision, author, email, date, rest = parts[i:i + 5]
            subject, _, changed = rest.partition("\0")
            names = [p for p in changed.lstrip("\n").split("\0") if p]
            files = tuple((names[j], names[j + 1]) for j in range(0, len(names) - 1, 2))
            commits.append(Commit(revision, author, email, date, subject, files))
        return commits

    def diff(self, old: str | None, new: str, paths: list[str] | None = None, max_bytes: int = 200_000) -> str:
        """Unified diff from `old` (None: the empty tree) to `new`, limited to `paths`; at most
        `max_bytes` are read from git, so a huge diff costs no more than that. Git is killed at the
        deadline (a diff of two big, very different pages can take minutes). Pages are diffed as text
        whatever a pushed .gitattributes says (`binary`, a textconv or an external driver)."""
        base = old or git(self.path, "hash-object", "-t", "tree", "/dev/null").strip()
        args = ["diff", "--no-color", "--text", "--no-textconv", "--no-ext-diff", "--no-renames", base, new,
                "--", *map(literal, paths or [])]
        if self.deadline:
            self.deadline.check("diffing")
        with subprocess.Popen(git_command(self.path, *args), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              env=git_env()) as proc:
            assert proc.stdout is not None
            killer = threading.Timer(self.deadline.remaining(), proc.kill) if self.deadline else None
            if killer:
                killer.start()
            try:
                out = proc.stdout.read(max_bytes + 1)
            finally:
                if killer:
                    killer.cancel()
                proc.kill()
        if self.deadline:  # git may have been killed: its output is cut short
            self.deadline.check("answering with the diff")
        text = out[:max_bytes].decode("utf-8", "replace")
        if len(out) > max_bytes:
            text += f"\n... diff cut at {max_bytes} bytes; ask for one page at a time\n"
        return text

    def changed_files(self, old: str, new: str) -> list[str]:
        out = git(self.path, "diff-tree", "-r", "--no-renames", "--name-only", "-z", old, new)
        return [path for path in out.split("\0") if path]


def literal(path: str) -> str:
    """A pathspec matching exactly `path`: page names may hold glob characters ("[ab].md")."""
    return f":(literal){path}"


__all__ = ["Commit", "Entry", "RepoError", "RevisionNotFound", "WikiRepo"]
