"""The FastMCP server: one instance serves every wiki at `/mcp/{owner}/{wiki}` (stateless, JSON).

Stateless because gunicorn runs several worker processes and a session would live in one of them;
JSON answers because every tool answers once (no streaming), which the WSGI bridge relies on.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError

from wikibot.errors import WikibotError

from . import tools_attachments, tools_history, tools_pages

INSTRUCTIONS = (
    "Tools for one wiki of Markdown pages kept in Git. Start with search or list_pages, read_page before "
    "changing a page, and pass the revision you read as base_revision when writing; prefer edit_page over "
    "rewriting whole pages. Every change is a commit other people see in the history."
)
READ = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False}
WRITE = {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False, "openWorldHint": False}
DESTROY = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": False}

TOOLS: list[tuple[Any, dict[str, bool]]] = [
    (tools_pages.read_page, READ),
    (tools_pages.write_page, {**WRITE, "destructiveHint": True}),  # replaces a whole page
    (tools_pages.edit_page, WRITE),
    (tools_pages.delete_page, DESTROY),
    (tools_pages.rename_page, WRITE),
    (tools_pages.list_pages, READ),
    (tools_pages.links, READ),
    (tools_history.search, READ),
    (tools_history.history, READ),
    (tools_history.diff, READ),
    (tools_history.recent_changes, READ),
    (tools_attachments.list_attachments, READ),
    (tools_attachments.read_attachment, READ),
    (tools_attachments.upload_attachment, {**WRITE, "idempotentHint": True}),
    (tools_attachments.delete_attachment, DESTROY),
]


def reporting_refusals(tool: Callable[..., Any]) -> Callable[..., Any]:
    """The MCP side of the error base: a refusal (`WikibotError` under 500) a tool lets through reaches
    the agent as a tool error with its message. Failures (500 and up: their messages name server paths
    and git's words) and anything else stay masked as an internal error, and are logged."""

    @functools.wraps(tool)  # FastMCP reads the parameters from the signature
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return tool(*args, **kwargs)
        except WikibotError as exc:
            if exc.status >= 500:
                raise
            raise ToolError(str(exc)) from None
    return call


def build_server() -> FastMCP:
    server = FastMCP("wikibot", instructions=INSTRUCTIONS, mask_error_details=True)
    for fn, hints in TOOLS:
        server.tool(reporting_refusals(fn), annotations=hints)
    return server


def build_app() -> Any:
    """The Starlette app the WSGI bridge runs."""
    return build_server().http_app(path="/mcp/{owner}/{slug}", stateless_http=True, json_response=True)
