"""Deterministic wiki-like Git repositories for the benchmarks.

The repo is built with one `git fast-import` stream (one process for any size), then
checked out and packed like a repo after `git gc`, so every server starts from the same
on-disk layout.
"""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

AUTHOR = ("Bench Writer", "bench@wikibot.invalid")
EPOCH = 1_700_000_000  # first commit time; each commit is one hour later
GIT_ENV = {  # fixed identity and dates; no user or system config, for reproducible repos
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": AUTHOR[0],
    "GIT_AUTHOR_EMAIL": AUTHOR[1],
    "GIT_AUTHOR_DATE": f"{EPOCH} +0000",
    "GIT_COMMITTER_NAME": AUTHOR[0],
    "GIT_COMMITTER_EMAIL": AUTHOR[1],
    "GIT_COMMITTER_DATE": f"{EPOCH} +0000",
}



def _phrases(text: str) -> list[str]:
    """Split a |-separated word list, undoing the line wrapping of the source."""
    return [" ".join(p.split()) for p in text.split("|")]


FOLDERS = ["", "", "", "projects/", "meetings/", "howto/", "reference/"]
ADJECTIVES = """
annual archived automated backup billing central cloud customer daily draft edge
experimental external focused general global incident internal legacy local main
migration mobile monthly network nightly offline onboarding open partner platform
primary private public quarterly regional release remote research security shared
staging team testing travel vendor weekly
""".split()
NOUNS = """
api architecture budget cache calendar checklist cluster compliance dashboard database
deployment design documentation email feedback glossary guidelines hardware hiring
index infrastructure inventory laptop license logging meeting metrics monitoring
notes office onboarding outage packaging passwords planning policy printer process
recipes retrospective roadmap runbook schedule search server setup storage support
survey templates timeline tooling training vpn website wiki workflow
""".split()
SUFFIXES = ["", "", "overview", "notes", "faq", "plan", "howto", "log", "ideas", "v2"]
SUBJECTS = _phrases("""
the team|our setup|the new process|this page|the old system|every release|the
on-call person|the nightly job|each reviewer|the project lead|a fresh checkout|the
staging cluster|the shared drive|most people|the migration script|the dashboard
""")
VERBS = _phrases("""
depends on|replaces|documents|should update|links to|was moved into|needs|keeps track
of|reads from|writes to|summarises|was merged with|is blocked by|supersedes|refers to
""")
OBJECTS = _phrases("""
the configuration file|last quarter's numbers|the backup schedule|the review checklist|
a short list of owners|the archived notes|the error budget|the meeting minutes|the
vendor contract|the access policy|the upgrade path|the open questions|the test plan|
the rollout calendar|the glossary entries|two older pages
""")
CLAUSES = _phrases("""
before the next release|once the review is done|unless someone objects|as agreed in
the last meeting|when the cache is cold|for new contributors|in most cases|after the
outage in March|until the migration finishes|on every weekday|if the job fails twice|
without any manual steps|so that nobody has to ask again|while the old setup still
runs|because the defaults changed
""")
HEADINGS = _phrases("""
Background|Overview|Current status|How it works|Steps|Open questions|Decisions|
Next steps|Known issues|Contacts|History|Troubleshooting|Examples|Related pages|
Checklist|Notes
""")


def _title(rng: random.Random) -> str:
    words = [rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(SUFFIXES)]
    return " ".join(w for w in words if w).capitalize()


def _page_names(rng: random.Random, count: int) -> list[tuple[str, str]]:
    """Unique (title, path) pairs; paths are lower-case slugs, some in folders."""
    names: dict[str, str] = {}
    while len(names) < count:
        title = _title(rng)
        if len(names) > 20_000:  # the word lists run out of combinations
            title = f"{title} {len(names)}"
        path = rng.choice(FOLDERS) + title.lower().replace(" ", "-") + ".md"
        names.setdefault(path, title)
    return [(title, path) for path, title in names.items()]


def _sentence(rng: random.Random) -> str:
    text = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
    if rng.random() < 0.6:
        text += f" {rng.choice(CLAUSES)}"
    return text[0].upper() + text[1:] + "."


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(2, 6)))


def _link(rng: random.Random, names: list[tuple[str, str]]) -> str:
    """A wiki link or a Markdown link to another page, as people write both."""
    title, path = rng.choice(names)
    if rng.random() < 0.5:
        return f"[[{title}]]"
    return f"[{title}](/{path[:-3]})"


def _block(rng: random.Random, names: list[tuple[str, str]]) -> str:
    kind = rng.random()
    if kind < 0.45:
        return _paragraph(rng)
    if kind < 0.75:
        items = [f"- {_sentence(rng)} See {_link(rng, names)}." for _ in range(rng.randint(2, 5))]
        return "\n".join(items)
    if kind < 0.9:
        return "\n".join(f"{i}. {_sentence(rng)}" for i in range(1, rng.randint(3, 6)))
    return f"> {_sentence(rng)}\n\n`{rng.choice(NOUNS)}-{rng.randint(1, 99)}` {_paragraph(rng)}"


def _page(rng: random.Random, title: str, names: list[tuple[str, str]]) -> str:
    """About 2 KB of Markdown: a title, an intro, then sections of varied blocks."""
    target = rng.randint(1700, 2300)
    parts = [f"# {title}", _paragraph(rng)]
    size = sum(map(len, parts))
    while size < target:
        block = _block(rng, names) if rng.random() < 0.75 else f"## {rng.choice(HEADINGS)}"
        parts.append(block)
        size += len(block) + 2
    return "\n\n".join(parts) + "\n"


def _edit(rng: random.Random, text: str) -> str:
    """Rewrite one paragraph, keeping the page's size and structure."""
    blocks = text.rstrip("\n").split("\n\n")
    plain = [i for i, b in enumerate(blocks) if i > 0 and b[0] not in "#->`0123456789"]
    blocks[rng.choice(plain or [len(blocks) - 1])] = _paragraph(rng)
    return "\n\n".join(blocks) + "\n"


def _data(payload: bytes) -> bytes:
    return b"data %d\n%s\n" % (len(payload), payload)


def _fast_import_stream(pages: int, commits: int, seed: int) -> bytes:
    """All commits of the corpus as one fast-import stream on refs/heads/main."""
    rng = random.Random(seed)
    names = _page_names(rng, pages)
    texts: dict[str, str] = {}
    commits = max(1, min(commits, pages))
    out = []
    for c in range(commits):
        new = names[c * pages // commits : (c + 1) * pages // commits]
        earlier = list(texts)
        edited = rng.sample(earlier, min(len(earlier), max(1, len(new) // 4))) if earlier else []
        for title, path in new:
            texts[path] = _page(rng, title, names)
        for path in edited:
            texts[path] = _edit(rng, texts[path])
        who = f"{AUTHOR[0]} <{AUTHOR[1]}> {EPOCH + 3600 * c} +0000".encode()
        message = f"Add {len(new)} pages, edit {len(edited)}".encode()
        out += [b"commit refs/heads/main\n", b"author %s\ncommitter %s\n" % (who, who), _data(message)]
        for path in [p for _, p in new] + edited:
            out += [b"M 100644 inline %s\n" % path.encode(), _data(texts[path].encode())]
        out.append(b"\n")
    return b"".join(out)


def _git(path: Path, *args: str, stdin: bytes | None = None) -> None:
    subprocess.run(["git", "-C", str(path), *args], input=stdin, check=True,
                   env={**os.environ, **GIT_ENV},
                   stdout=subprocess.DEVNULL)


def make_wiki_repo(path: Path, pages: int, commits: int = 50, seed: int = 1) -> None:
    """Create a non-bare repo at `path` (branch main) holding `pages` pages over `commits` commits."""
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "-q", "-b", "main")
    _git(path, "fast-import", "--quiet", stdin=_fast_import_stream(pages, commits, seed))
    _git(path, "reset", "-q", "--hard", "main")
    _git(path, "gc", "-q", "--prune=now")
