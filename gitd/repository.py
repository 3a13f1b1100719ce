"""The one read API for a wiki's repository: `Core.repo(wiki)` hands out a `Repository`.

Every component reads git through it (MCP tools, the indexer, the hooks' push checks and event
consumers, bootstrap, the CLI), so how git is run stays private to gitd. Reads name commits, never
the worktree: the worktree may be mid-sync, and a commit pins what a reader saw. A `Repository`
made with a quarantine's `env` also sees a push's objects before any ref points at them.

Import-light (no dulwich): the post-commit hook reads HEAD through it on every web edit.
"""
from __future__ import annotations

import os
import re
import secrets
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from wikibot.errors import NotFound

from .git_process import RepoError, batch_blobs, git, git_command, git_env, run_git
from .refs import MAIN

REVISION_RE = re.compile(r"[0-9a-fA-F]{4,64}|HEAD(~\d{1,6})?")
COMMIT_ID_RE = re.compile(r"[0-9a-fA-F]{7,64}")  # what a write may name as its base: never HEAD
BLOCK = 4096  # what a file (or folder) takes on disk at least, and the unit it grows by
DISCARD_BLOCK = 1 << 16

__all__ = ["COMMIT_ID_RE", "Commit", "Entry", "NewEntry", "Repository", "RepoError", "RevisionNotFound",
           "TreeUsage", "unified_diff"]


class RevisionNotFound(NotFound):
    """A revision that names no commit of this wiki."""


class ReadTimedOut(RepoError):
    """git was stopped at the caller's time limit; its output is incomplete."""


@dataclass(frozen=True)
class Entry:
    path: str
    size: int  # -1 when sizes were not asked for
    blob: str


@dataclass(frozen=True)
class NewEntry:
    """A tree entry a commit adds or modifies (against its first parent)."""

    mode: str
    sha: str
    path: bytes


@dataclass(frozen=True)
class Blob:
    """The first bytes of a file (at most the limit asked for) and its whole size."""

    path: str
    data: bytes
    size: int

    @property
    def cut(self) -> bool:
        return len(self.data) < self.size


@dataclass(frozen=True)
class TreeUsage:
    """What a commit's files take once checked out: the worktree, and what the indexer reads."""

    pages: int
    disk_bytes: int  # each file and folder rounded up to whole blocks: 200,000 empty files are not free


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


def literal(path: str) -> str:
    """A pathspec matching exactly `path`: page names may hold glob characters ("[ab].md")."""
    return f":(literal){path}"


def _on_disk(size: int) -> int:
    """A file's size rounded up to whole blocks, at least one (an empty file still takes an inode)."""
    return max(1, -(-size // BLOCK)) * BLOCK


class Repository:
    """Reads of one repository. `env` adds to git's environment (a quarantine's object directories)."""

    def __init__(self, path: Path, env: dict[str, str] | None = None) -> None:
        self.path = path
        self.env = env

    def seeing(self, env: dict[str, str]) -> Repository:
        """This repository, also seeing the objects of a quarantine (`Quarantine.env`)."""
        return Repository(self.path, {**(self.env or {}), **env})

    def _run(self, *args: str, input: bytes | None = None,
             ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[bytes]:
        return run_git(self.path, *args, env=self.env, input=input, ok_codes=ok_codes)

    def _text(self, *args: str) -> str:
        return git(self.path, *args, env=self.env)

    # refs and commits
    def head(self) -> str | None:
        """The commit main points at (None while unborn), read from the ref files without running git:
        git writes them atomically, and a read costs microseconds instead of a process."""
        git_dir = self.path / ".git"
        try:
            return (git_dir / "refs" / "heads" / "main").read_text().strip() or None
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

    def checked_out(self) -> tuple[str, str] | None:
        """(branch ref, commit) the worktree's HEAD is on, or None when detached or unborn."""
        ref = self._run("symbolic-ref", "-q", "HEAD", ok_codes=(0, 1, 128))
        new = self._run("rev-parse", "-q", "--verify", "HEAD^{commit}", ok_codes=(0, 1, 128))
        if ref.returncode or new.returncode:
            return None
        return ref.stdout.decode().strip(), new.stdout.decode().strip()

    def resolve(self, revision: str) -> str:
        """The full commit id of `revision` (a sha, a prefix, HEAD or HEAD~N)."""
        if not REVISION_RE.fullmatch(revision):
            raise RevisionNotFound(f"revision {revision!r} is not a commit id of this wiki")
        proc = self._run("rev-parse", "--verify", "-q", "--end-of-options", f"{revision}^{{commit}}",
                         ok_codes=(0, 1, 128))
        sha = proc.stdout.decode().strip()
        if proc.returncode != 0 or not sha:
            raise RevisionNotFound(f"revision {revision!r} is not a commit of this wiki")
        return sha

    def has_commit(self, sha: str) -> bool:
        return self._run("cat-file", "-e", f"{sha}^{{commit}}", ok_codes=(0, 1, 128)).returncode == 0

    def first_parent(self, commit: str) -> str | None:
        proc = self._run("rev-parse", "-q", "--verify", f"{commit}^1", ok_codes=(0, 1, 128))
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    def is_ancestor(self, old: str, new: str) -> bool:
        return self._run("merge-base", "--is-ancestor", old, new, ok_codes=(0, 1)).returncode == 0

    def ref_names(self) -> list[bytes]:
        return [name for name in self._run("for-each-ref", "--format=%(refname)").stdout.split(b"\n") if name]

    def connected(self, tips: Sequence[str]) -> bool:
        """Everything reachable from `tips` is present (in the repository, or the quarantine of `env`)."""
        if not tips:
            return True
        return self._run("rev-list", "--objects", "--quiet", *tips, "--not", "--all",
                         ok_codes=(0, 1, 128)).returncode == 0

    def count_commits(self, base: str, head: str) -> int:
        return int(self._text("rev-list", "--count", f"{base}..{head}").strip())

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
        parts = self._text(*args).split(mark)[1:]
        commits = []
        for i in range(0, len(parts) - 4, 5):
            revision, author, email, date, rest = parts[i:i + 5]
            subject, _, changed = rest.partition("\0")
            names = [p for p in changed.lstrip("\n").split("\0") if p]
            files = tuple((names[j], names[j + 1]) for j in range(0, len(names) - 1, 2))
            commits.append(Commit(revision, author, email, date, subject, files))
        return commits

    # trees and files
    def entries(self, commit: str, under: str = "", sizes: bool = True) -> list[Entry]:
        """Every file at `commit` (recursively), optionally only below the folder `under`. Sizes cost
        a look at every blob (slow on big wikis); without them `size` is -1."""
        args = ["ls-tree", "-r", *(["-l"] if sizes else []), "-z", commit]
        if under:
            args += ["--", under.rstrip("/") + "/"]
        entries = []
        for line in self._text(*args).split("\0"):
            if not line:
                continue
            meta, _, path = line.partition("\t")
            _, kind, blob, *size = meta.split()
            if kind == "blob":
                entries.append(Entry(path, int(size[0]) if size else -1, blob))
        return entries

    def page_files(self, commit: str) -> list[str]:
        """The wiki pages (`*.md` files) in `commit`: what limits count and search indexes."""
        listed = self._text("ls-tree", "-r", "-z", "--name-only", commit).split("\0")
        return [path for path in listed if path.endswith(".md")]

    def tree_usage(self, commit: str) -> TreeUsage:
        """Pages, and the disk the files and folders at `commit` take once checked out (the
        repository's attributes make the worktree hold the blobs' bytes exactly), from one `ls-tree`."""
        out = self._run("ls-tree", "-r", "-t", "-l", "-z", "--full-tree", commit).stdout
        pages = disk_bytes = 0
        for entry in out.split(b"\0"):
            if not entry:
                continue
            meta, _, path = entry.partition(b"\t")
            _, kind, _, size = meta.split(maxsplit=3)  # size "-" for folders (and submodules)
            disk_bytes += _on_disk(int(size)) if size.isdigit() else BLOCK
            pages += kind == b"blob" and path.endswith(b".md")
        return TreeUsage(pages, disk_bytes)

    def blobs(self, commit: str, paths: Sequence[str]) -> dict[str, tuple[str, int]]:
        """(blob id, size) of each path that is a file at `commit`; folders and missing paths are left out."""
        if not paths:
            return {}
        request = "".join(f"{commit}:{path}\n" for path in paths).encode()
        lines = self._run("cat-file", "--batch-check", input=request).stdout.decode().splitlines()
        found = {}
        for path, line in zip(paths, lines, strict=True):
            parts = line.split()
            if len(parts) == 3 and parts[1] == "blob":
                found[path] = (parts[0], int(parts[2]))
        return found

    def blob_id(self, commit: str, path: str) -> str | None:
        found = self.blobs(commit, [path]).get(path)
        return found[0] if found else None

    def object_sizes(self, shas: Sequence[str]) -> dict[str, int]:
        """Size of each object among `shas` that exists."""
        if not shas:
            return {}
        out = self._run("cat-file", "--batch-check=%(objectname) %(objectsize)",
                        input="\n".join(shas).encode() + b"\n").stdout
        sizes = {}
        for line in out.decode().splitlines():
            sha, size = line.split(" ", 1)
            if size != "missing":
                sizes[sha] = int(size)
        return sizes

    def read(self, commit: str, path: str) -> bytes | None:
        """The file's content at `commit`, or None if it does not exist there."""
        return self.read_many(commit, [path]).get(path)

    def read_many(self, commit: str, paths: Sequence[str], max_bytes: int | None = None) -> dict[str, bytes]:
        """Contents of the files that exist at `commit` (blobs only, each at most `max_bytes`), read in
        one `git cat-file --batch`."""
        if max_bytes is not None:
            sizes = self.blobs(commit, paths)
            paths = [p for p in paths if p in sizes and sizes[p][1] <= max_bytes]
        if not paths:
            return {}
        request = "".join(f"{commit}:{path}\n" for path in paths).encode()
        return batch_blobs(self._run("cat-file", "--batch", input=request).stdout, list(paths))

    def read_blob(self, blob: str) -> bytes:
        return self._run("cat-file", "blob", blob).stdout

    def read_prefixes(self, commit: str, paths: Sequence[str], limit: int) -> Iterator[Blob]:
        """The files among `paths` at `commit` (missing ones and non-blobs skipped), each cut to its first
        `limit` bytes, with bounded memory: one git process, one request in flight (no pipe can fill
        up), and the rest of a long blob discarded as it arrives. Close the iterator to stop early."""
        proc = subprocess.Popen(git_command(self.path, "cat-file", "--batch"), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=git_env(self.env))
        assert proc.stdin is not None and proc.stdout is not None
        try:
            for path in paths:
                if "\n" in path:
                    continue  # cannot be asked for on one line; git never lists such a file anyway
                proc.stdin.write(f"{commit}:{path}\n".encode())
                proc.stdin.flush()
                header = proc.stdout.readline()
                if not header:
                    raise RepoError(f"git cat-file stopped answering in {self.path}")
                if header.endswith((b" missing\n", b" ambiguous\n")):
                    continue
                _, kind, size_field = header.rstrip(b"\n").rsplit(b" ", 2)
                size = int(size_field)
                data = _read_exactly(proc.stdout, size, limit)
                proc.stdout.read(1)  # the newline after each object
                if kind == b"blob":
                    yield Blob(path, data, size)
        finally:
            proc.stdin.close()
            proc.stdout.close()
            proc.kill()
            proc.wait()

    # differences
    def changed_files(self, old: str, new: str) -> list[str]:
        out = self._text("diff-tree", "-r", "--no-renames", "--name-only", "-z", old, new)
        return [path for path in out.split("\0") if path]

    def changed_pages(self, base: str, head: str) -> tuple[list[str], list[str]]:
        """(pages added or modified, pages deleted) from `base` to `head`."""
        out = self._text("diff", "--name-status", "-z", "--no-renames", base, head, "--", "*.md").split("\0")
        changed, deleted = [], []
        for status, path in zip(out[0::2], out[1::2], strict=False):
            if path.endswith(".md"):
                (deleted if status == "D" else changed).append(path)
        return changed, deleted

    def new_entries(self, tips: Sequence[str]) -> Iterator[NewEntry]:
        """Every entry that commits new to the repository add or modify (vs their first parent),
        for all `tips` in one walk.

        An entry a new commit shares with its first parent came from that parent, which is either
        already in the repository (and was checked when it arrived) or new (and checked here), so
        diffing against first parents covers every tree of a push.
        """
        out = self._run("log", "--no-renames", "--diff-merges=first-parent", "--raw", "--no-abbrev", "-z",
                        "--format=", *tips, "--not", "--all").stdout
        tokens = iter(out.split(b"\0"))
        for token in tokens:
            meta = token.lstrip(b"\n")
            if not meta.startswith(b":"):
                continue
            path = next(tokens)
            _, new_mode, _, new_sha, status = meta.decode().lstrip(":").split(" ")
            if status[0] in "AMT":
                yield NewEntry(new_mode, new_sha, path)

    def diff(self, old: str | None, new: str, paths: Sequence[str] | None = None, max_bytes: int = 200_000,
             timeout: float | None = None) -> str:
        """Unified diff from `old` (None: the empty tree) to `new`, limited to `paths`; at most
        `max_bytes` are read from git, so a huge diff costs no more than that. Git is killed after
        `timeout` s (a diff of two big, very different pages can take minutes): ReadTimedOut. Pages
        are diffed as text whatever a pushed .gitattributes says (`binary`, a textconv, a driver)."""
        base = old or self._text("hash-object", "-t", "tree", "/dev/null").strip()
        args = ["diff", "--no-color", "--text", "--no-textconv", "--no-ext-diff", "--no-renames", base, new,
                "--", *map(literal, paths or [])]
        with subprocess.Popen(git_command(self.path, *args), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              env=git_env(self.env)) as proc:
            assert proc.stdout is not None
            killed = threading.Event()

            def kill() -> None:
                killed.set()
                proc.kill()

            killer = threading.Timer(max(0.0, timeout), kill) if timeout is not None else None
            if killer:
                killer.start()
            try:
                out = proc.stdout.read(max_bytes + 1)
            finally:
                if killer:
                    killer.cancel()
                proc.kill()
        if killed.is_set():
            raise ReadTimedOut(f"git diff in {self.path} was stopped after {timeout:.1f} s")
        text = out[:max_bytes].decode("utf-8", "replace")
        if len(out) > max_bytes:
            text += f"\n... diff cut at {max_bytes} bytes; ask for one page at a time\n"
        return text

    # disk
    def object_bytes(self) -> int:
        """Bytes the repository's objects take on disk (what the size limit counts), quarantines excluded."""
        total = 0
        for root, dirs, files in os.walk(self.path / ".git" / "objects"):
            dirs[:] = [d for d in dirs if not d.startswith("incoming-")]
            total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
        return total


def _read_exactly(stream, size: int, keep: int) -> bytes:
    """Read `size` bytes from `stream`, returning the first `keep` of them."""
    kept = stream.read(min(size, keep))
    left = size - len(kept)
    while left > 0:
        block = stream.read(min(left, DISCARD_BLOCK))
        if not block:
            raise RepoError("git cat-file ended in the middle of a blob")
        left -= len(block)
    return kept


def unified_diff(file: str, before: str, after: str) -> str:
    """A unified diff of two texts that `git apply` accepts, including the no-newline-at-end marker.
    Made by git, whose diff stays fast on any page: difflib takes minutes on a long page with its
    lines reordered."""
    with tempfile.TemporaryDirectory(prefix="wikibot-diff-") as tmp:
        folder = Path(tmp)
        (folder / "a").write_bytes(before.encode())
        (folder / "b").write_bytes(after.encode())
        # no repository around the temp folder may lend its config (diff.context=0 breaks `git apply`)
        out = run_git(folder, "diff", "--no-index", "--no-color", "--no-ext-diff", "--no-textconv", "--text",
                      "--diff-algorithm=myers", "-U3", "--", "a", "b", ok_codes=(0, 1),
                      env={"GIT_CEILING_DIRECTORIES": str(folder.parent)}).stdout
    hunks = out.find(b"\n@@ ")
    if hunks < 0:
        return ""
    return f"--- a/{file}\n+++ b/{file}\n" + out[hunks + 1:].decode("utf-8", "replace")
