"""Attachment tools: files kept beside a page, in the folder named like the page (Otterwiki's layout)."""
from __future__ import annotations

import base64
import binascii
import mimetypes
import unicodedata
from typing import Annotated

from fastmcp.exceptions import ToolError
from fastmcp.tools import ToolResult
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from pydantic import Field

from wikibot.gitd.commits import FileChange
from wikibot.gitd.names import path_problem

from .arguments import AttachmentName, PagePath
from .context import ToolContext, answer, current
from .wikitext import attachment_dir, is_attachment, page_name

MAX_READ_BYTES = 1024 * 1024
# The MCP SDK refuses request bodies over 4 MiB; an upload travels as base64 (4/3 of its size)
# inside a JSON-RPC envelope. Bigger files go through git.
MAX_BODY = DEFAULT_MAX_REQUEST_BODY_SIZE
MAX_UPLOAD_BYTES = (MAX_BODY - 64 * 1024) * 3 // 4


def list_attachments(path: PagePath) -> ToolResult:
    """The files attached to a page, with sizes and media types."""
    ctx = current()
    head = ctx.head()
    file = _existing_page(ctx, head, path)
    folder = attachment_dir(file)
    found = [e for e in ctx.repo.entries(head, folder) if is_attachment(e.path, file)]
    items = [{"name": e.path[len(folder) + 1:], "file": e.path, "bytes": e.size,
              "media_type": _media_type(e.path)} for e in found]
    text = "\n".join(f"{i['name']} ({i['bytes']} bytes, {i['media_type']})" for i in items) or "no attachments"
    return answer(text, {"path": page_name(file), "revision": head, "attachments": items})


def read_attachment(path: PagePath, name: AttachmentName) -> ToolResult:
    """An attachment's content as base64 (at most 1 MiB; larger files are refused)."""
    ctx = current()
    head = ctx.head()
    file = _existing_page(ctx, head, path)
    target = f"{attachment_dir(file)}/{_clean(name)}"
    found = ctx.repo.blobs(head, [target]).get(target)
    if found is None:
        raise ToolError(f"no attachment {name!r} on {page_name(file)}; list_attachments shows what exists")
    blob, size = found
    if size > MAX_READ_BYTES:
        raise ToolError(f"{name!r} is {size} bytes, over the {MAX_READ_BYTES}-byte limit for reading "
                        "through MCP; clone the wiki with git to get it")
    content = ctx.repo.read_blob(blob)
    data = {"path": page_name(file), "name": _clean(name), "file": target, "revision": head, "bytes": len(content),
            "media_type": _media_type(target), "content_base64": base64.b64encode(content).decode()}
    return answer(f"{target}: {len(content)} bytes, {data['media_type']} (content_base64 in the structured result)",
                  data)


def upload_attachment(path: PagePath, name: AttachmentName,
                      content_base64: Annotated[str, Field(description="The file's bytes, base64-encoded")],
                      ) -> ToolResult:
    """Attach a file to a page (replacing one of the same name), in one commit."""
    ctx = current()
    ctx.require_write()
    head = ctx.head()
    file = _existing_page(ctx, head, path)
    clean = _clean(name)
    try:
        content = base64.b64decode(content_base64, validate=True)
    except (binascii.Error, ValueError):
        raise ToolError("content_base64 is not valid base64") from None
    if len(content) > MAX_UPLOAD_BYTES:
        raise ToolError(f"{len(content)} bytes is over the {MAX_UPLOAD_BYTES}-byte limit for attachments sent "
                        "over MCP; push bigger files with git")
    target = f"{attachment_dir(file)}/{clean}"
    if ctx.repo.entries(head, target, sizes=False):
        raise ToolError(f"{target} is a folder (subpages live there); choose another attachment name")
    written = ctx.commit(None, [], lambda _: [FileChange(target, content)], f"Attach {clean} to {page_name(file)}")
    return answer(f"attached {target} ({len(content)} bytes) at revision {written.revision}",
                  {"path": page_name(file), "name": clean, "file": target, "bytes": len(content),
                   "revision": written.revision})


def delete_attachment(path: PagePath, name: AttachmentName) -> ToolResult:
    """Remove a file attached to a page."""
    ctx = current()
    ctx.require_write()
    head = ctx.head()
    file = _existing_page(ctx, head, path)
    target = f"{attachment_dir(file)}/{_clean(name)}"
    if ctx.repo.blob_id(head, target) is None:
        raise ToolError(f"no attachment {name!r} on {page_name(file)}; list_attachments shows what exists")
    written = ctx.commit(None, [], lambda _: [FileChange(target, None)], f"Remove {name} from {page_name(file)}")
    return answer(f"deleted {target} at revision {written.revision}",
                  {"path": page_name(file), "name": name, "file": target, "revision": written.revision})


def _existing_page(ctx: ToolContext, head: str, path: str) -> str:
    file, found = ctx.locate(head, path)
    if found is None:
        raise ToolError(f"no page {path!r} (file {file}); attachments belong to an existing page")
    return file


def _clean(name: str) -> str:
    """One file name, no folders: refused rather than silently changed, so the agent knows."""
    clean = unicodedata.normalize("NFKC", name).strip()
    problem = path_problem(clean.encode()) if clean else "is empty"
    if problem or "/" in clean or clean.lower().endswith(".md") or clean.lower().startswith(".git"):
        why = problem or ("contains '/'" if "/" in clean else "ends in .md (that would be a page)"
                          if clean.lower().endswith(".md") else "is a git control file name")
        raise ToolError(f"attachment name {name!r} {why}; use a plain file name like 'diagram.png'")
    return clean


def _media_type(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"
