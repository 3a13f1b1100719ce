"""The platform core: state, repositories and the account operations every entry point shares.

The CLI, the dashboard and the HTTP endpoints all go through `Core`, so limits and validation
are enforced in one place whatever path a change takes.
"""
from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from wikibot.config import Config, TierLimits
from wikibot.errors import NotFound, WikibotError

from .acl import role_of
from .change import Change, Source
from .commits import CommitConflict, FileChange, commit_changes
from .locks import remove_empty_folder, remove_tree
from .names import WikiName, check_name, check_new_name, is_valid_name
from .permissions import keep_private
from .receive import ReceivePolicy, ReceiveSession
from .records import ROLES, SCOPES, Grant, Token, User, Wiki
from .refs import MAIN, ZERO
from .repos import Repos
from .repository import Repository
from .secrets import check_password, ensure_secret_key, generate_password, hash_password, new_token_secret, token_hash
from .store import Store, StoreError, open_store

log = logging.getLogger(__name__)
PolicyFactory = Callable[[TierLimits], ReceivePolicy]
Announcer = Callable[[Change], None]
UserCleanup = Callable[["Core", User], object]


class CoreError(WikibotError):
    """An account or wiki operation was refused; the message is meant for the user."""


class NoSuchWiki(CoreError, NotFound):
    """The wiki is not there (any more, or not yet): every surface answers it as not found (404)."""


NO_PASSWORD = "!"  # the password hash of an account that signs in only through an identity provider
MIN_PASSWORD, MAX_PASSWORD = 8, 1024  # characters
MAX_TITLE, MAX_PURPOSE, MAX_FULL_NAME, MAX_EMAIL = 200, 2000, 200, 254
MAX_TOKEN_WIKIS = 50  # wikis one token may be limited to: each is checked on every request it makes
MAX_TOKENS = 100  # tokens per user (expired ones go when they would pass it): each is a row listings read
MAX_NOTE = 200  # characters of a token's note


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise CoreError(f"password too short: use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise CoreError(f"password too long: use at most {MAX_PASSWORD} characters")


def plain(text: str, *, lines: bool = False) -> bool:
    """No control characters (NUL and the like no store keeps; line breaks only where `lines`)."""
    return not any((ord(c) < 32 and not (lines and c in "\n\r\t")) or ord(c) == 127 for c in text)


def check_profile(email: str, full_name: str) -> None:
    if len(email) > MAX_EMAIL or (email and ("@" not in email or any(c.isspace() for c in email))) \
            or not plain(email):
        raise CoreError(f"{email[:60]!r} is not an email address")
    if len(full_name) > MAX_FULL_NAME or not plain(full_name):
        raise CoreError(f"a name is at most {MAX_FULL_NAME} characters on one line")


def check_wiki_text(title: str, purpose: str) -> None:
    if len(title) > MAX_TITLE or len(purpose) > MAX_PURPOSE:
        raise CoreError(f"keep the title under {MAX_TITLE} and the purpose under {MAX_PURPOSE} characters")
    if not plain(title) or not plain(purpose, lines=True):
        raise CoreError("the title is one line, and neither it nor the purpose may hold control characters")


@dataclass(frozen=True)
class Core:
    """`policies` check every write before a ref moves (each built from the wiki owner's limits);
    `announcers` hear of every ref that moved. Both come in at construction (see wikibot.wiring)."""

    config: Config
    store: Store
    repos: Repos
    policies: tuple[PolicyFactory, ...] = ()
    announcers: tuple[Announcer, ...] = ()
    user_cleanups: tuple[UserCleanup, ...] = ()  # what else goes with an account (the web wiki's drafts)

    @classmethod
    def open(cls, config: Config, *, policies: Sequence[PolicyFactory] = (), announcers: Sequence[Announcer] = (),
             hook_scripts: Mapping[str, str] | None = None, user_cleanups: Sequence[UserCleanup] = ()) -> Core:
        repos = Repos(config.repos_dir, config.locks_dir, dict(hook_scripts or {}))
        return cls(config, open_store(config), repos, tuple(policies), tuple(announcers), tuple(user_cleanups))

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
                 admin: bool = False, tier: str = "free", platform_account: bool = False, full_name: str = "",
                 invite: str | None = None, no_password: bool = False) -> tuple[User, str]:
        """Create a user; returns it with its password (generated when none is given). Reserved names
        are the platform's: only its own account (`platform_account`, the one `wikibot init` makes)
        may take one. `invite` is the id of the invite link spent on it (refused if spent already);
        `no_password` makes an account that signs in only through an identity provider."""
        (check_name if platform_account else check_new_name)(name, "user name")
        self.config.limits(tier)  # unknown tiers are refused before anything is written
        check_profile(email, full_name)
        if no_password:
            password, password_hash = "", NO_PASSWORD
        else:
            password = password if password is not None else generate_password()
            check_new_password(password)
            password_hash = hash_password(password)
        user = User(name=name, email=email, password_hash=password_hash, tier=tier,
                    admin=admin, created=time.time(), full_name=full_name)
        self.store.add_user(user, invite=invite)  # a taken name is refused before the invite is spent
        return user, password

    def update_profile(self, name: str, *, email: str, full_name: str) -> User:
        check_profile(email, full_name)
        self.user(name)
        return self.store.update_user(name, {"email": email, "full_name": full_name})

    def change_password(self, name: str, current: str, new: str, *, proven: bool = False) -> User:
        """A new password, given the current one (an account without one, from an identity provider,
        sets its first with `current` empty). `proven`: the caller checked another proof that the
        account's owner asks (a sign-in through a linked provider just now) in place of the current one."""
        user = self.user(name)
        if user.password_hash != NO_PASSWORD and not proven and not check_password(user.password_hash, current):
            raise CoreError("the current password is wrong")
        check_new_password(new)
        return self.store.update_user(name, {"password_hash": hash_password(new)})

    def set_tier(self, name: str, tier: str) -> User:
        self.user(name)
        self.config.limits(tier)
        return self.store.update_user(name, {"tier": tier})

    def set_disabled(self, name: str, disabled: bool) -> User:
        """Stop (or let again) an account: its sessions and tokens stop working at once."""
        self.user(name)
        return self.store.update_user(name, {"disabled": disabled})

    def delete_user(self, name: str, purge: bool = False) -> list[str]:
        """Delete a user; with `purge`, their wikis too (returned). Without it, owned wikis refuse."""
        user = self.user(name)
        owned = self.store.list_wikis(owner=user.name)
        if owned and not purge:
            names = ", ".join(str(w.name) for w in owned)
            raise CoreError(f"user {name!r} owns {names}; delete those wikis first or pass --purge")
        for wiki in owned:
            self.delete_wiki(wiki.name)
        for cleanup in self.user_cleanups:  # hygiene: their failure never keeps an account that is asked to go
            try:
                cleanup(self, user)
            except Exception:
                log.exception("cleaning up after user %s failed", user.name)
        self.store.delete_user(name)
        for root in (self.config.repos_dir, self.config.locks_dir, self.config.cache_dir / "packs"):
            remove_empty_folder(root / user.name)  # each wiki's deletion did already, unless one raced it
        return [str(w.name) for w in owned]

    def user(self, name: str) -> User:
        user = self.store.get_user(name) if is_valid_name(name) else None  # odd bytes never reach the store
        if user is None:
            raise CoreError(f"no such user: {name!r}")
        return user

    # wikis
    def wiki(self, name: WikiName) -> Wiki:
        wiki = self.store.get_wiki(name)
        if wiki is None:
            raise CoreError(f"no such wiki: {name}")
        return wiki

    def repo(self, name: WikiName) -> Repository:
        """The read API of `name`'s repository (see repository.py)."""
        return self.repos.repo(name)

    def check_new_wiki(self, name: WikiName) -> None:
        """Why `name` cannot be created now (CoreError): callers with costly preparation
        (cloning a template) ask before it; `create_wiki` asks too."""
        check_new_name(name.slug, "wiki name")
        limits = self.limits_of(name.owner)
        if self.store.get_wiki(name) is not None:
            raise CoreError(f"wiki {name} already exists")
        if len(self.store.list_wikis(name.owner)) >= limits.max_wikis:
            raise CoreError(f"user {name.owner!r} already has {limits.max_wikis} wiki(s), the limit of their tier")
        if self.repos.path(name).exists():
            raise CoreError(f"a repository for {name} already exists on disk; remove it first")

    def create_wiki(self, name: WikiName, title: str = "", purpose: str = "", public: bool = False) -> Wiki:
        """Record and initialise an empty wiki repository; nothing is left behind on failure."""
        title, purpose = title.strip(), purpose.strip()
        check_wiki_text(title, purpose)
        self.check_new_wiki(name)
        wiki = Wiki(owner=name.owner, slug=name.slug, title=title or name.slug, purpose=purpose, public=public,
                    created=time.time())
        # the store re-checks the owner, existence and the quota atomically: another creation or
        # the owner's deletion may have raced
        self.store.add_wiki(wiki, max_owned=self.limits_of(name.owner).max_wikis)
        try:
            self.repos.create(name)
            # A deletion (of the wiki, or of its owner with --purge) may have removed the record
            # while the repository was being made, finding no folder to remove yet: look again
            # now the folder exists, under the lock that deletion takes to remove it.
            with self.repos.lock(name):
                gone = self.store.get_wiki(name) is None
        except Exception:
            self._forget_wiki(name)
            raise
        if gone:
            self.repos.delete(name)
            raise CoreError(f"wiki {name} was not created: the owner was deleted meanwhile")
        return wiki

    def _forget_wiki(self, name: WikiName) -> None:
        """Undo a creation: the record (if still there) and whatever part of the folder exists."""
        try:
            self.store.delete_wiki(name)
        except StoreError:
            pass  # already removed by a concurrent deletion
        self.repos.delete(name)

    def delete_wiki(self, name: WikiName) -> None:
        """Remove the record, the repository and its cached packs, and announce `main` gone so derived
        data goes too. A repository without a record (a creation that raced a deletion) is removed as well.

        All of it happens under the wiki's lock. The announcement, a move of `main` to ZERO (no push may
        delete main), makes the queue forget the wiki's earlier events (hooks/queue.py); announced under
        the lock, it precedes every event of a wiki re-created under the name, whose writes need the
        lock too, so none of those is forgotten. Released with no repository left, the lock takes its
        file with it; the owner's folders go once empty.
        """
        with self.repos.lock(name):
            if self.store.get_wiki(name) is None and not self.repos.path(name).exists():
                raise NoSuchWiki(f"no such wiki: {name}")
            head = self.repos.head(name)
            try:
                self.store.delete_wiki(name)
            except StoreError:
                pass  # no record (any more): the repository still goes
            self.repos.remove_locked(name)
            remove_tree(self.pack_cache_dir(name))
            self.end_connector_grants(name)
            self.announce(Change(name, MAIN, head or ZERO, ZERO, "sync"))

    def still_there(self, wiki: Wiki) -> bool:
        """Is `wiki` (this one: a wiki made again under its name is another) still recorded and on disk?"""
        record = self.store.get_wiki(wiki.name)
        return record is not None and record.created == wiki.created and self.repos.exists(wiki.name)

    def pack_cache_dir(self, name: WikiName) -> Path:
        """Where full-clone packs of `name` are cached (see upload.py)."""
        return self.config.cache_dir / "packs" / name.owner / name.slug

    def set_public(self, name: WikiName, public: bool) -> Wiki:
        self.wiki(name)
        self.store.set_public(name, public)
        return self.wiki(name)

    def update_wiki(self, name: WikiName, *, title: str, purpose: str, public: bool) -> Wiki:
        """The wiki's title, purpose and visibility, as its settings page sets them."""
        self.wiki(name)
        title, purpose = title.strip() or name.slug, purpose.strip()
        check_wiki_text(title, purpose)
        return self.store.update_wiki(name, {"title": title, "purpose": purpose, "public": public})

    def grant(self, name: WikiName, user: str, role: str) -> Grant:
        wiki = self.wiki(name)
        if role not in ROLES or role == "owner":
            raise CoreError(f"invalid role {role!r}: use editor or viewer")
        self.user(user)
        if user == wiki.owner:
            raise CoreError(f"{user!r} owns {name} already")
        limits = self.limits_of(wiki.owner)
        grant = Grant(wiki=name, user=user, role=role)  # type: ignore[arg-type]
        # the checks above give clear errors; the store repeats the existence ones under its lock
        self.store.set_grant(grant, max_grants=limits.max_collaborators)
        return grant

    def revoke(self, name: WikiName, user: str) -> None:
        self.wiki(name)
        if not self.store.remove_grant(name, user):
            raise CoreError(f"{user!r} has no role on {name}")
        self.end_connector_grants(name, user)

    def end_connector_grants(self, name: WikiName, user: str | None = None) -> None:
        """What MCP connectors were given for `name` (by `user`, or by anyone) ends: its access and
        refresh tokens. A consent was for this wiki, as it was then: a wiki made again under its name
        or a role given again later is a new question."""
        for token in self.store.list_tokens(user):
            if token.client and name in token.wikis:
                self.store.delete_token(token.id)

    # tokens
    def create_token(self, user: str, scope: str = "read", wikis: Sequence[WikiName] = (),
                     expires_days: float | None = None, note: str = "") -> tuple[Token, str]:
        """Create a personal access token; returns the record and the secret, shown only once.

        `wikis` counts each wiki once (at most MAX_TOKEN_WIKIS); a user holds at most MAX_TOKENS tokens,
        expired ones deleted to make room. That count is read before the insert, not in its transaction:
        creations racing each other may pass it together, by a few tokens at most."""
        holder = self.user(user)
        if scope not in SCOPES:
            raise CoreError(f"invalid scope {scope!r}: use read or write")
        limited = tuple(dict.fromkeys(wikis))  # each once, in the order given
        if len(limited) > MAX_TOKEN_WIKIS:
            raise CoreError(f"a token can be limited to at most {MAX_TOKEN_WIKIS} wikis; leave the list empty "
                            "for every wiki you can reach")
        for name in limited:  # only wikis the user can read; others are "no such wiki", as in every answer
            wiki = self.store.get_wiki(name)
            if wiki is None or (not wiki.public and role_of(self.store, wiki, holder) is None):
                raise CoreError(f"no such wiki: {name}")
        if expires_days is not None and not (0 < expires_days <= 36500):  # also refuses nan and inf
            raise CoreError("--expires-days must be positive (at most 36500)")
        if len(note) > MAX_NOTE or not plain(note):
            raise CoreError(f"a token's note is one line of at most {MAX_NOTE} characters")
        now = time.time()
        held = self.personal_tokens(user)
        if len(held) >= MAX_TOKENS:  # expired ones count, or tokens of a minute would pass the cap for ever
            for token in held:
                if token.expires is not None and token.expires <= now:
                    self.store.delete_token(token.id)  # worth nothing: they make room
            held = self.personal_tokens(user)
        if len(held) >= MAX_TOKENS:
            raise CoreError(f"you have {len(held)} tokens; revoke some first")
        secret = new_token_secret()
        token = Token(id=secrets.token_hex(4), user=user, hash=token_hash(secret), scope=scope,  # type: ignore[arg-type]
                      wikis=limited, created=now, note=note,
                      expires=None if expires_days is None else now + expires_days * 86400)
        self.store.add_token(token)  # refused there if the user was deleted meanwhile
        return token, secret

    def personal_tokens(self, user: str) -> list[Token]:
        """The user's personal access tokens (not those MCP connectors were given through OAuth)."""
        return [t for t in self.store.list_tokens(user=user) if not t.client]

    def revoke_token(self, token_id: str) -> None:
        if not self.store.delete_token(token_id):
            raise CoreError(f"no such token: {token_id!r}")

    def announce(self, change: Change) -> None:
        """Tell every announcer that a ref moved; their failures never fail the write."""
        for announcer in self.announcers:
            try:
                announcer(change)
            except Exception:
                log.exception("announcing %s %s failed", change.wiki, change.ref)

    def limits_of(self, owner: str) -> TierLimits:
        return self.config.limits(self.user(owner).tier)

    def receive_session(self, name: WikiName, actor: str | None) -> ReceiveSession:
        """What a write to `name` by `actor` needs: the lock, policies and follow-ups. The wiki counts as
        there while its record (this one: not a wiki made again under the name) and repository are."""
        limits = self.limits_of(name.owner)
        wiki = self.store.get_wiki(name)
        return ReceiveSession(
            wiki=name,
            actor=actor,
            repo=self.repos.repo(name),
            lock=lambda: self.repos.lock(name),
            exists=lambda: wiki is not None and self.still_there(wiki),
            sync_worktree=lambda: self.repos.sync_worktree(name),
            announce=self.announce,
            policies=[make(limits) for make in self.policies],
            max_pack_bytes=limits.max_repo_bytes,
        )

    def commit(self, name: WikiName, changes: Sequence[FileChange], *, message: str,
               author: tuple[str, str], actor: str | None, source: Source, base: str | None = None) -> str:
        """Commit file changes to the wiki's main branch as any push would land; returns the new HEAD.

        `base` is the revision the writer read: if HEAD moved since, CommitConflict and nothing
        changes. Limits and content rules are the push policy's; a refusal is CommitRefused.
        """
        return self.commit_with(name, lambda head: changes, message=message, author=author,
                                actor=actor, source=source, base=base)

    def commit_with(self, name: WikiName, build: Callable[[str | None], Sequence[FileChange]], *,
                    message: str, author: tuple[str, str], actor: str | None, source: Source,
                    base: str | None = None, lock_timeout: float | None = None,
                    checkpoint: Callable[[], None] | None = None, lock_held: bool = False) -> str:
        """Like `commit`, with the changes computed by `build(head)` under the wiki's lock.

        For writers whose changes depend on the current content (page-level conflict checks, link
        rewrites on rename): no other write can land between reading and committing. `build` may
        raise to refuse; nothing changes then. Writers serving a request with a deadline give up
        waiting for the lock after `lock_timeout` s (LockTimeout) and pass `checkpoint`, their last
        chance to stop, called just before the ref moves. A caller that already holds the wiki's lock
        (the web wiki takes it before Otterwiki's, always in that order) says `lock_held`. A wiki deleted
        (or not yet made) by the time the lock is held is NoSuchWiki, before anything is read from it.
        """
        with nullcontext() if lock_held else self.repos.lock(name, timeout=lock_timeout):
            if self.store.get_wiki(name) is None or not self.repos.exists(name):
                raise NoSuchWiki(f"no such wiki: {name}")
            session = self.receive_session(name, actor)
            head = self.repos.head(name)
            if base is not None and base != head:
                raise CommitConflict(head)
            changes = build(head)
            return commit_changes(session, changes, message=message, author=author, base=base, source=source,
                                  head=head, checkpoint=checkpoint)
