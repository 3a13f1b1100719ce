"""Web saves through the platform's commit path, never Otterwiki's own: one commit authored by the
signed-in user, checked by the push policy, announced as a `web` event, and refused as a conflict
when the page changed since the editor opened it (a push, an MCP write, another browser).

The editor form carries the wiki's HEAD from when it was rendered (`BASE_FIELD`, added by the host);
under the wiki's lock, the page's blob at that commit must equal its blob at HEAD. A refused save
(conflict or policy) answers with a page that keeps the user's text for another try; so does one that
finds the wiki deleted (the host looks once it holds the lock, so this is the last line of defence).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wikibot.gitd.commits import CommitRefused, FileChange
from wikibot.gitd.core import Core, NoSuchWiki
from wikibot.gitd.names import WikiName
from wikibot.gitd.repository import Repository, unified_diff

BASE_FIELD = "wikibot_base"


class _Changed(Exception):
    """The page differs between the editor's base and HEAD."""

    def __init__(self, head: str | None) -> None:
        super().__init__(head)
        self.head = head


class _Unchanged(_Changed):
    """The text equals the page at HEAD: nothing to commit."""


@dataclass(frozen=True)
class SaveRequest:
    wiki: WikiName
    filename: str  # the page's file in the repository (Otterwiki's mapping of the page name)
    pagename: str
    content: str  # normalised as Otterwiki does: LF line ends, one final newline
    message: str
    base: str | None  # the revision the editor's text is based on ("": a new page; None: not said)
    author: tuple[str, str]
    actor: str


@dataclass(frozen=True)
class SaveOutcome:
    saved: bool
    changed: bool = False  # a commit was made (False: the text equals the page)
    conflict: bool = False
    gone: bool = False  # the wiki was deleted
    head: str | None = None  # HEAD after the save, or the HEAD that conflicts
    reason: str = ""  # why it was refused
    diff: str = ""  # on a conflict: the page as it is now -> the user's text


def normalise(content: str) -> str:
    return content.replace("\r\n", "\n").strip() + "\n"


def save_page(core: Core, request: SaveRequest) -> SaveOutcome:
    """Commit the page, or say why not; the repository is left as it was on every refusal. Called
    with the wiki's lock held (the host takes it before Otterwiki's)."""
    repo = core.repo(request.wiki)
    data = request.content.encode()
    if request.base is None:  # a form that does not say what it was based on is never taken as current
        head = core.repos.head(request.wiki)
        return _conflict(repo, request, head, f"This save of {request.pagename} did not say which version of "
                                              "the page it was based on.")

    def build(head: str | None) -> Sequence[FileChange]:
        then = repo.blob_id(request.base, request.filename) if request.base else None
        now = repo.blob_id(head, request.filename) if head else None
        if then != now:
            raise _Changed(head)
        current = repo.read(head, request.filename) if head and now else None
        if current == data:
            raise _Unchanged(head)
        return [FileChange(request.filename, data)]

    try:
        head = core.commit_with(request.wiki, build, message=request.message, author=request.author,
                                actor=request.actor, source="web", lock_held=True)
    except _Unchanged as same:  # caught before its base class
        return SaveOutcome(saved=True, head=same.head)
    except _Changed as changed:
        return _conflict(repo, request, changed.head,
                         f"{request.pagename} was changed by someone else since you opened the editor.")
    except NoSuchWiki:
        return SaveOutcome(saved=False, gone=True, reason=f"{request.wiki} was deleted: nothing was saved.")
    except CommitRefused as refused:  # the base stays the editor's: saving again is no conflict
        return SaveOutcome(saved=False, head=request.base, reason=str(refused))
    return SaveOutcome(saved=True, changed=True, head=head)


def _conflict(repo: Repository, request: SaveRequest, head: str | None, reason: str) -> SaveOutcome:
    """Refused as a conflict: what differs between the page at `head` and the user's text, and
    `head` as the base of a save from the refusal page."""
    now = repo.read(head, request.filename) if head else None
    text = (now or b"").decode("utf-8", "replace")
    return SaveOutcome(saved=False, conflict=True, head=head, reason=reason,
                       diff=unified_diff(request.filename, text, request.content))

