"""Page tools: read, write, edit, delete, rename, list, links."""
from __future__ import annotations

import json
import math
from datetime import date
from typing import Annotated

from fastmcp.exceptions import ToolError
from fastmcp.tools import ToolResult
from pydantic import BaseModel, Field

from wikibot.gitd.commits import FileChange
from wikibot.gitd.repository import unified_diff
from wikibot.indexer.chunking import Outline, outline, scalar_text

from .arguments import BaseRevision, Cursor, Message, OptionalBase, PagePath
from .context import ToolContext, answer, current
from .link_graph import Graph
from .renames import plan_rename
from .wikitext import PathRefused, attachment_dir, is_attachment, page_file, page_name

MAX_LIST = 1000
MAX_EDITS = 100
MAX_PAGE_BYTES = 1024 * 1024  # pages read or edited through MCP; bigger ones are for git
MAX_FRONTMATTER_DEPTH = 20  # deeper frontmatter values are shown as text (JSON encoders stop at ~255)


class Edit(BaseModel):
    old: str = Field(description="Exact text to replace, with enough context to be unique")
    new: str = Field(description="Replacement text")
    expected_count: int | None = Field(default=None, ge=1, description="Occurrences to replace (default 1)")


def read_page(path: PagePath,
              revision: Annotated[str | None, Field(description="Commit to read at; default the latest")] = None,
              section: Annotated[str | None, Field(description="Only this section: anchor or heading text")] = None,
              ) -> ToolResult:
    """Read a page: its Markdown, the revision it was read at (pass it as base_revision when you
    write), title, frontmatter, sections, outgoing links and backlinks."""
    ctx = current()
    commit = ctx.revision(revision)
    file, found = ctx.locate(commit, path)
    text = _text(ctx, commit, file, found, path)
    ctx.checkpoint("outlining the page")
    shape = outline(file, text)
    content = _section(text, shape, section, path) if section else text
    ctx.checkpoint("reading the wiki's links")
    graph = ctx.graph(commit)
    data = {
        "path": page_name(file, shape.title), "file": file, "revision": commit, "title": shape.title,
        "frontmatter": _json_value(shape.meta), "content": content,
        "section": section,
        "sections": [{"heading": x.heading, "anchor": x.anchor, "depth": x.depth,
                      "lines": [x.start_line, x.end_line]} for x in shape.sections if x.anchor],
        "links_out": _links_out(graph, file),
        "backlinks": [{"path": page_name(f), "file": f} for f in graph.backlinks(file)],
    }
    head = f"{data['path']} ({file}) at revision {commit}" + (f", section {section!r}" if section else "")
    return answer(f"{head}\n\n{content}", data)


def write_page(path: PagePath, content: Annotated[str, Field(description="The whole page in Markdown")],
               base_revision: OptionalBase = None, message: Message = None) -> ToolResult:
    """Create a page, or replace a whole page (then base_revision is required). Prefer edit_page
    for changes to part of an existing page."""
    ctx = current()
    ctx.require_write()
    head = ctx.repo.head()
    file, existing = ctx.locate(head, path)
    base = ctx.base(base_revision) if base_revision else None
    body = content.encode()
    if head and existing is not None and ctx.repo.read_blob(existing[0]) == body:  # e.g. a retry that committed
        return _unchanged(file, ctx.repo.log(head, file, limit=1)[0].revision)
    if existing is not None and not base_revision:
        raise ToolError(f"page {path!r} already exists; read_page it and pass its revision as base_revision "
                        "(or use edit_page for a targeted change)")
    verb = "Update" if existing is not None else "Create"
    written = ctx.commit(base, [file], lambda _: [FileChange(file, body)], message or f"{verb} {page_name(file)}",
                         idempotent=True)
    if written.already:
        return _unchanged(file, written.revision)
    return answer(f"{verb.lower()}d {file} at revision {written.revision}",
                  {"path": page_name(file), "file": file, "revision": written.revision,
                   "created": existing is None, "changed": True})


def edit_page(path: PagePath,
              edits: Annotated[list[Edit], Field(description="Replacements, applied in order",
                                                 max_length=MAX_EDITS)],
              base_revision: BaseRevision, message: Message = None,
              dry_run: Annotated[bool, Field(description="Only show the diff; commit nothing")] = False,
              ) -> ToolResult:
    """Targeted changes to a page as exact text replacements, in one commit; returns the diff."""
    ctx = current()
    if not dry_run:
        ctx.require_write()
    if not edits:
        raise ToolError("no edits given: pass edits=[{old, new}]")
    base = ctx.base(base_revision)
    file, found = ctx.locate(base, path)
    before = _text(ctx, base, file, found, path, strict=True)
    after = _apply(before, edits, min(MAX_PAGE_BYTES, ctx.core.limits_of(ctx.caller.name.owner).max_file_bytes))
    ctx.checkpoint("computing the diff")
    diff = unified_diff(file, before, after)
    if dry_run or not diff:
        return answer(diff or "the edits change nothing",
                      {"path": page_name(file), "file": file, "revision": base, "diff": diff, "committed": False})
    # guarded: the page at HEAD equals the page at base, so the edits apply to it the same way
    written = ctx.commit(base, [file], lambda _: [FileChange(file, after.encode())],
                         message or f"Edit {page_name(file)}", idempotent=True)
    done = (f"already edited: {file} has held the edited text since revision {written.revision}" if written.already
            else f"edited {file} at revision {written.revision}")
    return answer(f"{done}\n\n{diff}",
                  {"path": page_name(file), "file": file, "revision": written.revision, "diff": diff,
                   "committed": True})


def delete_page(path: PagePath, message: Message = None, base_revision: OptionalBase = None) -> ToolResult:
    """Delete a page and its attachments (its subpages stay)."""
    ctx = current()
    ctx.require_write()
    head = ctx.head()
    file, found = ctx.locate(head, path)
    if found is None:
        raise ToolError(f"no page {path!r} (file {file}); nothing deleted")
    base = ctx.base(base_revision) if base_revision else head
    attachments = [e.path for e in ctx.repo.entries(head, attachment_dir(file), sizes=False)
                   if is_attachment(e.path, file)]
    written = ctx.commit(base, [file], lambda _: [FileChange(p, None) for p in [file, *attachments]],
                         message or f"Delete {page_name(file)}", idempotent=True)
    if written.already:  # gone by the time the lock was ours: a retry, or someone else deleted it
        return answer(f"{file} is already deleted: it is gone since revision {written.revision}",
                      {"path": page_name(file), "file": file, "revision": written.revision, "deleted": []})
    return answer(f"deleted {file}" + (f" and {len(attachments)} attachment(s)" if attachments else "")
                  + f" at revision {written.revision}",
                  {"path": page_name(file), "file": file, "revision": written.revision,
                   "deleted": [file, *attachments]})


def rename_page(path: PagePath, new_path: Annotated[str, Field(description="The new page path")],
                update_links: Annotated[bool, Field(description="Rewrite links in other pages")] = True,
                message: Message = None) -> ToolResult:
    """Rename (move) a page with its attachments and subpages, in one commit; links to it in other
    pages are rewritten unless update_links is false."""
    ctx = current()
    ctx.require_write()
    head = ctx.head()
    old, found = ctx.locate(head, path)
    try:
        new = page_file(new_path)
    except PathRefused as exc:
        raise ToolError(str(exc)) from None
    if found is None:
        raise ToolError(f"no page {path!r} (file {old}); nothing renamed")
    new_name = new_path.strip().strip("/").removesuffix(".md")
    plans = []

    def build(at: str | None) -> list[FileChange]:
        plans.append(plan_rename(ctx.repo, at or head, old, new, new_name, update_links, ctx.checkpoint))
        return plans[-1].changes

    written = ctx.commit(head, [old], build, message or f"Rename {page_name(old)} to {new_name}")
    plan = plans[-1]
    return answer(f"renamed {old} to {new} at revision {written.revision}"
                  + (f"; links updated in {len(plan.relinked)} page(s)" if plan.relinked else ""),
                  {"path": new_name, "file": new, "revision": written.revision,
                   "moved": [{"from": src, "to": dst} for src, dst in plan.moves],
                   "links_updated_in": plan.relinked})


def list_pages(prefix: Annotated[str | None, Field(description="Only pages under this path, e.g. 'Projects'")] = None,
               limit: Annotated[int, Field(ge=1, le=MAX_LIST)] = 100, cursor: Cursor = None) -> ToolResult:
    """List pages (paginated, sorted by path)."""
    ctx = current()
    head = ctx.repo.head()
    if head is None:
        return answer("the wiki has no pages yet", {"pages": [], "next_cursor": None, "revision": None})
    under = ""
    if prefix and prefix.strip("/ "):
        try:
            under = page_file(prefix).removesuffix(".md")
        except PathRefused as exc:
            raise ToolError(str(exc)) from None
    pages = sorted((e for e in ctx.repo.entries(head, under, sizes=False) if e.path.endswith(".md")),
                   key=lambda e: e.path)
    if cursor:
        pages = [e for e in pages if e.path > cursor]
    shown = pages[:limit]
    next_cursor = shown[-1].path if len(pages) > limit else None
    data = {"revision": head, "next_cursor": next_cursor,
            "pages": [{"path": page_name(e.path), "file": e.path} for e in shown]}
    text = "\n".join(f"{p['path']} ({p['file']})" for p in data["pages"]) or "no pages"
    if next_cursor:
        text += f"\n... more: call again with cursor={next_cursor!r}"
    return answer(text, data)


def links(path: PagePath) -> ToolResult:
    """A page's outgoing links (and whether each target exists) and the pages linking to it."""
    ctx = current()
    head = ctx.head()
    file, found = ctx.locate(head, path)
    if found is None:
        raise ToolError(f"no page {path!r} (file {file})")
    graph = ctx.graph(head)
    data = {"path": page_name(file), "file": file, "revision": head, "links_out": _links_out(graph, file),
            "backlinks": [{"path": page_name(f), "file": f} for f in graph.backlinks(file)]}
    out = "\n".join(f"-> {x['path']}" + ("" if x["exists"] else " (missing)") for x in data["links_out"])
    back = "\n".join(f"<- {x['path']}" for x in data["backlinks"])
    return answer("\n".join(t for t in (out, back) if t) or "no links", data)


def _text(ctx: ToolContext, commit: str, file: str, found: tuple[str, int] | None, path: str,
          strict: bool = False) -> str:
    """A page's text; missing, oversized or (when editing) non-UTF-8 pages are tool errors."""
    if found is None:
        raise ToolError(f"no page {path!r} (file {file}) at revision {commit[:12]}; use list_pages or search "
                        "to find the right path, or write_page to create it")
    if found[1] > MAX_PAGE_BYTES:
        raise ToolError(f"{file} is {found[1]} bytes, over the {MAX_PAGE_BYTES}-byte limit for pages through MCP; "
                        "clone the wiki with git to work on it")
    raw = ctx.repo.read_blob(found[0])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        if strict:
            raise ToolError(f"{file} is not UTF-8 text; editing it here would corrupt it, so change it with git"
                            ) from None
        return raw.decode("utf-8", "replace")


def _links_out(graph: Graph, file: str) -> list[dict]:
    seen: dict[tuple[str, str], dict] = {}
    for link in graph.links_of(file):
        seen.setdefault((link.target, link.anchor), {
            "path": page_name(link.target), "file": link.target, "anchor": link.anchor,
            "exists": link.target in graph.outgoing, "line": link.line})
    return list(seen.values())


def _section(text: str, shape: Outline, wanted: str, path: str) -> str:
    key = wanted.strip().lstrip("#").strip().lower()
    for x in shape.sections:
        if x.anchor and key in (x.anchor, x.heading.strip().lower()):
            lines = text.replace("\r\n", "\n").removeprefix("\ufeff").split("\n")
            return "\n".join(lines[x.start_line - 1:x.end_line]).rstrip("\n") + "\n"
    known = ", ".join(x.anchor for x in shape.sections if x.anchor) or "none"
    raise ToolError(f"no section {wanted!r} in {path!r}; its sections (anchors): {known}")


def _apply(text: str, edits: list[Edit], max_bytes: int) -> str:
    """Apply the replacements in order; every count must match, and the page must stay in bounds
    (checked before each replacement, so a few small edits cannot build a huge text)."""
    for number, edit in enumerate(edits, 1):
        if not edit.old:
            raise ToolError(f"edit {number}: 'old' is empty; give the exact text to replace")
        found = text.count(edit.old)
        wanted = edit.expected_count or 1
        if found == 0:
            raise ToolError(f"edit {number}: 'old' text not found (0 occurrences); read_page again and copy "
                            "the text exactly, including whitespace")
        if found != wanted:
            raise ToolError(f"edit {number}: 'old' text found {found} times, expected {wanted}; add surrounding "
                            f"text to make it unique, or set expected_count={found} to replace every one")
        size = len(text.encode()) + found * (len(edit.new.encode()) - len(edit.old.encode()))
        if size > max_bytes:
            raise ToolError(f"edit {number} would make the page {size} bytes, over the {max_bytes}-byte limit "
                            "for one file")
        text = text.replace(edit.old, edit.new)
    return text


def _unchanged(file: str, since: str) -> ToolResult:
    """The answer to a write the page already holds (also a retried write whose first attempt committed)."""
    return answer(f"{file} unchanged: it has had this content since revision {since}",
                  {"path": page_name(file), "file": file, "revision": since, "created": False, "changed": False})


def _json_value(value: object, depth: int = 0) -> object:
    """Frontmatter as JSON. YAML also has dates, sets, binary, non-finite numbers, integers too long
    to print in decimal, and keys that are dates, numbers, booleans or null: those become text, as
    do values nested too deep."""
    if isinstance(value, dict | list | tuple | set | frozenset) and depth >= MAX_FRONTMATTER_DEPTH:
        return _deep_text(value)
    if isinstance(value, dict):
        return {_json_key(k): _json_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_value(v, depth + 1) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 14_000:
        return scalar_text(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return value.isoformat() if isinstance(value, date) else str(value)


def _deep_text(value: object) -> str:
    """A subtree nested too deep, as text (str() of it could meet an integer too long to print)."""
    try:
        return str(value)
    except ValueError:
        return "(nested too deep to show)"


def _json_key(key: object) -> str:
    """A mapping key as JSON text: numbers, booleans and null as JSON writes them, dates in ISO form."""
    if isinstance(key, str):
        return key
    if isinstance(key, int) and not isinstance(key, bool) and key.bit_length() > 14_000:
        return scalar_text(key)
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    return key.isoformat() if isinstance(key, date) else str(key)
