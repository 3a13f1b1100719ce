"""Markdown chunking with the model's real tokenizer."""
from __future__ import annotations

import pytest

from wikibot.indexer.chunking import Chunker, slugify
from wikibot.indexer.model import Model


@pytest.fixture(scope="module")
def model() -> Model:
    return Model()


@pytest.fixture(scope="module")
def chunker(model) -> Chunker:
    return Chunker(model, model.max_content_tokens)


PAGE = """---
title: Postgres Failover
tags: [runbook, database]
---
Intro line before any heading.

# Failover

When the primary dies, promote the replica.

```bash
# this is a shell comment, not a heading
pg_ctl promote -D /var/lib/postgresql/16/main
```

Checks
------

Confirm with `SELECT pg_is_in_recovery();`.

## Checks

The same title twice gets a numbered anchor.
"""


def test_frontmatter_headings_fences_anchors_and_lines(chunker):
    chunks = chunker.chunk("runbooks/postgres_failover.md", PAGE)
    assert {c.title for c in chunks} == {"Postgres Failover"}
    assert all(c.tags == ("runbook", "database") for c in chunks)
    sections = [(c.section, c.anchor) for c in chunks]
    assert sections == [
        ("Postgres Failover", ""),
        ("Postgres Failover > Failover", "failover"),
        ("Postgres Failover > Failover > Checks", "checks"),
        ("Postgres Failover > Failover > Checks", "checks-1"),
    ]
    code = chunks[1]
    assert "# this is a shell comment" in code.text and "pg_ctl promote" in code.text
    assert (code.start_line, code.end_line) == (7, 14)  # from its heading to the closing fence
    lines = PAGE.splitlines()
    for c in chunks:  # line ranges point at the chunk's own text in the file
        assert lines[c.start_line - 1].strip() in c.text or c.text.startswith(lines[c.start_line - 1].strip())


def test_untitled_page_takes_its_first_h1_or_its_file_name(chunker):
    assert chunker.chunk("a.md", "# Real Title\n\ntext\n")[0].title == "Real Title"
    assert chunker.chunk("how-to/deploy_the_app.md", "text only\n")[0].title == "Deploy The App"


def test_every_chunk_fits_the_model_window(chunker, model):
    long_paragraph = " ".join(f"sentence number {i} talks about replication lag and failover." for i in range(300))
    long_line = "x" * 5000
    code = "```python\n" + "\n".join(f"value_{i} = compute({i})  # step {i}" for i in range(400)) + "\n```\n"
    page = f"# Big\n\n{long_paragraph}\n\n{long_line}\n\n## Code\n\n{code}"
    chunks = chunker.chunk("big.md", page)
    assert len(chunks) > 10
    for c in chunks:
        assert model.count_tokens(c.embed_text) <= model.max_content_tokens
    text = " ".join(c.text for c in chunks)
    assert "sentence number 299" in text and "value_399" in text  # nothing dropped


def test_neighbouring_chunks_overlap(chunker):
    paragraphs = "\n\n".join(f"Paragraph {i}: " + "words about the topic " * 12 for i in range(12))
    chunks = chunker.chunk("o.md", f"# Topic\n\n{paragraphs}\n")
    assert len(chunks) >= 2
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start_line <= a.end_line  # the next one starts inside the previous one


def test_anchors_match_otterwiki():
    assert slugify("Checks & Balances: 2024!") == "checks-balances-2024"
    assert slugify("Café  Déjà vu") == "cafe-deja-vu"


@pytest.mark.parametrize("frontmatter", [
    "date: 2024-02-30",  # PyYAML raises ValueError, not YAMLError
    "title: [unclosed",
    "!!float abc",
    "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\ntitle: [*b,*b,*b,*b,*b,*b,*b,*b,*b]",
    "- just\n- a list",
    "title: " + "[" * 5000,
])
def test_bad_frontmatter_is_no_metadata_never_an_error(chunker, frontmatter):
    chunks = chunker.chunk("notes/odd_page.md", f"---\n{frontmatter}\n---\n# Real\n\nbody text\n")
    assert [c.title for c in chunks] == ["Real"] and chunks[0].text.endswith("body text")


def test_fences_inline_backticks_tildes_and_unclosed(chunker):
    page = "# A\n\n```js code``` is inline, not a fence\n\n# B\n\n~~~\n# not a heading\n~~~\n\n# C\n\n```\n# open\n"
    sections = [c.section for c in chunker.chunk("f.md", page)]
    assert sections == ["A", "A > B", "A > C"]
    assert chunker.chunk("g.md", "```bash\n# install deps\n```\ntext\n")[0].title == "G"


def test_line_numbers_survive_odd_characters_and_a_bom(chunker):
    page = "\ufeff---\ntitle: T\n---\nfirst \f line\n\n# B\n\nline\x1c seven\n"
    chunks = chunker.chunk("b.md", page)
    assert chunks[0].title == "T"
    assert [(c.start_line, c.end_line) for c in chunks] == [(4, 4), (6, 8)]


def test_long_titles_and_lines_still_fit(chunker, model):
    import base64
    import os

    page = "# " + "very long heading words " * 100 + "\n\n" + base64.b64encode(os.urandom(150_000)).decode() + "\n"
    chunks = chunker.chunk("b64.md", page)
    assert len(chunks) > 50
    for c in chunks:
        assert model.count_tokens(c.embed_text) <= model.max_content_tokens


def test_anchors_follow_the_rendered_heading_text(chunker):
    page = "# See [the docs](http://x.com/a)\n\nx\n\n## _private_ api\n\ny\n\n## `code` name\n\nz\n"
    assert [c.anchor for c in chunker.chunk("a.md", page)] == ["see-the-docs", "private-api", "code-name"]
