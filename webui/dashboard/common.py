"""What every dashboard page shares: who is signed in, the wiki a URL names as that visitor may see
it, usage against the owner's tier, and the fixed notices a redirect may carry."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from flask import abort, g, redirect, request

from wikibot.config import MB
from wikibot.gitd.acl import role_of
from wikibot.gitd.core import Core
from wikibot.gitd.locks import file_lock
from wikibot.gitd.names import InvalidName, WikiName
from wikibot.gitd.records import Role, User, Wiki
from wikibot.local_state import AttemptLimiter

# What a redirect after a change may say (`?done=KEY`): fixed texts, so a link cannot make the page say
# anything else.
NOTICES = {
    "created": "The wiki was created.",
    "saved": "Saved.",
    "collaborator": "The collaborator's role was saved.",
    "removed": "The collaborator was removed.",
    "deleted": "The wiki and everything of it were deleted.",
    "revoked": "The token was revoked: it works nowhere any more.",
    "password": "Your password was changed.",
    "user": "The user was saved.",
    "account-deleted": "Your account and everything of it were deleted.",
    "linked": "The sign-in was linked to your account.",
    "unlinked": "The sign-in was unlinked from your account.",
    "signed-out": "Every sign-in to your account was ended: sign in again.",
}


@dataclass(frozen=True)
class Limiters:
    logins: AttemptLimiter  # failed sign-ins (and refused sign-ups, against their address only)
    signups: AttemptLimiter  # accounts made by open sign-up, per client address
    passwords: AttemptLimiter  # wrong current passwords in a signed-in session: never the sign-in's counter


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (never `//host`, `/\\host`, `https://…`
    or a path with control characters, which browsers may strip into one of those)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 32 or ord(c) == 127 for c in target):
        return "/"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/"


@contextmanager
def accounts_changing(core: Core) -> Iterator[None]:
    """Held around a check and the write that relies on it when the check reads more than one record
    ("another administrator is left", "another way to sign in is left"): two such changes at once, in
    any process, cannot both pass on what the other is removing."""
    with file_lock(core.config.locks_dir / "accounts.lock", timeout=30):
        yield


def others_left(core: Core, admin: str) -> bool:
    """Whether an enabled administrator other than `admin` exists (read inside `accounts_changing`)."""
    return any(u.admin and not u.disabled and u.name != admin for u in core.store.list_users())


def notice() -> str:
    return NOTICES.get(request.args.get("done", ""), "")


def signed_in() -> User:
    """The signed-in user; anyone else is sent to sign in and brought back."""
    if g.user is None:
        target = request.full_path.rstrip("?") if request.method == "GET" else "/"
        abort(redirect("/-/login?next=" + quote(target), 303))
    return g.user


def admin_only() -> User:
    user = signed_in()
    if not user.admin:
        abort(404)  # the admin pages do not exist for others
    return user


def visible_wiki(core: Core, owner: str, slug: str, user: User, need: Role | None = None) -> tuple[Wiki, Role | None]:
    """The wiki with the visitor's role; 404 (as for a missing wiki) unless they can read it, and
    unless they own it when `need` is "owner"."""
    try:
        name = WikiName(owner, slug)
    except InvalidName:
        abort(404)
    wiki = core.store.get_wiki(name)
    role = role_of(core.store, wiki, user) if wiki else None
    if wiki is None or (role is None and not wiki.public) or (need == "owner" and role != "owner"):
        abort(404)
    return wiki, role


def usage(core: Core, wiki: Wiki) -> dict:
    """The wiki's pages and size against its owner's tier, as numbers and percentages for the bars."""
    owner = core.store.get_user(wiki.owner)
    limits = core.config.limits(owner.tier) if owner else None
    pages, max_pages = wiki.pages, limits.max_pages if limits else 0
    mb, max_mb = wiki.bytes / MB, limits.max_repo_mb if limits else 0
    return {"pages": pages, "max_pages": max_pages, "mb": mb, "max_mb": max_mb,
            "pages_pct": min(100, round(100 * pages / max_pages)) if max_pages else 0,
            "mb_pct": min(100, round(100 * mb / max_mb)) if max_mb else 0}


def wiki_url(name: WikiName, tail: str = "") -> str:
    return f"/-/wikis/{name.owner}/{name.slug}/{tail}"
