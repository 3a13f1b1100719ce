"""The dashboard: what the CLI does for a user, in the browser (accounts, wikis, collaborators,
tokens, admin, search across wikis). Flask blueprints that call only `Core` (and the bootstrap's
`create_wiki`, the one way a wiki is made); each is built with explicit arguments by `blueprints`."""
from __future__ import annotations

from flask import Blueprint

from wikibot.gitd.core import Core
from wikibot.oauth.provider import WikiAuthProvider

from ..sessions import Sessions
from ..signup import Invites
from . import accounts, admin, tokens, wikis
from .common import Limiters


def blueprints(core: Core, sessions: Sessions, limiters: Limiters, invites: Invites,
               connectors: WikiAuthProvider) -> list[Blueprint]:
    return [wikis.blueprint(core), tokens.blueprint(core, connectors),
            accounts.blueprint(core, sessions, limiters, invites), admin.blueprint(core, sessions, invites)]


__all__ = ["Limiters", "blueprints"]
