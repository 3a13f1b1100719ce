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
    return Chunker(model.count_tokens, model.max_content_tokens)


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
