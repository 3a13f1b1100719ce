"""The platform core: state, repositories and the account operations every entry point shares.

The CLI, the dashboard and the HTTP endpoints all go through `Core`, so limits and validation
are enforced in one place whatever path a change takes.
"""
from __future__ import annotations

import logging
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from wikibot.config import Config, TierLimits

from .acl import Action, Decision, authorize, role_of
from .commits import CommitConflict, FileChange, commit_changes
from .names import check_name
from .permissions import keep_private
from .receive import ReceivePolicy, ReceiveSession, RefChange
from .records import ROLES, SCOPES, Grant, Token, User, Wiki
from .refs import MAIN, ZERO
from .repos import Repos
from .secrets import ensure_secret_key, generate_password, hash_password, new_token_secret, token_hash
from .store import Store, StoreError, TinyStore

log = logging.getLogger(__name__)


class CoreError(Exception):
    """An account or wiki operation was refused; the message is meant for the user."""


@dataclass
class Core:
    config: Config
    store: Store
    repos: Repos
    # Seams the hooks component fills (see wikibot.wiring): push checks built from the owner's
    # limits, and what to do when any ref of any wiki moved.
    policies: list[Callable[[TierLimits], ReceivePolicy]] = field(default_factory=list)
    announcers: list[Callable[[RefChange], None]] = field(default_factory=list)

    @classmethod
    def open(cls, config: Config) -> Core:
        return cls(config, TinyStore(config.db_path), Repos(config.repos_dir, config.locks_dir))

    def initialise(self) -> None:
        """Create the data dir layout and the secret key (idempotent), private to this account.

        Every process that serves the data dir calls this (CLI, `wikibot.app:create_app` under any
        gunicorn), so it sets the private umask for itself and its children, and closes the data
        dir itself to other accounts, which alone shuts them out of everything in it.
        """
        keep_private()
        for d in (self.config.data_dir, self.config.repos_dir, self.config.locks_dir, self.config.cache_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.config.data_dir.chmod(0o700)
        ensure_secret_key(self.config.secret_key_path)

    # users
    def add_user(self, name: str, email: str = "", password: str | None = None, *,
                 admin: bool = False, tier: str = "free") -> tuple[User, str]:
        """Create a user; returns it with its password (generated when none is given)."""
        check_name(name, "user name")
        self.config.limits(tier)  # unknown tiers are refused before anything is written
        password = password if password is not None else generate_password()
        if len(password) < 8:
            raise CoreError("password too short: use at least 8 characters")
        user = User(name=name, email=email, password_hash=hash_password(password), tier=tier,
                    admin=admin, created=time.time())
        self._guard(self.store.add_user, user)
        return user, password

    def delete_user(self, name: str, purge: bool = False) -> list[str]:
        """Delete a user; with `purge`, their wikis too (returned). Without it, owned wikis refuse."""
        user = self.user(name)
        owned = self.store.list_wikis(owner=user.name)
        if owned and not purge:
            names = ", ".join(w.full_name for w in owned)
            raise CoreError(f"user {name!r} owns {names}; delete those wikis first or pass --purge")
        for wiki in owned:
            self.delete_wiki(wiki.owner, wiki.slug)
        self._guard(self.store.delete_user, name)
        return [w.full_name for w in owned]

    def user(self, name: str) -> User:
        user = self.store.get_user(name)
        if user is None:
            raise CoreError(f"no such user: {name!r}")
        return user

    # wikis
    def wiki(self, owner: str, slug: str) -> Wiki:
        wiki = self.store.get_wiki(owner, slug)
        if wiki is None:
            raise CoreError(f"no such wiki: {owner}/{slug}")
        return wiki

    def check_new_wiki(self, owner: str, slug: str) -> None:
        """Why `owner/slug` cannot be created now (CoreError): callers with costly preparation
        (cloning a template) ask before it; `create_wiki` asks too."""
        check_name(owner, "user name")
        check_name(slug, "wiki name")
        limits = self.limits_of(owner)
        if self.store.get_wiki(owner, slug) is not None:
            raise CoreError(f"wiki {owner}/{slug} already exists")
        if len(self.store.list_wikis(owner)) >= limits.max_wikis:
            raise CoreError(f"user {owner!r} already has {limits.max_wikis} wiki(s), the limit of their tier")
        if self.repos.path(owner, slug).exists():
            raise CoreError(f"a repository for {owner}/{slug} already exists on disk; remove it first")

    def create_wiki(self, owner: str, slug: str, title: str = "", purpose: str = "",
                    public: bool = False) -> Wiki:
        """Record and initialise an empty wiki repository; nothing is left behind on failure."""
        self.check_new_wiki(owner, slug)
        wiki = Wiki(owner=owner, slug=slug, title=title or slug, purpose=purpose, public=public,
                    created=time.time())
        # the store re-checks the owner, existence and the quota atomically: another creation or
        # the owner's deletion may have raced
        self._guard(self.store.add_wiki, wiki, max_owned=self.limits_of(owner).max_wikis)
        try:
            self.repos.create(owner, slug)
            # A deletion (of the wiki, or of its owner with --purge) may have removed the record
            # while the repository was being made, finding no folder to remove yet: look again
            # now the folder exists, under the lock that deletion takes to remove it.
            with self.repos.lock(owner, slug):
                gone = self.store.get_wiki(owner, slug) is None
        except Exception:
            self._forget_wiki(owner, slug)
            raise
        if gone:
            self.repos.delete(owner, slug)
            raise CoreError(f"wiki {owner}/{slug} was not created: the owner was deleted meanwhile")
        return wiki

    def _forget_wiki(self, owner: str, slug: str) -> None:
        """Undo a creation: the record (if still there) and whatever part of the folder exists."""
        try:
            self.store.delete_wiki(owner, slug)
        except StoreError:
            pass  # already removed by a concurrent deletion
        self.repos.delete(owner, slug)

    def delete_wiki(self, owner: str, slug: str) -> None:
        """Remove the record and the repository, then announce `main` gone so derived data goes too.
        A repository without a record (a creation that raced a deletion) is removed as well."""
        if self.store.get_wiki(owner, slug) is None and not self.repos.path(owner, slug).exists():
            raise CoreError(f"no such wiki: {owner}/{slug}")
        head = self.repos.head(owner, slug)
        self._forget_wiki(owner, slug)  # no record (any more): the repository still goes
        shutil.rmtree(self.config.cache_dir / "packs" / owner / slug, ignore_errors=True)
        if head is not None:
            self.announce(RefChange(f"{owner}/{slug}", MAIN, head, ZERO, "sync", None))

    def set_public(self, owner: str, slug: str, public: bool) -> Wiki:
        self.wiki(owner, slug)
        self._guard(self.store.set_public, owner, slug, public)
        return self.wiki(owner, slug)

    def grant(self, owner: str, slug: str, user: str, role: str) -> Grant:
        wiki = self.wiki(owner, slug)
        if role not in ROLES or role == "owner":
            raise CoreError(f"invalid role {role!r}: use editor or viewer")
        self.user(user)
        if user == wiki.owner:
            raise CoreError(f"{user!r} owns {wiki.full_name} already")
        limits = self.limits_of(wiki.owner)
        grant = Grant(wiki=wiki.full_name, user=user, role=role)  # type: ignore[arg-type]
        # the checks above give clear errors; the store repeats the existence ones under its lock
        self._guard(self.store.set_grant, grant, max_grants=limits.max_collaborators)
        return grant

    def revoke(self, owner: str, slug: str, user: str) -> None:
        wiki = self.wiki(owner, slug)
        if not self.store.remove_grant(wiki.full_name, user):
            raise CoreError(f"{user!r} has no role on {wiki.full_name}")

    # tokens
    def create_token(self, user: str, scope: str = "read", wikis: tuple[str, ...] = (),
                     expires_days: float | None = None, note: str = "") -> tuple[Token, str]:
        """Create a personal access token; returns the record and the secret, shown only once."""
        holder = self.user(user)
        if scope not in SCOPES:
            raise CoreError(f"invalid scope {scope!r}: use read or write")
        for full in wikis:  # only wikis the user can read; others are "no such wiki", as in every answer
            owner, _, slug = full.partition("/")
            wiki = self.store.get_wiki(owner, slug)
            if wiki is None or (not wiki.public and role_of(self.store, wiki, holder) is None):
                raise CoreError(f"no such wiki: {full}")
        if expires_days is not None and expires_days <= 0:
            raise CoreError("--expires-days must be positive")
        now = time.time()
        secret = new_token_secret()
        token = Token(id=secrets.token_hex(4), user=user, hash=token_hash(secret), scope=scope,  # type: ignore[arg-type]
                      wikis=tuple(wikis), created=now, note=note,
                      expires=None if expires_days is None else now + expires_days * 86400)
        self._guard(self.store.add_token, token)  # refused there if the user was deleted meanwhile
        return token, secret

    def revoke_token(self, token_id: str) -> None:
        if not self.store.delete_token(token_id):
            raise CoreError(f"no such token: {token_id!r}")

    # access
    def authorize(self, secret: str | None, owner: str, slug: str, action: Action) -> Decision:
        return authorize(self.store, secret, owner, slug, action)

    def announce(self, change: RefChange) -> None:
        """Tell every announcer that a ref moved; their failures never fail the write."""
        for announcer in self.announcers:
            try:
                announcer(change)
            except Exception:
                log.exception("announcing %s %s failed", change.wiki, change.ref)

    def limits_of(self, owner: str) -> TierLimits:
        return self.config.limits(self.user(owner).tier)

    def receive_session(self, owner: str, slug: str, actor: str | None) -> ReceiveSession:
        """What a write to `owner/slug` by `actor` needs: the lock, policies and follow-ups."""
        limits = self.limits_of(owner)
        return ReceiveSession(
            wiki=f"{owner}/{slug}",
            actor=actor,
            lock=lambda: self.repos.lock(owner, slug),
            sync_worktree=lambda: self.repos.sync_worktree(owner, slug),
            announce=self.announce,
            policies=[make(limits) for make in self.policies],
            max_pack_bytes=limits.max_repo_bytes,
        )

    def commit(self, owner: str, slug: str, changes: Sequence[FileChange], *, message: str,
               author: tuple[str, str], actor: str | None, source: str, base: str | None = None) -> str:
        """Commit file changes to the wiki's main branch as any push would land; returns the new HEAD.

        `base` is the revision the writer read: if HEAD moved since, CommitConflict and nothing
        changes. Limits and content rules are the push policy's; a refusal is CommitRefused.
        """
        return self.commit_with(owner, slug, lambda head: changes, message=message, author=author,
                                actor=actor, source=source, base=base)

    def commit_with(self, owner: str, slug: str, build: Callable[[str | None], Sequence[FileChange]], *,
                    message: str, author: tuple[str, str], actor: str | None, source: str,
                    base: str | None = None, lock_timeout: float | None = None,
                    checkpoint: Callable[[], None] | None = None) -> str:
        """Like `commit`, with the changes computed by `build(head)` under the wiki's lock.

        For writers whose changes depend on the current content (page-level conflict checks, link
        rewrites on rename): no other write can land between reading and committing. `build` may
        raise to refuse; nothing changes then. Writers serving a request with a deadline give up
        waiting for the lock after `lock_timeout` s (LockTimeout) and pass `checkpoint`, their last
        chance to stop, called just before the ref moves.
        """
        session = self.receive_session(owner, slug, actor)
        with self.repos.lock(owner, slug, timeout=lock_timeout):
            head = self.repos.head(owner, slug)
            if base is not None and base != head:
                raise CommitConflict(head)
            changes = build(head)
            return commit_changes(self.repos.path(owner, slug), session, changes, message=message,
                                  author=author, base=base, source=source, head=head, checkpoint=checkpoint)

    @staticmethod
    def _guard(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StoreError as exc:
            raise CoreError(str(exc)) from None
