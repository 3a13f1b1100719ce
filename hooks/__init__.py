"""wikibot.hooks: every change to a wiki becomes one durable event; consumers react to events.

Kept import-light on purpose: the post-commit hook script imports from here on every web edit.
"""
