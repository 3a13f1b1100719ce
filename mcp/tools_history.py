"""History and search tools: history, diff, recent_changes, search."""
from __future__ import annotations

import re
from typing import Annotated, Literal

from fastmcp.exceptions import ToolError
from fastmcp.tools import ToolResult
from pydantic import Field

from wikibot.gitd.repository import REVISION_RE, RevisionNotFound
from wikibot.indexer.search import SearchError
from wikibot.indexer.service import SearchUnavailable, remote_search

from .arguments import Cursor, OptionalPath
from .context import answer, current
from .wikitext import page_name

MAX_LOG = 200
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:?\d{2})?)?"
                     r"|\d{1,4} (second|minute|hour|day|week|month|year)s? ago", re.IGNORECASE)


def history(path: OptionalPath = None, limit: Annotated[int, Field(ge=1, le=MAX_LOG)] = 20,
            cursor: Cursor = None) -> ToolResult:
    """Commits that changed a page (or the wiki), newest first, with the files each changed."""
    ctx = current()
    head = ctx.repo.head()
    if head is None:
        return answer("no history yet", {"commits": [], "next_cursor": None})
    file = ctx.page(head, path) if path else None
    skip = _skip(cursor)
    commits = ctx.repo.log(head, file, limit=limit + 1, skip=skip, with_files=True)
    more = len(commits) > limit
    commits = commits[:limit]
    data = {"path": page_name(file) if file else None, "file": file, "revision": head,
            "commits": [c.as_dict() for c in commits], "next_cursor": str(skip + limit) if more else None}
    text = "\n".join(f"{c.revision[:12]} {c.date} {c.author}: {c.message}" for c in commits) or "no commits"
    if more:
        text += f"\n... more: call again with cursor={data['next_cursor']!r}"
    return answer(text, data)


def diff(from_revision: Annotated[str, Field(description="Older revision")],
         path: OptionalPath = None,
         to_revision: Annotated[str | None, Field(description="Newer revision; default the latest")] = None,
         ) -> ToolResult:
    """Unified diff between two revisions, of one page or the whole wiki."""
    ctx = current()
    old = ctx.revision(from_revision)
    new = ctx.revision(to_revision)
    file = ctx.page(new, path) if path else None
    text = ctx.diff(old, new, [file] if file else None)
    data = {"from_revision": old, "to_revision": new, "path": page_name(file) if file else None,
            "file": file, "diff": text}
    return answer(text or "no differences", data)


Since = Annotated[str | None, Field(description="A revision (changes after it) or a date: 2026-11-01, '2 days ago'")]


def recent_changes(since: Since = None,
                   limit: Annotated[int, Field(ge=1, le=MAX_LOG)] = 20) -> ToolResult:
    """The latest commits across the wiki with the pages they touched, newest first."""
    ctx = current()
    head = ctx.repo.head()
    if head is None:
        return answer("no changes yet", {"commits": [], "revision": None})
    rev_range, date = head, None
    if since and REVISION_RE.fullmatch(since):
        try:
            rev_range = f"{ctx.repo.resolve(since)}..{head}"
        except RevisionNotFound:
            pass
    if since and rev_range == head:
        if not DATE_RE.fullmatch(since.strip()):
            raise ToolError(f"since={since!r} is neither a revision of this wiki nor a date; use a commit id, "
                            "a date like 2026-11-01 (optionally with a time) or 'N hours/days/weeks ago'")
        date = since.strip()
    commits = ctx.repo.log(rev_range, limit=limit, since=date, with_files=True)
    data = {"revision": head, "since": since, "commits": [c.as_dict() for c in commits]}
    lines = []
    for c in commits:
        touched = ", ".join(path for _, path in c.files[:8]) + (" ..." if len(c.files) > 8 else "")
        lines.append(f"{c.revision[:12]} {c.date} {c.author}: {c.message} [{touched}]")
    return answer("\n".join(lines) or "no changes", data)


def search(query: Annotated[str, Field(description="What to look for, in words or as a question")],
           mode: Literal["hybrid", "keyword", "semantic"] = "hybrid",
           limit: Annotated[int, Field(ge=1, le=50)] = 10) -> ToolResult:
    """Search the wiki: hybrid (default), keyword or semantic. Each hit names the page, section anchor,
    lines and a snippet; indexed_sha is the revision the index reflects (a page written moments ago
    may not be indexed yet)."""
    ctx = current()
    try:
        found = remote_search(ctx.core.config.data_dir, ctx.caller.name, query, mode, limit)
    except SearchError as exc:
        raise ToolError(f"bad search: {exc}") from None
    except SearchUnavailable as exc:
        raise ToolError(f"search is unavailable right now ({exc}); retry shortly, or use list_pages and "
                        "read_page meanwhile") from None
    hits = [{**hit, "path": page_name(hit["page"], hit.get("title"))} for hit in found["hits"]]
    data = {"query": query, "mode": mode, "indexed_sha": found["indexed_sha"], "hits": hits}
    text = "\n".join(f"{h['path']}#{h['anchor']} ({h['score']:.3f}): {h['snippet']}" if h["anchor"]
                     else f"{h['path']} ({h['score']:.3f}): {h['snippet']}" for h in hits) or "no results"
    return answer(text + f"\n(index at revision {found['indexed_sha']})", data)


def _skip(cursor: str | None) -> int:
    if not cursor:
        return 0
    if not (cursor.isascii() and cursor.isdigit()):
        raise ToolError("bad cursor: pass next_cursor from the previous answer unchanged")
    return int(cursor)
