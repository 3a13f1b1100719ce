"""Who Otterwiki is told the visitor is, and the per-user state it keeps in each wiki's database.

Otterwiki keys its per-user state (drafts) by the email address its proxy header gives. Users type
their email freely, so that header never carries it: it carries an address the platform makes from
the account's name and creation time, which no other account can have, not even one made again
under a deleted account's name. Commits still carry the author the platform intends (`commit_author`;
`inside.py` puts it back into Otterwiki's own commits).

`forget_user` is for account deletion: it opens the databases with sqlite3, never through Otterwiki.
"""
from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from wikibot.gitd.core import Core
from wikibot.gitd.records import User

STATE_FILE = "otterwiki.sqlite3"  # in the wiki's .git/wikibot/: goes when the wiki goes
ADDRESS_DOMAIN = "users.wikibot.invalid"  # never a mailbox: Otterwiki sends no mail here
AUTHOR_DOMAIN = "users.wikibot"  # the email of a commit by a user who set none (as MCP's commits)
DB_TIMEOUT = 10.0  # seconds a deletion waits for an Otterwiki write to that database

log = logging.getLogger(__name__)


def state_file(repository: Path) -> Path:
    """A wiki's Otterwiki database (its preferences and drafts), inside its repository's git dir."""
    return repository / ".git" / "wikibot" / STATE_FILE


def otterwiki_address(user: User) -> str:
    """The address Otterwiki knows `user` by: the name and the creation time (in microseconds)."""
    return f"{user.name}+{round(user.created * 1_000_000):x}@{ADDRESS_DOMAIN}"


def commit_author(user: User) -> tuple[str, str]:
    """A web commit's author: the user's name and the email they set, else the platform's address."""
    return user.name, user.email or f"{user.name}@{AUTHOR_DOMAIN}"


def forget_user(core: Core, user: User) -> int:
    """Delete `user`'s drafts in every wiki's Otterwiki database (a grant may be gone, its drafts not);
    returns how many. Only hygiene: no later account can reach them, as none has their address."""
    address = otterwiki_address(user)
    deleted = 0
    for wiki in core.store.list_wikis():
        state = state_file(core.repos.path(wiki.name))
        if not state.is_file():
            continue
        try:
            with sqlite3.connect(state, timeout=DB_TIMEOUT) as db:
                deleted += db.execute("DELETE FROM drafts WHERE author_email = ?", (address,)).rowcount
        except sqlite3.Error as exc:  # the rows stay unreachable; the deletion of the account goes on
            log.warning("drafts of %s in %s not deleted: %s", user.name, wiki.name, exc)
    return deleted
