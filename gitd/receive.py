"""Receive-pack for wiki repositories: quarantine the pack, check, then move refs under the lock.

The named seams the hooks component fills:
- `ReceivePolicy.check` runs after the pack is received (in quarantine) and before any ref
  moves; a reason refuses that ref (all refs for an atomic push). A push whose refs are all
  refused leaves the repository byte-identical: the quarantine is simply removed.
  Ref names given twice, clashing as file and folder (`a` and `a/b`), too long for a file, or
  under `refs/heads/main/` (main could then never be born) are refused before that, since
  dulwich could only find out half-way through moving refs.
- Under the lock, the wiki must still be there (`exists`): a push that waited for a deletion is
  refused whole, and nothing of the wiki is made again on disk.
- Refs then move one by one. A ref that fails to move is reported `ng` and the others still
  land; an atomic push instead puts back the refs it already moved. Results are kept per
  command, so every ref that moved is reported `ok`, synced and announced exactly once.
- `announce(Change)` is called for each ref that moved, still under the lock, so a wiki's
  changes are announced in the order they happened.
"""
from __future__ import annotations

import logging
from collections import Counter
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

from .change import Change
from .names import WikiName
from .quarantine import PackRejected, Quarantine
from .refs import MAIN, PUSHABLE_PREFIXES, ZERO, ref_clashes, ref_name_problem, remove_empty_folders
from .repository import Repository

log = logging.getLogger(__name__)
ZERO_BYTES = ZERO.encode()  # ZERO as dulwich spells ref values
MAIN_REF = MAIN.encode()
PUSHABLE = tuple(p.encode() for p in PUSHABLE_PREFIXES)
MAX_COMMANDS = 1000  # ref updates in one push: far more than any real push, bounded memory
DISCARD_LIMIT = 256 * MB
ATOMIC_FAILED = "atomic push failed: another ref could not be updated"


@dataclass(frozen=True)
class RefUpdate:
    ref: bytes
    old: bytes  # ZERO_BYTES when the ref is created
    new: bytes  # ZERO_BYTES when the ref is deleted

    @property
    def ref_name(self) -> str:
        return self.ref.decode("utf-8", "replace")


@dataclass(frozen=True)
class PushContext:
    """What a policy may look at: the repository seeing old plus quarantined objects (through git, and
    in-process through dulwich's `objects`), and the size of what came in."""

    repo: Repository
    objects: DiskObjectStore
    incoming_bytes: int

    @classmethod
    def of(cls, repo: Repository, quarantine: Quarantine) -> PushContext:
        return cls(repo.seeing(quarantine.env), quarantine.store, quarantine.size())


class ReceivePolicy(Protocol):
    """Checks a push before any ref moves. Returns a reason per refused ref (keyed by ref)."""

    def check(self, ctx: PushContext, updates: Sequence[RefUpdate]) -> dict[bytes, str]: ...


@dataclass
class ReceiveSession:
    """Everything one push needs from the platform: the lock, the policies, the follow-ups."""

    wiki: WikiName
    actor: str | None
    repo: Repository
    lock: Callable[[], AbstractContextManager[object]]  # the wiki's writer lock
    exists: Callable[[], bool]  # is the wiki still there (recorded, and its repository)? asked under the lock
    sync_worktree: Callable[[], None]
    announce: Callable[[Change], None]
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
        statuses = [(u.ref, (reason or "ok").encode()) for u, reason in zip(updates, reasons, strict=True)]
        self._report([(b"unpack", b"ok"), *statuses])

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
        if all(u.new == ZERO_BYTES for u in updates):
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

    def _apply(self, updates: list[RefUpdate], quarantine: Quarantine) -> list[str | None]:
        """Under the wiki lock: check every command, move the accepted refs, then sync and announce
        those that moved. Returns, per command, None if its ref moved or why it did not."""
        atomic = self.has_capability(CAPABILITY_ATOMIC)
        with self.session.lock():
            if not self.session.exists():  # deleted while the pack came in: no ref may move, nothing be made
                return [f"no such wiki: {self.session.wiki}"] * len(updates)
            reasons = self._check(updates, quarantine)
            if reasons and atomic:
                return [reasons.get(i, "atomic push failed: another ref was refused") for i in range(len(updates))]
            pending = [i for i in range(len(updates)) if i not in reasons]
            if pending:
                quarantine.accept()
                moved = self._move_all(updates, pending, reasons)
                if atomic and len(moved) < len(pending):
                    moved = self._roll_back(updates, moved, reasons)
                self._follow_up([updates[i] for i in moved])
        return [reasons.get(i) for i in range(len(updates))]

    def _check(self, updates: list[RefUpdate], quarantine: Quarantine) -> dict[int, str]:
        """Why each refused command (by position) may not move its ref; nothing moves here."""
        reasons: dict[int, str] = {}
        named = Counter(u.ref for u in updates)
        for i, u in enumerate(updates):
            if named[u.ref] > 1:
                reasons[i] = f"{u.ref_name} is named more than once in this push"
            elif not u.ref.startswith(PUSHABLE) or not check_ref_format(u.ref):
                reasons[i] = "only branches (refs/heads/*) and tags (refs/tags/*) may be pushed"
            elif u.new != ZERO_BYTES and (problem := ref_name_problem(u.ref)):  # deleting one stays possible
                reasons[i] = problem
            elif self._current(u.ref) != u.old:
                reasons[i] = "fetch first: the ref changed since you fetched"
        created = {u.ref: i for i, u in enumerate(updates)
                   if i not in reasons and u.old == ZERO_BYTES and u.new != ZERO_BYTES}
        for ref, other in ref_clashes(created, self.repo.refs.allkeys()).items():
            reasons[created[ref]] = (f"{updates[created[ref]].ref_name} clashes with "
                                     f"{other.decode('utf-8', 'replace')}: a ref cannot also be a folder of refs")
        pending = [i for i in range(len(updates)) if i not in reasons]
        ctx = PushContext.of(self.session.repo, quarantine)
        if not ctx.repo.connected([updates[i].new.decode() for i in pending if updates[i].new != ZERO_BYTES]):
            reasons.update((i, "missing objects: the push does not contain all it refers to") for i in pending)
        for policy in self.session.policies:
            pending = [i for i in pending if i not in reasons]
            if not pending:
                break
            refused = policy.check(ctx, [updates[i] for i in pending])  # refs are unique by now
            reasons.update((i, refused[updates[i].ref]) for i in pending if updates[i].ref in refused)
        return reasons

    def _move_all(self, updates: list[RefUpdate], pending: list[int], reasons: dict[int, str]) -> list[int]:
        """Move each pending ref; one that fails gets its reason and the others still move (an
        atomic push stops there). Returns the positions of the refs that moved."""
        moved: list[int] = []
        for n, i in enumerate(pending):
            if self._move(updates[i]):
                moved.append(i)
                continue
            reasons[i] = "failed to update ref on the server; try again"
            if self.has_capability(CAPABILITY_ATOMIC):
                reasons.update((j, ATOMIC_FAILED) for j in pending[n + 1:])
                break
        return moved

    def _roll_back(self, updates: list[RefUpdate], moved: list[int], reasons: dict[int, str]) -> list[int]:
        """Atomic push, a ref failed: put the moved refs back. Returns those that stay moved."""
        stuck: list[int] = []
        for i in reversed(moved):
            u = updates[i]
            if self._move(RefUpdate(u.ref, old=u.new, new=u.old)):
                reasons[i] = ATOMIC_FAILED
            else:
                log.error("push to %s: %s moved but could not be put back", self.session.wiki, u.ref_name)
                stuck.append(i)
        return sorted(stuck)

    def _follow_up(self, moved: list[RefUpdate]) -> None:
        """Refs have moved: sync the worktree if main did, then announce each moved ref once."""
        if any(u.ref == MAIN_REF and u.new != ZERO_BYTES for u in moved):
            self._sync()
        for u in moved:
            self.session.announce(Change(self.session.wiki, u.ref_name, u.old.decode(), u.new.decode(),
                                         "push", self.session.actor))

    def _sync(self) -> None:
        """The refs have moved: the push is accepted whatever happens here, so report, never raise."""
        try:
            self.session.sync_worktree()
        except Exception:
            log.exception("push to %s accepted but the worktree could not be updated", self.session.wiki)
            if self.has_capability(CAPABILITY_SIDE_BAND_64K):
                note = b"wikibot: pushed, but the server's worktree lags behind; an admin has been told\n"
                self.proto.write_sideband(SIDE_BAND_CHANNEL_PROGRESS, note)

    def _current(self, ref: bytes) -> bytes:
        try:
            return self.repo.refs[ref]
        except KeyError:
            return ZERO_BYTES

    def _move(self, u: RefUpdate) -> bool:
        """Compare-and-swap one ref; False (logged) if it could not move, whatever the reason.

        dulwich creates a ref's folders before it fails; left behind, they would block that name
        (an empty `refs/heads/main/` folder and main could never be born), so they are removed.
        """
        refs = self.repo.refs
        try:
            if u.new == ZERO_BYTES:
                moved = refs.remove_if_equals(u.ref, u.old)
            elif u.old == ZERO_BYTES:
                moved = refs.add_if_new(u.ref, u.new)
            else:
                moved = refs.set_if_equals(u.ref, u.old, u.new)
        except Exception:  # a stale .lock, a file where a folder should be, a full disk...
            log.exception("push to %s: could not move %s", self.session.wiki, u.ref_name)
            moved = False
        if not moved:
            remove_empty_folders(Path(self.repo.controldir()) / "refs", u.ref)
        return moved

    def _report(self, status: list[tuple[bytes, bytes]]) -> None:
        for ref, msg in status[1:]:
            if msg != b"ok" and self.has_capability(CAPABILITY_SIDE_BAND_64K):
                note = f"wikibot: {ref.decode('utf-8', 'replace')} refused: {msg.decode()}\n"
                self.proto.write_sideband(SIDE_BAND_CHANNEL_PROGRESS, note.encode())
        if self.has_capability(CAPABILITY_REPORT_STATUS):
            self._report_status(status)
