"""Wiki creation with its first pages: the record, the repository and the initial commit together.

A failure at any step removes what the earlier steps made, so no half-created wiki remains.
"""
from __future__ import annotations

import datetime

from wikibot.gitd.commits import FileChange
from wikibot.gitd.core import Core
from wikibot.gitd.records import Wiki

TEMPLATES = ("default", "empty")
SYSTEM_AUTHOR = ("wikibot", "wikibot@localhost")


def _default_pages(wiki: Wiki, core: Core) -> dict[str, str]:
    """The starter page. Otterwiki stores page "Home" as `home.md` (lowercase file names)."""
    url = f"{core.config.public_url}/{wiki.full_name}.git"
    purpose = wiki.purpose or "Notes kept by people and agents together."
    today = datetime.date.today().isoformat()
    home = (
        f"# {wiki.title}\n\n{purpose}\n\n"
        f"This wiki is a Git repository of Markdown pages, created on {today}.\n\n"
        f"    git clone {url}\n\n"
        "Use a personal access token as the password.\n"
    )
    return {"home.md": home}


def create_wiki(core: Core, owner: str, slug: str, *, title: str = "", purpose: str = "",
                public: bool = False, template: str = "default") -> tuple[Wiki, str | None]:
    """Create `owner/slug` from a template; returns the wiki and its first commit (None if empty)."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; known: {', '.join(TEMPLATES)}")
    wiki = core.create_wiki(owner, slug, title=title, purpose=purpose, public=public)
    if template == "empty":
        return wiki, None
    try:
        changes = [FileChange(name, text.encode()) for name, text in _default_pages(wiki, core).items()]
        head = core.commit(owner, slug, changes, message=f"Create {wiki.title}", author=SYSTEM_AUTHOR,
                           actor=owner, source="bootstrap")
    except BaseException:
        core.delete_wiki(owner, slug)
        raise
    return wiki, head
