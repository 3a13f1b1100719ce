"""The MCP side of the error base, in-process: refusals reach the agent worded, failures stay masked."""
from __future__ import annotations

import asyncio

import pytest
from fastmcp import Client

from wikibot.errors import InternalError, Refused
from wikibot.mcp.server import TOOLS, build_server, reporting_refusals


def refuse(page: str) -> str:
    """Refuses every page."""
    raise Refused(f"{page} is over the page limit of its owner's tier")


def fail(page: str) -> str:
    """Fails as git would."""
    raise InternalError(f"git log failed in /srv/wikibot/repos/alice/{page}: fatal: bad object")


def call(tool, **arguments):
    server = build_server()
    server.tool(reporting_refusals(tool))

    async def run():
        async with Client(server) as client:
            return await client.call_tool(tool.__name__, arguments, raise_on_error=False)
    return asyncio.run(run())


def test_a_refusal_reaches_the_agent_with_its_message():
    result = call(refuse, page="notes")
    assert result.is_error
    assert result.content[0].text == "notes is over the page limit of its owner's tier"


def test_a_failure_stays_masked():
    result = call(fail, page="notes")
    assert result.is_error
    assert "/srv/wikibot" not in result.content[0].text and "bad object" not in result.content[0].text


@pytest.mark.parametrize("tool", [fn for fn, _ in TOOLS], ids=lambda fn: fn.__name__)
def test_every_tool_is_served_through_the_mapping(tool):
    async def registered():
        return (await build_server().get_tool(tool.__name__)).fn
    served = asyncio.run(registered())
    assert getattr(served, "__wrapped__", None) is tool
