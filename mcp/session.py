"""What every tool call starts from: the caller, the core, the wiki's repository, and answers.

Errors raised as `ToolError` reach the model as tool errors (isError) whose text says what to do
next; anything else is masked by FastMCP as an internal error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastmcp.exceptions import ToolError
from fastmcp.server.dependencies import get_http_request
from fastmcp.tools import ToolResult

from wikibot.gitd.commits import CommitRefused
from wikibot.gitd.core import Core

from .caller import Caller
from .link_graph import LinkGraphs
from .page_writes import PageConflict, WikiBusy, Written, commit_pages
from .wiki_repo import RevisionNotFound, WikiRepo
from .wikitext import PathRefused, page_file, stored_file

LINK_GRAPHS = LinkGraphs()


@dataclass(frozen=True)
class Session:
    caller: Caller
    core: Core
    repo: WikiRepo

    def require_write(self) -> None:
        refusal = self.caller.write_refusal
        if refusal:
            raise ToolError(refusal)

    def head(self) -> str:
        head = self.repo.head()
        if head is None:
            raise ToolError("this wiki has no pages yet; create one with write_page")
        return head

    def revision(self, revision: str | None) -> str:
        """The commit to read: `revision` if given (sha, prefix, HEAD~N), else HEAD."""
        if not revision:
            return self.head()
        try:
            return self.repo.resolve(revision)
        except RevisionNotFound as exc:
            raise ToolError(f"{exc}; use a revision returned by read_page or history") from None

    def page(self, commit: str | None, path: str) -> str:
        """The file of page `path` as Otterwiki maps it, unless `commit` holds the page only under
        the literal name (pushed with git: "c# tips.md") or in another letter case."""
        try:
            file, literal = page_file(path), stored_file(path)
        except PathRefused as exc:
            raise ToolError(str(exc)) from None
        if commit and self.repo.blob_id(commit, file) is None:
            if literal != file and self.repo.blob_id(commit, literal) is not None:
                return literal
            wanted = {file.lower(), literal.lower()}
            for entry in self.repo.entries(commit):
                if entry.path.lower() in wanted:
                    return entry.path
        return file

    def graph(self, commit: str):
        return LINK_GRAPHS.at(self.caller.wiki, self.repo, commit)


def current() -> Session:
    state = get_http_request().state
    caller: Caller = state.caller
    core: Core = state.core
    return Session(caller, core, WikiRepo(core.repos.path(caller.owner, caller.slug)))


def answer(text: str, data: dict[str, Any]) -> ToolResult:
    """A concise text for the model plus the full structured result."""
    return ToolResult(content=text, structured_content=data)


def is_attachment(path: str, folder: str) -> bool:
    """Attachments are the non-page files directly in the page's folder; subpages are .md files."""
    rest = path[len(folder) + 1:]
    return "/" not in rest and not rest.endswith(".md")


def commit(s: Session, base: str | None, guarded: list[str], build, message: str) -> Written:
    """Commit through the conflict-safe path; refusals become tool errors the agent can act on."""
    try:
        return commit_pages(s.core, s.caller, s.repo, base=base, guarded=guarded, build=build, message=message)
    except PageConflict as exc:
        raise ToolError(
            f"conflict: {exc.path} changed since revision {base}; the wiki is now at revision {exc.current}. "
            f"Re-read the page (read_page), redo your change on the current text and retry with "
            f"base_revision={exc.current!s}.\nWhat changed since your revision:\n{exc.diff}") from None
    except CommitRefused as exc:
        raise ToolError(f"refused: {exc}") from None
    except WikiBusy as exc:
        raise ToolError(str(exc)) from None
