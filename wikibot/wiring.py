"""Assemble the platform: the core with the hooks component plugged into its seams.

Every entry point (web app, worker, CLI) opens the core through here, so a change made by any of
them is checked by the same policy and announced as the same kind of event.
"""
from __future__ import annotations

from wikibot.config import Config
from wikibot.gitd.core import Core
from wikibot.hooks.policy import PushPolicy
from wikibot.hooks.post_commit import hook_script
from wikibot.hooks.publish import Publisher


def open_core(config: Config) -> Core:
    core = Core.open(config)
    core.repos.hook_scripts["post-commit"] = hook_script(config.data_dir)
    core.policies.append(PushPolicy)
    core.announcers.append(Publisher(config.data_dir).announce)
    return core
