"""Receive-pack for wiki repositories: the pack is stored first, then refs move under the wiki lock.

The named seams the hooks component fills:
- `ReceivePolicy.check` runs after the pack is stored and before any ref moves; a reason refuses
  that ref (all refs for an atomic push). Refused refs leave refs and worktree untouched.
- `ReceiveListener(wiki, updates, actor)` is called after the lock is released with the refs that
  did move.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import zlib

from dulwich.errors import ApplyDeltaError, ChecksumMismatch, GitProtocolError, ObjectFormatException
from dulwich.objects import valid_hexsha
from dulwich.protocol import (
    CAPABILITY_ATOMIC,
    CAPABILITY_REPORT_STATUS,
    CAPABILITY_SIDE_BAND_64K,
    SIDE_BAND_CHANNEL_PROGRESS,
    extract_capabilities,
)
from dulwich.refs import check_ref_format
from dulwich.repo import Repo
from dulwich.server import ReceivePackHandler

log = logging.getLogger(__name__)
ZERO_SHA = b"0" * 40
MAIN_REF = b"refs/heads/main"
PACK_ERRORS = (OSError, ChecksumMismatch, ApplyDeltaError, AssertionError, zlib.error, ObjectFormatException)


@dataclass(frozen=True)
class RefUpdate:
    ref: bytes
    old: bytes  # ZERO_SHA when the ref is created
    new: bytes  # ZERO_SHA when the ref is deleted

    @property
    def ref_name(self) -> str:
        return self.ref.decode("utf-8", "replace")


class ReceivePolicy(Protocol):
    """Checks a push before any ref moves. Returns a reason per refused ref (keyed by ref)."""

    def check(self, repo: Repo, updates: Sequence[RefUpdate]) -> dict[bytes, str]: ...


ReceiveListener = Callable[[str, Sequence[RefUpdate], "str | None"], None]


@dataclass
class ReceiveSession:
    """Everything one push needs from the platform: the lock, the policy, the follow-ups."""

    wiki: str  # "owner/slug"
    actor: str | None

    lock: Callable[[], object]  # returns a context manager holding the wiki's writer lock
    policies: Sequence[ReceivePolicy]
    sync_worktree: Callable[[], None]
    listeners: Sequence[ReceiveListener]


class WikiReceivePackHandler(ReceivePackHandler):
    """dulwich's receive-pack with wikibot's ordering: store pack, check, lock, move refs, sync."""

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
        unpack = self._store_pack(updates)
        if unpack != b"ok":
            self._report([(b"unpack", unpack)] + [(u.ref, b"unpacker error") for u in updates])
            return
        reasons = self._apply(updates)
        self._report([(b"unpack", b"ok")] + [(u.ref, reasons.get(u.ref, "ok").encode()) for u in updates])
        moved = [u for u in updates if u.ref not in reasons]
        for listener in self.session.listeners if moved else ():
            try:
                listener(self.session.wiki, moved, self.session.actor)
            except Exception:  # a follow-up must never turn an accepted push into an error
                log.exception("receive listener failed for %s", [u.ref_name for u in moved])

    def _read_commands(self) -> list[RefUpdate]:
        line = self.proto.read_pkt_line()
        if line is None:
            return []
        line, caps = extract_capabilities(line)
        self.set_client_capabilities(caps)
        updates: list[RefUpdate] = []
        while line:
            parts = line.rstrip(b"\n").split(b" ")
            if len(parts) != 3 or not valid_hexsha(parts[0]) or not valid_hexsha(parts[1]):
                raise GitProtocolError(f"Invalid ref update line from client: {line!r}")
            updates.append(RefUpdate(ref=parts[2], old=parts[0], new=parts[1]))
            line = self.proto.read_pkt_line()
        return updates

    def _store_pack(self, updates: list[RefUpdate]) -> bytes:
        """Read the pack (if any) into the object store; unreferenced until refs move."""
        if all(u.new == ZERO_SHA for u in updates):
            return b"ok"
        try:
            self.repo.object_store.add_thin_pack(self.proto.read, self.proto.recv)
        except PACK_ERRORS as exc:
            log.warning("push to %s: unpack failed: %s", self.repo.path, exc)
            return str(exc).replace("\n", " ").encode()
        return b"ok"

    def _apply(self, updates: list[RefUpdate]) -> dict[bytes, str]:
        """Under the wiki lock: check every ref, then move the accepted ones; returns refusals."""
        reasons: dict[bytes, str] = {}
        with self.session.lock():  # type: ignore[attr-defined]
            for u in updates:
                if not u.ref.startswith(b"refs/") or not check_ref_format(u.ref):
                    reasons[u.ref] = "funny refname"
                    continue
                if self._current(u.ref) != u.old:
                    reasons[u.ref] = "fetch first: the ref changed since you fetched"
            candidates = [u for u in updates if u.ref not in reasons]
            for policy in self.session.policies:
                if candidates:
                    reasons.update(policy.check(self.repo, candidates))
                    candidates = [u for u in candidates if u.ref not in reasons]
            if reasons and self.has_capability(CAPABILITY_ATOMIC):
                for u in updates:
                    reasons.setdefault(u.ref, "atomic push failed")
            for u in updates:
                if u.ref in reasons:
                    continue
                if not self._move(u):
                    reasons[u.ref] = "failed to update ref"
            if any(u.ref == MAIN_REF and u.ref not in reasons for u in updates):
                self.session.sync_worktree()
        return reasons

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
