"""wikibot.mcp.wikitext: Otterwiki-compatible page paths and link parsing/rewriting (pure, no server)."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from urllib.parse import unquote

import pytest

from wikibot.errors import WikibotError
from wikibot.mcp import wikitext
from wikibot.mcp.wikitext import (
    Link,
    PathRefused,
    attachment_dir,
    links_out,
    page_file,
    page_name,
    rewrite_links,
    stored_file,
)


@pytest.mark.parametrize(("name", "file"), [
    ("Home", "home.md"),
    ("Projects/Road Map", "projects/road map.md"),
    ("/projects/road map.md", "projects/road map.md"),
    ("  //Projects//Road Map//  ", "projects/road map.md"),
    ("Café notes", "café notes.md"),
    ("Cafe\u0301 notes", "café notes.md"),  # NFKC composes e + combining acute
    ("Ｒｏａｄ\u3000Ｍａｐ", "road map.md"),  # full-width letters and ideographic space
    ("ﬁle", "file.md"),  # ligature
    ("Straße", "straße.md"),
    ("C# tips", "c tips.md"),  # Otterwiki drops ? | $ . ! # from page names
    ("What?", "what.md"),
    ("100% done", "100% done.md"),
    ("Road%20Map", "road%20map.md"),  # names are never decoded
    ("Report.Final", "reportfinal.md"),
    ("Notes.MD", "notesmd.md"),  # Otterwiki strips only a lowercase .md first
    ("notes.md.md", "notesmd.md"),
    ("UPPER/Case", "upper/case.md"),
    ("Page\n", "page.md"),
    ("O'Neil's page!", "o'neil's page.md"),
    (".hidden", "hidden.md"),
])
def test_page_file_maps_like_otterwiki(name: str, file: str) -> None:
    assert page_file(name) == file
    assert page_file(file) == file  # a file path maps to itself


@pytest.mark.parametrize("name", [
    "", "   ", "/", "//",
    "..", ".", "a/../b", "a/./b", "../etc/passwd", "a/..", " .. /x", "a/.../b",
    "%2e%2e/x", "%2E%2E%2Fx", "..%2fx", "a/%2e/b", "%252e%252e/x", "%25252e%25252e/x",
    "．．／etc", "ａ／．．／ｂ", "%ef%bc%8e%ef%bc%8e/x",  # full-width dots, raw and encoded
    "a\\b", "..\\x", "a%5cb", "a%255Cb", "a＼b",  # backslashes: raw, encoded, double-encoded, full-width (NFKC)
    "a\x00b", "a%00b", "a\nb", "a\tb", "a\x7fb", "a%0d%0ab",
    ".git", ".git/config", "x/.git/hooks/pre-receive", ".GIT/HEAD", "%2egit/config", "x/.git./y",
    "git~1/config",
    "con", "aux/page", "a:b", "a*b", "a<b", 'a"b', "a|b",
    "notes./x", "x/notes /y",
    "x" * 253, ".md", "x/.md",
    "%2525252525252525252e",
])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(PathRefused) as refused:
        page_file(name)
    message = str(refused.value)
    assert message.startswith(f"page path {name!r} is refused: ") and "use a plain path like" in message
    assert isinstance(refused.value, WikibotError) and refused.value.status == 400


def test_refusal_messages_name_the_problem() -> None:
    def message(name: str) -> str:
        with pytest.raises(PathRefused) as refused:
            page_file(name)
        return str(refused.value)

    assert "'..' component" in message("%252e%252e/x")
    assert "backslash" in message("a%5cb")
    assert "control character" in message("a%00b")
    assert "'.git' component" in message("x/.git/y")
    assert "empty" in message(" ")
    assert "'a:b.md' has a character invalid" in message("a:b")


def test_long_but_valid_component() -> None:
    assert page_file("x" * 252) == "x" * 252 + ".md"  # 255 bytes with .md


@pytest.mark.parametrize(("file", "title", "name"), [
    ("home.md", None, "Home"),
    ("projects/road map.md", None, "Projects/Road Map"),
    ("projects/road map.md", "ROAD map", "Projects/ROAD map"),  # heading with other capitals wins
    ("projects/road map.md", "Something else", "Projects/Road Map"),  # unrelated heading is ignored
    ("projects/road map", None, "Projects/Road Map"),
    ("projects/road map.md/", None, "Projects/Road Map"),
    ("straße/ßtraße.md", None, "Straße/ßtraße"),  # titleSs never turns ß into Ss
    ("o'neil's page.md", None, "O'neil's Page"),  # the apostrophe does not start a word
    ("o'neil's page.md", "O'Neil's Page", "O'Neil's Page"),
    ("c# tips.md", None, "C# Tips"),
    ("Mixed/CASE.md", None, "Mixed/CASE"),  # capitals already in the file name are kept
    ("café notes.md", None, "Café Notes"),
])
def test_page_name_like_get_pagename(file: str, title: str | None, name: str) -> None:
    assert page_name(file, title) == name


def test_attachment_dir() -> None:
    assert attachment_dir("projects/road map.md") == "projects/road map"
    assert attachment_dir("Projects/Road Map.MD") == "projects/road map"
    with pytest.raises(ValueError, match="not a page file"):
        attachment_dir("projects/diagram.png")


PAGE = """\
# Roadmap

See [[Road Map]], [[Plan|Projects/Plan#Goals]] and [[Projects/Plan#Risks]].
Jump to [[#local]] or [top](#top); mail [me](mailto:a@example.org).
Inline `[[Not A Link]]` and ``code with ` tick [x](/Nope)`` stay code, but [`code` text](/Coded) is a link.

```python
[[Fenced]] [fenced](/Fenced)
```

~~~
[[Tilde Fenced]]
~~~~

Externals: [site](https://example.com/Page), [proto](//cdn.example.com/x), [ftp](ftp://h/x).
Encoded: [Enc](/Page%20Name#sec%201 "Title"), [angle](</Other Page>), [q](/What%3F?rev=1).
Images: ![diagram](/Roadmap/diagram.png) and [![logo](/Roadmap/logo.png)](/Home#top).
Attachments: [pdf](/Roadmap/a/report.pdf) [zip](/Roadmap/backup.ZIP); a dotted page [v](/Report.Final).
Otterwiki's own pages: [index](/-/index). Relative: [rel](Sibling). Escaped: \\[[Esc]] is text.
Refused: [[../etc/passwd]] [up](/%2e%2e/secret) [[a:b]] [[Title|https://example.com]].
[[Subpage|/Roadmap/Sub Page]]
"""


def test_links_out_on_a_realistic_page() -> None:
    assert links_out(PAGE) == [
        Link("road map.md", "", "Road Map", "wikilink", 3),
        Link("projects/plan.md", "Goals", "Plan", "wikilink", 3),
        Link("projects/plan.md", "Risks", "Projects/Plan#Risks", "wikilink", 3),
        Link("coded.md", "", "`code` text", "markdown", 5),
        Link("page name.md", "sec 1", "Enc", "markdown", 16),
        Link("other page.md", "", "angle", "markdown", 16),
        Link("what.md", "", "q", "markdown", 16),
        Link("home.md", "top", "![logo](/Roadmap/logo.png)", "markdown", 17),
        Link("reportfinal.md", "", "v", "markdown", 18),
        Link("roadmap/sub page.md", "", "Subpage", "wikilink", 21),
    ]


@pytest.mark.parametrize("markdown", [
    "", "[[", "]]", "[[]]", "[[|]]", "[[ | ]]", "[x](", "[x]()", "[x](<>)", "![](/)", "[a](/%)", "[a](/%ZZ)",
    "```\n[[Open fence", "``unclosed [[A]]", "[[a\n\nb]]", "[a\n\nb](/X)", "[[%00]]", "[x](/a%5cb)",
    "[" * 2000 + "x", "\\" * 10 + "[[A]]", "[[A|B|C]]", "[[\u202e]]",
])
def test_links_out_never_raises(markdown: str) -> None:
    for link in links_out(markdown):
        assert page_file(link.target) == link.target


def test_links_out_odd_cases() -> None:
    assert [link.target for link in links_out("``unclosed [[A]]")] == ["a.md"]  # unmatched ticks are literal
    assert links_out("```\n[[Open fence") == []  # an unclosed fence runs to the end
    assert links_out("[[a\n\nb]]") == []  # not across paragraphs
    assert [link.line for link in links_out("x\n\n[[Long\ntitle|B]]")] == [3]
    assert links_out("\\[[Escaped]] \\\\[[Not escaped]]") == [Link("not escaped.md", "", "Not escaped", "wikilink", 1)]
    assert [link.target for link in links_out("> ```\n> [[In quote fence]]\n> ```\n[[After]]")] == ["after.md"]


def test_links_out_wikilink_with_two_pipes_follows_otterwiki() -> None:
    # Otterwiki splits at the first '|': title "A", link "B|C" (which '|' makes an unusable file name)
    assert links_out("[[A|B|C]] [[A|B]]") == [Link("b.md", "", "A", "wikilink", 1)]


OLD_PAGE_LINKS = """\
Links: [[Old]] [[old]] [[/Old]] [[Title|Old#Intro]] [[Title|/Old Page]] [[Old#]] [[ Old ]].
Subpages move too: [[Old/Child]] [child](/Old/Child#x) [[Old.md]].
Markdown: [t](/Old) [t](/Old#intro "tip") [t](</Old>) [q](/old?rev=2#a) [deep](/Old/Sub/a%20b.png).
Images: ![a](/Old/a.png) ![b](/old/B%20C.png?size=80) [![c](/Old/c.png)](/Old) [pdf](/Old/a/report.pdf)
Unrelated: [[Older]] [[Other/Old]] [o](/Oldish) ![x](/Other/a.png) [[Title|Old Page]] [ext](https://x/Old)
Code: `[[Old]]` ``[t](/Old)`` \\[[Old]]
```
[[Old]] ![a](/Old/a.png)
```
"""

OLD_PAGE_REWRITTEN = """\
Links: [[Archive/New Page]] [[Archive/New Page]] [[/Archive/New Page]] [[Title|Archive/New Page#Intro]] \
[[Title|/Old Page]] [[Archive/New Page#]] [[Archive/New Page]].
Subpages move too: [[Archive/New Page/Child]] [child](/Archive/New%20Page/Child#x) [[Archive/New Page]].
Markdown: [t](/Archive/New%20Page) [t](/Archive/New%20Page#intro "tip") [t](/Archive/New%20Page) \
[q](/Archive/New%20Page?rev=2#a) [deep](/Archive/New%20Page/Sub/a%20b.png).
Images: ![a](/Archive/New%20Page/a.png) ![b](/Archive/New%20Page/B%20C.png?size=80) \
[![c](/Archive/New%20Page/c.png)](/Archive/New%20Page) [pdf](/Archive/New%20Page/a/report.pdf)
Unrelated: [[Older]] [[Other/Old]] [o](/Oldish) ![x](/Other/a.png) [[Title|Old Page]] [ext](https://x/Old)
Code: `[[Old]]` ``[t](/Old)`` \\[[Old]]
```
[[Old]] ![a](/Old/a.png)
```
"""


def test_rewrite_links_after_a_rename() -> None:
    text, count = rewrite_links(OLD_PAGE_LINKS, "old.md", "Archive/New Page")
    assert text == OLD_PAGE_REWRITTEN
    assert count == 19
    assert rewrite_links(text, "old.md", "Archive/New Page") == (text, 0)  # nothing left to rewrite
    old_targets = [link for link in links_out(text) if link.target == "old.md" or link.target.startswith("old/")]
    assert old_targets == []


def test_rewrite_links_accepts_names_and_files_loosely() -> None:
    expected = ("[[New]] [t](/New)", 2)
    for old, new in [("old.md", "New"), ("Old", "New.md"), ("/OLD/", " /New/ "), ("Ｏｌｄ", "New")]:
        assert rewrite_links("[[Old]] [t](/Old)", old, new) == expected


def test_rewrite_links_keeps_unmatched_text_identical() -> None:
    for markdown in [PAGE, "", "no links", "[[Older]] [x](/Old Page) `[[Old]]`"]:
        assert rewrite_links(markdown, "old.md", "New") == (markdown, 0)


def test_rewrite_links_to_names_that_need_encoding() -> None:
    text, count = rewrite_links("[[Old]] [[T|Old#a]] [t](/Old) ![i](/Old/x.png)", "old.md", "C# 100%25 [draft]")
    assert text == ("[[C%23 100%2525 %5Bdraft%5D]] [[T|C%23 100%2525 %5Bdraft%5D#a]] "
                    "[t](/C%23%20100%2525%20%5Bdraft%5D) ![i](/C%23%20100%2525%20%5Bdraft%5D/x.png)")
    assert count == 4
    assert {link.target for link in links_out(text)} == {"c 100%25 [draft].md"}
    assert [link.anchor for link in links_out(text)] == ["", "a", ""]


def test_rewrite_links_refuses_bad_names() -> None:
    with pytest.raises(PathRefused):
        rewrite_links("[[Old]]", "old.md", "../x")
    with pytest.raises(PathRefused):
        rewrite_links("[[Old]]", "../old.md", "New")


# Cross-check against Otterwiki itself. It is imported in a child process: otterwiki.server is a
# per-process singleton that needs a repository and would clash with the webui's own instance.
ORACLE = textwrap.dedent("""\
    import json, sys
    from otterwiki.server import app
    from otterwiki.helper import get_filename, get_pagename
    from otterwiki.util import sanitize_pagename
    from otterwiki.backlinks import _rewrite_content
    from otterwiki.renderer import render
    cases = json.load(sys.stdin)
    print(json.dumps({
        "files": [get_filename(sanitize_pagename(n, handle_md=True)) for n in cases["files"]],
        "stored": [get_filename(n) for n in cases["files"]],
        "urls": [get_filename(sanitize_pagename(n, handle_md=True)) for n in cases["urls"]],
        "names": [get_pagename(f, full=True, header=t) for f, t in cases["names"]],
        "rewrites": [_rewrite_content(t, get_filename(o), n, False, o) for t, o, n in cases["rewrites"]],
        "html": render.markdown(cases["page"])[0],
    }))
""")


@pytest.mark.skipif(importlib.util.find_spec("otterwiki") is None, reason="otterwiki is not installed")
def test_matches_otterwiki(tmp_path) -> None:
    cases = {
        "files": ["Home", "Projects/Road Map", "/projects//road map/", "Café notes", "C# tips", "What?",
                  "100% done", "Notes.MD", "Report.Final", "UPPER/Case"],
        "urls": ["Ｒｏａｄ\u3000Ｍａｐ", "Cafe\u0301", "/Projects/Road Map/", "ﬁle"],
        "names": [["projects/road map.md", None], ["projects/road map.md", "ROAD map"], ["straße/ßtraße.md", None],
                  ["o'neil's page.md", None], ["c# tips.md", None], ["Mixed/CASE.md", "mixed"]],
        "rewrites": [
            ["[[Old]] [[/Old]] [[T|Old#a]] [[T|/old#b]] [[Older]] [[Old Page]]", "old.md", "New Name"],
            ["[t](/Old) [t](/Old#a) [q](/old?rev=1) [x](/Older) [s](/Old/Sub)", "old.md", "Dir/New Name"],
            ["![a](/Old/a.png) [![b](/Old/b.png)](/Old) ![c](/Other/c.png)", "old.md", "New"],
            ["[[Road Map]] [r](/Road%20Map#x)", "road map.md", "Plans/Road Map 2"],
        ],
        "page": PAGE,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTTERWIKI")}
    env |= {"REPOSITORY": str(tmp_path), "SECRET_KEY": "x" * 32, "LOG_LEVEL": "ERROR"}
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    proc = subprocess.run([sys.executable, "-c", ORACLE], input=json.dumps(cases), env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=True)
    oracle = json.loads(proc.stdout)

    assert [page_file(n) for n in cases["files"]] == oracle["files"]
    assert [stored_file(n) for n in cases["files"]] == oracle["stored"]
    assert [page_file(n) for n in cases["urls"]] == oracle["urls"]
    assert [page_name(f, t) for f, t in cases["names"]] == oracle["names"]
    assert [rewrite_links(t, o, n)[0] for t, o, n in cases["rewrites"]] == oracle["rewrites"]

    # every internal <a href> the renderer produces is a link we report, in the same order
    # (minus what we skip on purpose: anchors, attachments, /-/ pages, relative and refused targets)
    hrefs = re.findall(r'<a href="([^"]*)"', oracle["html"])
    ours = [(link.target, link.anchor.lower().replace(" ", "-")) for link in links_out(PAGE)]  # ~ slugify
    theirs = []
    for href in hrefs:
        path, _, anchor = href.partition("#")
        target = wikitext._page_target(unquote(path.partition("?")[0])) if path.startswith("/") else None
        if target and not path.startswith(("//", "/-/")):
            theirs.append((target, unquote(anchor).replace(" ", "-")))
    assert ours == theirs


@pytest.mark.parametrize("markdown", [
    "[" * 100_000, "[[" * 50_000, "]" * 100_000, "` " * 50_000, "".join("`" * k + "a" for k in range(1, 400)),
    '[a](/x "' * 12_000, "[a](" * 25_000, "\\" * 100_000 + "[[A]]", "```\n" * 25_000, "[x](/Old) [[Old]] `c`\n" * 4_000,
])
def test_pathological_pages_stay_fast(markdown: str) -> None:
    started = time.monotonic()
    links_out(markdown)
    rewrite_links(markdown, "old.md", "New")
    assert time.monotonic() - started < 3  # linear scans: well under 0.5 s here


@pytest.mark.parametrize(("name", "file"), [
    ("C# tips", "c# tips.md"),
    ("What?", "what?.md"),
    ("Report.Final", "report.final.md"),
    ("Projects/Road Map", "projects/road map.md"),
])
def test_stored_file_is_the_literal_name(name: str, file: str) -> None:
    """How pages pushed with git under names Otterwiki would not produce stay readable."""
    assert stored_file(name) == file
    with pytest.raises(PathRefused):
        stored_file("a/../" + name)
