"""Assemble the platform: the core with the hooks component plugged into its seams.

Every entry point (web app, worker, CLI) opens the core through here, so a change made by any of
them is checked by the same pre-receive policy and announced as the same kind of event.
"""
from __future__ import annotations

from wikibot.config import Config
from wikibot.gitd.core import Core
from wikibot.gitd.records import User
from wikibot.hooks.post_commit import hook_script
from wikibot.hooks.post_receive import Publisher
from wikibot.hooks.pre_receive import PushPolicy


def open_core(config: Config) -> Core:
    return Core.open(config, policies=[PushPolicy], announcers=[Publisher(config.data_dir).publish],
                     hook_scripts={"post-commit": hook_script(config.data_dir)}, user_cleanups=[forget_drafts])


def forget_drafts(core: Core, user: User) -> int:
    """The user's web-wiki drafts go with the account (imported on use: the web stack is heavy to load
    for a CLI call or the worker)."""
    from wikibot.webui.otterwiki.state import forget_user

    return forget_user(core, user)
