"""Receive-pack for wiki repositories: quarantine the pack, check, then move refs under the lock.

The named seams the hooks component fills:
- `ReceivePolicy.check` runs after the pack is received (in quarantine) and before any ref
  moves; a reason refuses that ref (all refs for an atomic push). A push whose refs are all
  refused leaves the repository byte-identical: the quarantine is simply removed.
- `announce(RefChange)` is called for each ref that moved, still under the lock, so a wiki's
  changes are announced in the order they happened.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dulwich.errors import GitProtocolError
from dulwich.object_store import DiskObjectStore
from dulwich.objects import valid_hexsha
from dulwich.protocol import (
    CAPABILITY_ATOMIC,
    CAPABILITY_REPORT_STATUS,
    CAPABILITY_SIDE_BAND_64K,
    SIDE_BAND_CHANNEL_PROGRESS,
    extract_capabilities,
)
from dulwich.refs import check_ref_format
from dulwich.server import ReceivePackHandler

from wikibot.config import MB

from .quarantine import PackRejected, Quarantine
from .refs import MAIN, PUSHABLE_PREFIXES, ZERO
from .repos import RepoError, run_git

log = logging.getLogger(__name__)
ZERO_SHA = ZERO.encode()
MAIN_REF = MAIN.encode()
MAX_COMMANDS = 1000  # ref updates in one push: far more than any real push, bounded memory
DISCARD_LIMIT = 256 * MB


@dataclass(frozen=True)
class RefUpdate:
    ref: bytes
    old: bytes  # ZERO_SHA when the ref is created
    new: bytes  # ZERO_SHA when the ref is deleted

    @property
    def ref_name(self) -> str:
        return self.ref.decode("utf-8", "replace")


@dataclass(frozen=True)
class RefChange:
    """A ref of a wiki moved, by any path (push, web, MCP, bootstrap): what events are made of."""

    wiki: str  # "owner/slug"
    ref: str
    old: str  # ZERO when created
    new: str  # ZERO when deleted
    source: str
    actor: str | None


@dataclass(frozen=True)
class PushContext:
    """What a policy may look at: the repo, old plus quarantined objects (for git: `git_env`), the push size."""

    repo_path: Path
    git_env: dict[str, str]
    objects: DiskObjectStore
    incoming_bytes: int


class ReceivePolicy(Protocol):
    """Checks a push before any ref moves. Returns a reason per refused ref (keyed by ref)."""

    def check(self, ctx: PushContext, updates: Sequence[RefUpdate]) -> dict[bytes, str]: ...


@dataclass
class ReceiveSession:
    """Everything one push needs from the platform: the lock, the policies, the follow-ups."""

    wiki: str  # "owner/slug"
    actor: str | None
    lock: Callable[[], AbstractContextManager[object]]  # the wiki's writer lock
    sync_worktree: Callable[[], None]
    announce: Callable[[RefChange], None]
    policies: Sequence[ReceivePolicy] = field(default_factory=list)
    max_pack_bytes: int | None = None


class WikiReceivePackHandler(ReceivePackHandler):
    """dulwich's receive-pack with wikibot's ordering: quarantine, lock, check, move refs, sync."""

    def __init__(self, backend, args, proto, *, session: ReceiveSession, stateless_rpc: bool = True,
                 advertise_refs: bool = False) -> None:
        super().__init__(backend, args, proto, stateless_rpc=stateless_rpc, advertise_refs=advertise_refs)
        self.session = session

    def handle(self) -> None:
        if self.advertise_refs:
            super().handle()
            return
        updates = self._read_commands()
        if not updates:
            return
        quarantine = Quarantine(Path(self.repo.controldir()))
        try:
            unpack = self._receive_pack(updates, quarantine)
            if unpack != b"ok":
                self._report([(b"unpack", unpack)] + [(u.ref, b"unpacker error") for u in updates])
                return
            reasons = self._apply(updates, quarantine)
        finally:
            quarantine.discard()
        self._report([(b"unpack", b"ok")] + [(u.ref, reasons.get(u.ref, "ok").encode()) for u in updates])

    def _read_commands(self) -> list[RefUpdate]:
        line = self.proto.read_pkt_line()
        while line is not None and line.startswith(b"shallow "):
            line = self.proto.read_pkt_line()  # a shallow clone says where its history ends
        if line is None:
            return []
        line, caps = extract_capabilities(line)
        self.set_client_capabilities(caps)
        updates: list[RefUpdate] = []
        while line:
            parts = line.rstrip(b"\n").split(b" ")
            if len(parts) != 3 or not valid_hexsha(parts[0]) or not valid_hexsha(parts[1]):
                raise GitProtocolError(f"Invalid ref update line from client: {line[:100]!r}")
            if len(updates) == MAX_COMMANDS:
                raise GitProtocolError(f"more than {MAX_COMMANDS} ref updates in one push")
            updates.append(RefUpdate(ref=parts[2], old=parts[0], new=parts[1]))
            line = self.proto.read_pkt_line()
        return updates

    def _receive_pack(self, updates: list[RefUpdate], quarantine: Quarantine) -> bytes:
        """Index the pack (if any) into the quarantine; b"ok" or the reason it was refused."""
        if all(u.new == ZERO_SHA for u in updates):
            return b"ok"
        try:
            quarantine.receive(self.proto.recv, self.session.max_pack_bytes)
        except PackRejected as exc:
            log.warning("push to %s: pack refused: %s", self.session.wiki, exc)
            self._discard_rest()
            if "maximum allowed size" in str(exc):
                mb = (self.session.max_pack_bytes or 0) / MB
                return f"push too large: over the {mb:g} MB repository size limit".encode()
            return str(exc).encode()
        return b"ok"

    def _discard_rest(self) -> None:
        """Read and drop what the client still sends (nothing is stored), so git reads our reason.

        HTTP/1.1 clients read the answer only after sending the whole body; past DISCARD_LIMIT
        bytes the connection is simply cut instead.
        """
        discarded = 0
        while discarded < DISCARD_LIMIT and (chunk := self.proto.recv(1 << 16)):
            discarded += len(chunk)

    def _apply(self, updates: list[RefUpdate], quarantine: Quarantine) -> dict[bytes, str]:
        """Under the wiki lock: check every ref, then move the accepted ones; returns refusals."""
        reasons: dict[bytes, str] = {}
        with self.session.lock():
            for u in updates:
                if not u.ref.startswith(tuple(p.encode() for p in PUSHABLE_PREFIXES)) or not check_ref_format(u.ref):
                    reasons[u.ref] = "only branches (refs/heads/*) and tags (refs/tags/*) may be pushed"
                elif self._current(u.ref) != u.old:
                    reasons[u.ref] = "fetch first: the ref changed since you fetched"
            candidates = [u for u in updates if u.ref not in reasons]
            if not self._connected([u.new for u in candidates if u.new != ZERO_SHA], quarantine):
                for u in candidates:
                    reasons.setdefault(u.ref, "missing objects: the push does not contain all it refers to")
            ctx = PushContext(Path(self.repo.path), quarantine.env, quarantine.store, quarantine.size())
            candidates = [u for u in updates if u.ref not in reasons]
            for policy in self.session.policies:
                if candidates:
                    reasons.update(policy.check(ctx, candidates))
                    candidates = [u for u in candidates if u.ref not in reasons]
            if reasons and self.has_capability(CAPABILITY_ATOMIC):
                for u in updates:
                    reasons.setdefault(u.ref, "atomic push failed")
            if len(reasons) == len(updates):
                return reasons
            quarantine.accept()
            for u in updates:
                if u.ref not in reasons and not self._move(u):
                    reasons[u.ref] = "failed to update ref"
            if any(u.ref == MAIN_REF and u.new != ZERO_SHA and u.ref not in reasons for u in updates):
                self._sync()
            for u in updates:
                if u.ref not in reasons:
                    self.session.announce(RefChange(self.session.wiki, u.ref_name, u.old.decode(), u.new.decode(),
                                                    "push", self.session.actor))
        return reasons

    def _connected(self, tips: list[bytes], quarantine: Quarantine) -> bool:
        """Everything reachable from `tips` is in the repository or the quarantine."""
        if not tips:
            return True
        proc = run_git(Path(self.repo.path), "rev-list", "--objects", "--quiet", *(t.decode() for t in tips),
                       "--not", "--all", env=quarantine.env, ok_codes=(0, 1, 128))
        return proc.returncode == 0

    def _sync(self) -> None:
        """The refs have moved: the push is accepted whatever happens here, so report, never raise."""
        try:
            self.session.sync_worktree()
        except RepoError as exc:
            log.error("push to %s accepted but the worktree could not be updated: %s", self.session.wiki, exc)
            if self.has_capability(CAPABILITY_SIDE_BAND_64K):
                note = b"wikibot: pushed, but the server's worktree lags behind; an admin has been told\n"
                self.proto.write_sideband(SIDE_BAND_CHANNEL_PROGRESS, note)

    def _current(self, ref: bytes) -> bytes:
        try:
            return self.repo.refs[ref]
        except KeyError:
            return ZERO_SHA

    def _move(self, u: RefUpdate) -> bool:
        if u.new == ZERO_SHA:
            return self.repo.refs.remove_if_equals(u.ref, u.old)
        return self.repo.refs.set_if_equals(u.ref, None if u.old == ZERO_SHA else u.old, u.new)

    def _report(self, status: list[tuple[bytes, bytes]]) -> None:
        for ref, msg in status[1:]:
            if msg != b"ok" and self.has_capability(CAPABILITY_SIDE_BAND_64K):
                note = f"wikibot: {ref.decode('utf-8', 'replace')} refused: {msg.decode()}\n"
                self.proto.write_sideband(SIDE_BAND_CHANNEL_PROGRESS, note.encode())
        if self.has_capability(CAPABILITY_REPORT_STATUS):
            self._report_status(status)
