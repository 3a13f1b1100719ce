"""Wiki creation with its first pages: the record, the repository and the initial commit together.

The template is read (or cloned) before anything is created, and a failure at any later step
removes what the earlier steps made, so a failed creation leaves no record, folder or index.
"""
from __future__ import annotations

import datetime
import logging

from wikibot.config import MB
from wikibot.gitd.commits import CommitRefused, FileChange
from wikibot.gitd.core import Core, NoSuchWiki
from wikibot.gitd.names import WikiName
from wikibot.gitd.records import Wiki

from .from_git import fetch, is_url
from .templates import Template, TemplateError, find_template, render

log = logging.getLogger(__name__)
SYSTEM_AUTHOR = ("wikibot", "wikibot@localhost")
DEFAULT_PURPOSE = "Notes kept by people and agents together."


def load_template(core: Core, owner: str, template: str) -> Template:
    """A template by folder name ("default", "empty", an admin's) or by http(s) Git URL."""
    if is_url(template):
        limits = core.limits_of(owner)
        return fetch(template, core.config, limits.max_file_bytes,
                     min(core.config.max_template_mb * MB, limits.max_repo_bytes))
    return find_template(template, core.config.templates_dir)


def template_values(core: Core, wiki: Wiki) -> dict[str, str]:
    """What a template's placeholders are filled with."""
    base, name = core.config.public_url, wiki.name
    return {
        "title": wiki.title, "purpose": wiki.purpose or DEFAULT_PURPOSE, "owner": wiki.owner,
        "wiki": str(name), "clone_url": f"{base}/{name}.git", "mcp_url": f"{base}/mcp/{name}",
        "web_url": f"{base}/{name}/", "date": datetime.date.today().isoformat(),
    }


def create_wiki(core: Core, name: WikiName, *, title: str = "", purpose: str = "",
                public: bool = False, template: str = "default") -> tuple[Wiki, str | None]:
    """Create wiki `name` from a template; returns the wiki and its first commit (None if empty)."""
    core.check_new_wiki(name)  # names, quota, existence: before any clone
    source = load_template(core, name.owner, template)
    wiki = core.create_wiki(name, title=title, purpose=purpose, public=public)
    try:
        files = render(source, template_values(core, wiki))
        if not files:
            return wiki, None
        changes = [FileChange(path, content) for path, content in sorted(files.items())]
        head = core.commit(name, changes, message=f"Create {wiki.title} from template {source.name}",
                           author=SYSTEM_AUTHOR, actor=name.owner, source="bootstrap")
    except BaseException as exc:
        try:
            core.delete_wiki(name)
        except NoSuchWiki:
            pass  # a deletion went first (the commit then failed as NoSuchWiki): gone, as the rollback wants
        except Exception:
            log.exception("could not remove %s after its creation failed", name)
        if isinstance(exc, CommitRefused):
            raise TemplateError(f"template {source.name} does not fit the owner's limits: {exc}") from None
        raise
    return wiki, head
