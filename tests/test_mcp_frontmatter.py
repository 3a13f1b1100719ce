"""Any frontmatter YAML loads gives a readable page over MCP, and the page is still indexed.

YAML allows what JSON does not: dates, numbers, booleans and null as keys, dates and sets as values.
"""
from __future__ import annotations

import pytest
from test_mcp import Mcp

from wikibot.testing.servers import wait_until

FRONTMATTER = """---
2024-01-01: launch
7: seven
2.5: half
~: nothing
true: yes
nested: [[1, 2], [3, [4, {2024-02-03: deep}]]]
when: 2024-02-03 10:00:00
day: 2024-02-03
unique: !!set {a, b}
raw: !!binary aGVsbG8=
huge: 123456789012345678901234567890
odd: .nan
tags: [launch, 2024]
---
"""


@pytest.fixture
def mcp(server, make_user, make_wiki):
    owner = make_user()
    client = Mcp(server, make_wiki(owner, template="empty"), owner.token)
    yield client
    client.close()


def test_frontmatter_with_keys_json_lacks_reads_and_is_indexed(mcp):
    written = mcp.ok("write_page", path="Launch", content=FRONTMATTER + "# Launch plan\n\nCountdown checklist "
                                                                      "for the rocket.\n")
    page = mcp.ok("read_page", path="Launch")
    meta = page["frontmatter"]
    assert meta["2024-01-01"] == "launch" and meta["7"] == "seven" and meta["2.5"] == "half"
    assert meta["null"] == "nothing" and meta["true"] is True
    assert meta["nested"] == [[1, 2], [3, [4, {"2024-02-03": "deep"}]]]
    assert meta["when"] == "2024-02-03T10:00:00" and meta["day"] == "2024-02-03"
    assert sorted(meta["unique"]) == ["a", "b"] and meta["huge"] == 123456789012345678901234567890
    assert isinstance(meta["raw"], str) and isinstance(meta["odd"], str)
    assert page["title"] == "Launch plan" and "Countdown checklist" in page["content"]
    assert mcp.ok("read_page", path="Launch", section="launch-plan")["content"].startswith("# Launch plan")

    def indexed():
        answer = mcp.ok("search", query="countdown checklist rocket", mode="keyword")
        return answer if answer["indexed_sha"] == written["revision"] else None
    answer = wait_until(indexed, timeout=180, what="the page with odd frontmatter to be indexed")
    assert answer["hits"] and answer["hits"][0]["page"] == "launch.md"
    assert answer["hits"][0]["anchor"] == "launch-plan"


ODD = {
    "a date key": "2024-01-01: launch",
    "a list key": "[1, 2]: list key",  # does not load (unhashable key): no metadata
    "nested maps": "a:\n" + "".join("  " * depth + f"k{depth}:\n" for depth in range(1, 60)) + "  " * 60 + "leaf: 1",
    "nested lists": "deep: " + "[" * 300 + "]" * 300,
    "a bytes key": "? !!binary aGVsbG8=\n: bytes key",
    "null": "null",
    "a list": "- just\n- a list",
    # integers past 4,300 decimal digits, which Python refuses to print in decimal
    "a huge integer value": "big: 0x" + "f" * 4000,
    "a huge integer key": "0x" + "f" * 4000 + ": big key",
    "a huge integer tag": "tags: [0x" + "f" * 4000 + "]",
    "a huge integer nested too deep": "deep: " + "[" * 25 + "0x" + "f" * 4000 + "]" * 25,
}


@pytest.mark.parametrize("frontmatter", ODD.values(), ids=ODD.keys())
def test_any_loadable_frontmatter_gives_a_readable_page(mcp, frontmatter):
    mcp.ok("write_page", path="Odd", content=f"---\n{frontmatter}\n---\n# Odd\n\nbody\n")
    page = mcp.ok("read_page", path="Odd")
    assert page["title"] == "Odd" and page["content"].endswith("body\n")
    assert isinstance(page["frontmatter"], dict)
