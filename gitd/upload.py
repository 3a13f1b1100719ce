"""Upload-pack (fetch and clone): dulwich negotiates, native `git pack-objects` builds the pack.

dulwich's pure-Python pack writer made a 500-page clone ~3x slower than `git http-backend` and
cost ~10x its server CPU. Here dulwich still speaks the protocol (wants, haves, ACKs, shallow),
but the pack comes from `git pack-objects --revs`, exactly as git's own upload-pack makes it, and
a full clone (no haves) is served from a pack cached per set of wanted commits and streamed from
disk. Shallow clients and depth requests go to `git upload-pack --stateless-rpc` itself.
"""
from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from dulwich.protocol import (
    CAPABILITY_FILTER,
    CAPABILITY_INCLUDE_TAG,
    CAPABILITY_NO_DONE,
    CAPABILITY_THIN_PACK,
)
from dulwich.server import UploadPackHandler, _ProtocolGraphWalker

from wikibot.errors import InternalError

from .git_process import git_command, git_env
from .locks import make_folder, remove_tree

log = logging.getLogger(__name__)
CHUNK = 65515  # the most one side-band-64k packet carries
DEPTH_CAPABILITIES = (b"deepen-since", b"deepen-not", b"deepen-relative")
KEEP_CACHED = 2  # full-clone packs kept per wiki: the current one and the one before


class PackError(InternalError):
    """`git pack-objects` failed."""


def _stream(repo_path: Path, args: list[str], stdin: bytes) -> Iterator[bytes]:
    """Run `git args` fed `stdin` and yield its stdout as it comes (stdin and stderr are files,
    so the command can never block on a full pipe)."""
    with tempfile.TemporaryFile() as errors, tempfile.TemporaryFile() as feed:
        feed.write(stdin)
        feed.seek(0)
        proc = subprocess.Popen(git_command(repo_path, *args), stdin=feed, stdout=subprocess.PIPE,
                                stderr=errors, env=git_env())
        assert proc.stdout is not None
        try:
            while chunk := proc.stdout.read(CHUNK):
                yield chunk
        finally:  # also when the client went away: closing stdout ends the command
            proc.stdout.close()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.returncode != 0:
            errors.seek(0)
            raise PackError(f"git {args[0]} failed: {errors.read().decode(errors='replace').strip()}")


def _pack_objects(repo_path: Path, wants: Iterable[bytes], haves: Iterable[bytes], *,
                  thin: bool, include_tag: bool) -> Iterator[bytes]:
    args = ["pack-objects", "--revs", "--stdout", "-q", "--delta-base-offset"]
    if thin:
        args.append("--thin")
    if include_tag:
        args.append("--include-tag")
    revs = b"".join(w + b"\n" for w in wants) + b"".join(b"^" + h + b"\n" for h in haves)
    return _stream(repo_path, args, revs)


def needs_native(request: bytes) -> bool:
    """Shallow clients and depth changes go to git's own upload-pack, which handles every case.

    Looks at the request's pkt-lines for `shallow`/`deepen*` commands (not capability names).
    """
    pos = 0
    while pos + 4 <= len(request):
        try:
            size = int(request[pos:pos + 4], 16)
        except ValueError:
            return False  # not pkt-lines: dulwich will answer the protocol error
        if size < 4:
            pos += 4
            continue
        if request[pos + 4:pos + size].startswith((b"shallow ", b"deepen")):
            return True
        pos += size
    return False


def native_upload_pack(repo_path: Path, request: bytes) -> Iterator[bytes]:
    """`git upload-pack --stateless-rpc` answering `request` (already read, size-capped)."""
    return _stream(repo_path, ["upload-pack", "--stateless-rpc", "."], request)


class PackCache:
    """Full-clone packs of one wiki, named by the commits they hold, reused until a ref moves."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @staticmethod
    def key(wants: Iterable[bytes], refs: dict[bytes, bytes], include_tag: bool) -> str:
        """Names the pack by what it holds: the wanted commits and, for included tags, every ref."""
        parts = [b"wants", *sorted(wants), b"refs", *(r + b" " + s for r, s in sorted(refs.items())),
                 b"tags" if include_tag else b"no-tags"]
        return hashlib.sha256(b"\n".join(parts)).hexdigest()[:32]

    def stream(self, repo_path: Path, wants: list[bytes], refs: dict[bytes, bytes],
               include_tag: bool) -> Iterator[bytes]:
        """Yield the full pack for `wants`, from the cache or built now (and cached as it streams)."""
        path = self.directory / f"{self.key(wants, refs, include_tag)}.pack"
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            yield from self._build(repo_path, wants, include_tag, path)
            return
        with f:
            os.utime(path)  # most recently used packs survive pruning
            while chunk := f.read(CHUNK):
                yield chunk

    def _build(self, repo_path: Path, wants: list[bytes], include_tag: bool, path: Path) -> Iterator[bytes]:
        """Stream the pack as git makes it, keeping a copy in the cache.

        Clones take no lock, so the wiki may be deleted meanwhile, and its deletion removes the cache
        only once: a build that finds the repository gone at its end removes what it made of the cache
        (the client still gets its pack when git could finish it), and one that finds it gone at its
        start makes no folder at all.
        """
        chunks = _pack_objects(repo_path, wants, (), thin=False, include_tag=include_tag)
        tmp = self._temp_file() if _is_repository(repo_path) else None
        if tmp is None:
            yield from chunks
            return
        fd, name = tmp
        cached = False
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    yield chunk
            try:
                os.replace(name, path)  # atomic: readers see a whole pack or none
                cached = True
            except FileNotFoundError:
                pass  # the cache went with the wiki
            if cached:
                self._prune(keep=path)
        finally:
            if not cached:
                Path(name).unlink(missing_ok=True)
            if not _is_repository(repo_path):
                remove_tree(self.directory)

    def _temp_file(self) -> tuple[int, str] | None:
        """A new file to build a pack in, or None if the cache folder was removed as it was made."""
        make_folder(self.directory)
        try:
            return tempfile.mkstemp(dir=self.directory, prefix=".building-", suffix=".pack")
        except FileNotFoundError:
            return None

    def _prune(self, keep: Path) -> None:
        """Keep the newest packs; another process may be pruning too, so vanished files are fine."""
        dated = []
        for pack in self.directory.glob("*.pack"):
            try:
                dated.append((pack.stat().st_mtime, pack))
            except FileNotFoundError:
                continue
        for _, old in sorted((d for d in dated if d[1] != keep), reverse=True)[KEEP_CACHED - 1:]:
            old.unlink(missing_ok=True)


def _is_repository(repo_path: Path) -> bool:
    return (repo_path / ".git").is_dir()


class WikiUploadPackHandler(UploadPackHandler):
    """dulwich's upload-pack whose pack data comes from native git and a full-clone cache."""

    def __init__(self, backend, args, proto, *, repo_path: Path, cache: PackCache,
                 stateless_rpc: bool = True, advertise_refs: bool = False) -> None:
        super().__init__(backend, args, proto, stateless_rpc=stateless_rpc, advertise_refs=advertise_refs)
        self.repo_path = repo_path
        self.cache = cache

    def capabilities(self) -> list[bytes]:
        # Partial clone is not offered (wikis are small); the depth variants are, because requests
        # using them go to git's own upload-pack (see needs_native).
        return [c for c in super().capabilities() if c != CAPABILITY_FILTER] + list(DEPTH_CAPABILITIES)

    def handle(self) -> None:
        if self.advertise_refs:
            super().handle()
            return
        walker = _ProtocolGraphWalker(self, self.repo.object_store, self.repo.get_peeled,
                                      self.repo.refs.get_symrefs)
        refs = {r: s for r, s in self.repo.get_refs().items() if s in self.repo.object_store}
        wants = walker.determine_wants(refs)
        if not wants:
            return
        haves = self.repo.object_store.find_common_revisions(walker)
        if not walker.handle_done(not self.has_capability(CAPABILITY_NO_DONE), self._done_received):
            return
        self._start_pack_send_phase()
        include_tag = self.has_capability(CAPABILITY_INCLUDE_TAG)
        if haves:
            chunks = _pack_objects(self.repo_path, wants, haves,
                                   thin=self.has_capability(CAPABILITY_THIN_PACK), include_tag=include_tag)
        else:
            chunks = self.cache.stream(self.repo_path, wants, refs, include_tag)
        for chunk in chunks:
            self.write_pack_data(chunk)
        self.proto.write_pkt_line(None)
