"""What every tool call starts from: the caller, the core, the wiki's repository, the request's
deadline, and answers.

Errors raised as `ToolError` reach the model as tool errors (isError) whose text says what to do
next; anything else is masked by FastMCP as an internal error. Tools call `checkpoint` between
expensive steps, so a call whose request timed out stops there (see deadline.py).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastmcp.exceptions import ToolError
from fastmcp.server.dependencies import get_http_request
from fastmcp.tools import ToolResult

from wikibot.gitd.commits import CommitRefused, FileChange
from wikibot.gitd.core import Core
from wikibot.gitd.http_access import Caller
from wikibot.gitd.repository import COMMIT_ID_RE, Repository, RevisionNotFound

from .deadline import Deadline, diff_until
from .link_graph import Graph, LinkGraphs
from .page_writes import PageConflict, Written, commit_pages
from .wikitext import PathRefused, page_file, stored_file

LINK_GRAPHS = LinkGraphs()


@dataclass(frozen=True)
class ToolContext:
    caller: Caller
    core: Core
    repo: Repository
    deadline: Deadline

    def checkpoint(self, step: str) -> None:
        """Stop here (OutOfTime) if the request has timed out; `step` is what would come next."""
        self.deadline.check(step)

    def require_write(self) -> None:
        if self.caller.write_refusal:
            raise ToolError(self.caller.write_refusal)

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

    def base(self, revision: str) -> str:
        """The revision a write builds on: a commit id the caller read, never a moving name like HEAD
        (which would silently overwrite whatever changed since the page was read)."""
        if not COMMIT_ID_RE.fullmatch(revision):
            raise ToolError(f"base_revision {revision!r} must be the commit id read_page returned (40 hex "
                            "characters), not a name like HEAD: it tells the wiki which version you changed")
        return self.revision(revision)

    def page(self, commit: str | None, path: str) -> str:
        """The file of page `path` (see `locate`)."""
        return self.locate(commit, path)[0]

    def locate(self, commit: str | None, path: str) -> tuple[str, tuple[str, int] | None]:
        """The file of page `path` and its (blob, size) at `commit` (None: no such page). The file
        is Otterwiki's mapping, unless `commit` holds the page only under the literal name (pushed
        with git: "c# tips.md") or in another letter case."""
        try:
            file, literal = page_file(path), stored_file(path)
        except PathRefused as exc:
            raise ToolError(str(exc)) from None
        if not commit:
            return file, None
        found = self.repo.blobs(commit, list(dict.fromkeys([file, literal])))
        for candidate in (file, literal):
            if candidate in found:
                return candidate, found[candidate]
        wanted = {file.lower(), literal.lower()}
        for entry in self.repo.entries(commit, sizes=False):
            if entry.path.lower() in wanted:
                return entry.path, self.repo.blobs(commit, [entry.path]).get(entry.path)
        return file, None

    def graph(self, commit: str) -> Graph:
        return LINK_GRAPHS.at(self.caller.name, self.repo, commit, self.checkpoint)

    def diff(self, old: str | None, new: str, paths: Sequence[str] | None = None) -> str:
        """A unified diff, stopped at the request's deadline."""
        return diff_until(self.deadline, self.repo, old, new, paths)

    def commit(self, base: str | None, guarded: Sequence[str], build: Callable[[str | None], Sequence[FileChange]],
               message: str, idempotent: bool = False) -> Written:
        """Commit through the conflict-safe path (see `commit_pages`); refusals become tool errors the
        agent can act on."""
        try:
            return commit_pages(self.core, self.caller, self.repo, base=base, guarded=guarded, build=build,
                                message=message, checkpoint=self.checkpoint, deadline=self.deadline,
                                idempotent=idempotent)
        except PageConflict as exc:
            if exc.base is None:
                raise ToolError(f"conflict: {exc.path} was created by someone else meanwhile (the wiki is now at "
                                f"revision {exc.current}); read_page it and retry with base_revision="
                                f"{exc.current}") from None
            raise ToolError(
                f"conflict: {exc.path} changed since revision {exc.base}; the wiki is now at revision "
                f"{exc.current}. Re-read the page (read_page), redo your change on the current text and retry "
                f"with base_revision={exc.current}.\nWhat changed since your revision:\n{exc.diff}") from None
        except CommitRefused as exc:
            raise ToolError(f"refused: {exc}") from None


def current() -> ToolContext:
    state = get_http_request().state
    caller: Caller = state.caller
    core: Core = state.core
    deadline: Deadline = state.deadline
    return ToolContext(caller, core, core.repo(caller.name), deadline)


def answer(text: str, data: dict[str, Any]) -> ToolResult:
    """A concise text for the model plus the full structured result."""
    return ToolResult(content=text, structured_content=data)
