"""Page tools: read, write, edit, delete, rename, list, links."""
from __future__ import annotations

import difflib
import json
from typing import Annotated

from fastmcp.exceptions import ToolError
from fastmcp.tools import ToolResult
from pydantic import BaseModel, Field

from wikibot.gitd.commits import FileChange
from wikibot.indexer.chunking import outline

from .session import answer, commit, current, is_attachment
from .wikitext import PathRefused, attachment_dir, page_file, page_name, rewrite_links

Path_ = Annotated[str, Field(description="Page path as the wiki shows it, e.g. 'Projects/Roadmap' (case-insensitive)")]
Message = Annotated[str | None, Field(description="Commit message; '[mcp]' is prefixed")]
Base = Annotated[str | None, Field(description="The revision you read the page at (from read_page)")]
MAX_LIST = 1000


class Edit(BaseModel):
    old: str = Field(description="Exact text to replace, with enough context to be unique")
    new: str = Field(description="Replacement text")
    expected_count: int | None = Field(default=None, description="Occurrences to replace (default 1)")


def read_page(path: Path_,
              revision: Annotated[str | None, Field(description="Commit to read at; default the latest")] = None,
              section: Annotated[str | None, Field(description="Only this section: anchor or heading text")] = None,
              ) -> ToolResult:
    """Read a page: its Markdown, the revision it was read at (pass it as base_revision when you
    write), title, frontmatter, sections, outgoing links and backlinks."""
    s = current()
    commit = s.revision(revision)
    file = s.page(commit, path)
    raw = s.repo.read(commit, file)
    if raw is None:
        raise ToolError(f"no page {path!r} (file {file}) at revision {commit[:12]}; "
                        "use list_pages or search to find the right path, or write_page to create it")
    text = raw.decode("utf-8", "replace")
    shape = outline(file, text)
    content = text
    if section:
        content = _section(text, shape, section, path)
    graph = s.graph(commit)
    data = {
        "path": page_name(file, shape.title), "file": file, "revision": commit, "title": shape.title,
        "frontmatter": json.loads(json.dumps(shape.meta, default=str)), "content": content,
        "section": section,
        "sections": [{"heading": x.heading, "anchor": x.anchor, "depth": x.depth,
                      "lines": [x.start_line, x.end_line]} for x in shape.sections if x.anchor],
        "links_out": _links_out(graph, file),
        "backlinks": [{"path": page_name(f), "file": f} for f in graph.backlinks(file)],
    }
    head = f"{data['path']} ({file}) at revision {commit}" + (f", section {section!r}" if section else "")
    return answer(f"{head}\n\n{content}", data)


def write_page(path: Path_, content: Annotated[str, Field(description="The whole page in Markdown")],
               base_revision: Base = None, message: Message = None) -> ToolResult:
    """Create a page, or replace a whole page (then base_revision is required). Prefer edit_page
    for changes to part of an existing page."""
    s = current()
    s.require_write()
    head = s.repo.head()
    file = s.page(head, path)
    existing = s.repo.read(head, file) if head else None
    if existing is not None and not base_revision:
        raise ToolError(f"page {path!r} already exists; read_page it and pass its revision as base_revision "
                        "(or use edit_page for a targeted change)")
    if existing is not None and existing == content.encode():
        return answer(f"{file} unchanged (already this content) at {head}",
                      {"path": page_name(file), "file": file, "revision": head, "changed": False})
    base = s.revision(base_revision) if base_revision else None
    verb = "Update" if existing is not None else "Create"
    written = commit(s, base, [file], lambda _: [FileChange(file, content.encode())],
                      message or f"{verb} {page_name(file)}")
    return answer(f"{verb.lower()}d {file} at revision {written.revision}",
                  {"path": page_name(file), "file": file, "revision": written.revision,
                   "created": existing is None, "changed": True})


def edit_page(path: Path_, edits: Annotated[list[Edit], Field(description="Replacements, applied in order")],
              base_revision: Annotated[str, Field(description="The revision you read the page at")],
              message: Message = None,
              dry_run: Annotated[bool, Field(description="Only show the diff; commit nothing")] = False,
              ) -> ToolResult:
    """Targeted changes to a page as exact text replacements, in one commit; returns the diff."""
    s = current()
    if not dry_run:
        s.require_write()
    if not edits:
        raise ToolError("no edits given: pass edits=[{old, new}]")
    base = s.revision(base_revision)
    file = s.page(base, path)
    before = s.repo.read(base, file)
    if before is None:
        raise ToolError(f"no page {path!r} at revision {base[:12]}; use write_page to create it")
    after = _apply(before.decode("utf-8", "replace"), edits)
    diff = _diff(file, before.decode("utf-8", "replace"), after)
    if dry_run or not diff:
        return answer(diff or "the edits change nothing",
                      {"path": page_name(file), "file": file, "revision": base, "diff": diff, "committed": False})

    def build(head: str | None) -> list[FileChange]:
        # guarded: the page at head equals the page at base, so the edits apply the same way
        return [FileChange(file, after.encode())]

    written = commit(s, base, [file], build, message or f"Edit {page_name(file)}")
    return answer(f"edited {file} at revision {written.revision}\n\n{diff}",
                  {"path": page_name(file), "file": file, "revision": written.revision, "diff": diff,
                   "committed": True})


def delete_page(path: Path_, message: Message = None, base_revision: Base = None) -> ToolResult:
    """Delete a page and its attachments (its subpages stay)."""
    s = current()
    s.require_write()
    head = s.head()
    file = s.page(head, path)
    if s.repo.blob_id(head, file) is None:
        raise ToolError(f"no page {path!r} (file {file}); nothing deleted")
    base = s.revision(base_revision) if base_revision else head
    folder = attachment_dir(file)
    attachments = [e.path for e in s.repo.entries(head, folder) if is_attachment(e.path, folder)]
    written = commit(s, base, [file], lambda _: [FileChange(p, None) for p in [file, *attachments]],
                      message or f"Delete {page_name(file)}")
    return answer(f"deleted {file}" + (f" and {len(attachments)} attachment(s)" if attachments else "")
                  + f" at revision {written.revision}",
                  {"path": page_name(file), "file": file, "revision": written.revision,
                   "deleted": [file, *attachments]})


def rename_page(path: Path_, new_path: Annotated[str, Field(description="The new page path")],
                update_links: Annotated[bool, Field(description="Rewrite links in other pages")] = True,
                message: Message = None) -> ToolResult:
    """Rename (move) a page with its attachments and subpages, in one commit; links to it in other
    pages are rewritten unless update_links is false."""
    s = current()
    s.require_write()
    head = s.head()
    old = s.page(head, path)
    try:
        new = page_file(new_path)
    except PathRefused as exc:
        raise ToolError(str(exc)) from None
    if s.repo.blob_id(head, old) is None:
        raise ToolError(f"no page {path!r} (file {old}); nothing renamed")
    if new == old:
        raise ToolError("the new path maps to the same file; nothing to rename")
    new_name = new_path.strip().strip("/").removesuffix(".md")

    def build(head: str | None) -> list[FileChange]:
        assert head is not None
        entries = s.repo.entries(head)
        files = {e.path for e in entries}
        if new in files and new.lower() != old.lower():
            raise ToolError(f"page {new_path!r} ({new}) already exists; choose another name or delete it first")
        src_dir, dst_dir = attachment_dir(old) + "/", attachment_dir(new) + "/"
        moves = {old: new, **{p: dst_dir + p[len(src_dir):] for p in files if p.startswith(src_dir)}}
        clash = sorted(dst for src, dst in moves.items() if dst in files and dst not in moves)
        if clash:
            raise ToolError(f"renaming would overwrite {', '.join(clash)}; move or delete those first")
        contents = s.repo.read_many(head, list(moves))
        changes = {src: FileChange(src, None) for src in moves}
        moved = {dst: contents[src] for src, dst in moves.items()}
        if update_links:
            pages = [p for p in files if p.endswith(".md") and p not in moves] + list(moved)
            texts = {p: moved[p] if p in moved else None for p in pages}
            unread = [p for p, t in texts.items() if t is None]
            texts.update(s.repo.read_many(head, unread))
            renamed = [(src, dst) for src, dst in moves.items() if src.endswith(".md")]
            for page, raw in texts.items():
                text = raw.decode("utf-8", "replace")
                count = 0
                for src, dst in renamed:
                    target = new_name if src == old else page_name(dst)
                    text, n = rewrite_links(text, src, target)
                    count += n
                if count:
                    if page in moved:
                        moved[page] = text.encode()
                    else:
                        changes[page] = FileChange(page, text.encode())
        changes.update({dst: FileChange(dst, body) for dst, body in moved.items()})
        return list(changes.values())

    written = commit(s, head, [old], build, message or f"Rename {page_name(old)} to {new_name}")
    links = sorted(c.path for c in written.changes if c.content is not None and c.path not in
                   {new} and not c.path.startswith(attachment_dir(new) + "/"))
    return answer(f"renamed {old} to {new} at revision {written.revision}"
                  + (f"; links updated in {len(links)} page(s)" if links else ""),
                  {"path": new_name, "file": new, "revision": written.revision,
                   "moved": sorted(c.path for c in written.changes if c.content is None),
                   "links_updated_in": links})


def list_pages(prefix: Annotated[str | None, Field(description="Only pages under this path, e.g. 'Projects'")] = None,
               limit: Annotated[int, Field(ge=1, le=MAX_LIST)] = 100,
               cursor: Annotated[str | None, Field(description="next_cursor of the previous answer")] = None,
               ) -> ToolResult:
    """List pages (paginated, sorted by path)."""
    s = current()
    head = s.repo.head()
    if head is None:
        return answer("the wiki has no pages yet", {"pages": [], "next_cursor": None, "revision": None})
    under = ""
    if prefix and prefix.strip("/ "):
        try:
            under = page_file(prefix).removesuffix(".md")
        except PathRefused as exc:
            raise ToolError(str(exc)) from None
    pages = sorted((e for e in s.repo.entries(head, under) if e.path.endswith(".md")), key=lambda e: e.path)
    if cursor:
        pages = [e for e in pages if e.path > cursor]
    shown = pages[:limit]
    next_cursor = shown[-1].path if len(pages) > limit else None
    data = {"revision": head, "next_cursor": next_cursor,
            "pages": [{"path": page_name(e.path), "file": e.path, "bytes": e.size} for e in shown]}
    text = "\n".join(f"{p['path']} ({p['file']})" for p in data["pages"]) or "no pages"
    if next_cursor:
        text += f"\n... more: call again with cursor={next_cursor!r}"
    return answer(text, data)


def links(path: Path_) -> ToolResult:
    """A page's outgoing links (and whether each target exists) and the pages linking to it."""
    s = current()
    head = s.head()
    file = s.page(head, path)
    if s.repo.blob_id(head, file) is None:
        raise ToolError(f"no page {path!r} (file {file})")
    graph = s.graph(head)
    data = {"path": page_name(file), "file": file, "revision": head, "links_out": _links_out(graph, file),
            "backlinks": [{"path": page_name(f), "file": f} for f in graph.backlinks(file)]}
    out = "\n".join(f"-> {x['path']}" + ("" if x["exists"] else " (missing)") for x in data["links_out"])
    back = "\n".join(f"<- {x['path']}" for x in data["backlinks"])
    return answer("\n".join(t for t in (out, back) if t) or "no links", data)


def _links_out(graph, file: str) -> list[dict]:
    seen: dict[tuple[str, str], dict] = {}
    for link in graph.outgoing.get(file, ()):
        seen.setdefault((link.target, link.anchor), {
            "path": page_name(link.target), "file": link.target, "anchor": link.anchor,
            "exists": link.target in graph.outgoing, "line": link.line})
    return list(seen.values())


def _section(text: str, shape, wanted: str, path: str) -> str:
    key = wanted.strip().lstrip("#").strip().lower()
    for x in shape.sections:
        if x.anchor and key in (x.anchor, x.heading.strip().lower()):
            lines = text.replace("\r\n", "\n").removeprefix("\ufeff").split("\n")
            return "\n".join(lines[x.start_line - 1:x.end_line]).rstrip("\n") + "\n"
    known = ", ".join(x.anchor for x in shape.sections if x.anchor) or "none"
    raise ToolError(f"no section {wanted!r} in {path!r}; its sections (anchors): {known}")


def _apply(text: str, edits: list[Edit]) -> str:
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
        text = text.replace(edit.old, edit.new)
    return text


def _diff(file: str, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        f"a/{file}", f"b/{file}"))
