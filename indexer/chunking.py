"""Markdown-aware chunking: pages become section-sized chunks that fit the embedding model's window.

Frontmatter becomes metadata; ATX and setext headings split sections (never inside fenced code);
each chunk carries its section path ("Page > H1 > H2"), the heading anchor Otterwiki renders, and
its line range. Chunks are measured with the model's own tokenizer so nothing is silently
truncated, and neighbours within a section overlap a little so a sentence cut at a boundary
still has its context.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import yaml

CountTokens = Callable[[str], int]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
FRONTMATTER_END = ("---", "...")


def slugify(text: str) -> str:
    """The heading anchor Otterwiki renders (otterwiki.util.slugify, without keeping slashes)."""
    value = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").strip().lower()
    value = re.sub(r"[^\w\s\-]", "", value)
    return re.sub(r"[-\s]+", "-", value)


def page_title_from_path(path: str) -> str:
    stem = path.rsplit("/", 1)[-1].removesuffix(".md")
    return re.sub(r"[_\-]+", " ", stem).strip().title() or stem


@dataclass(frozen=True)
class Chunk:
    page: str  # file path in the repository, e.g. "runbooks/postgres_failover.md"
    title: str
    section: str  # "Title > Heading > Subheading"
    anchor: str  # "" for text above the first heading
    start_line: int  # 1-based, inclusive, in the file
    end_line: int
    text: str
    tags: tuple[str, ...] = ()

    @property
    def embed_text(self) -> str:
        """What the model sees: the section path gives a chunk its context."""
        return f"{self.section}\n{self.text}"

    @property
    def key(self) -> str:
        """Content hash of what is embedded: equal keys can reuse one embedding."""
        return hashlib.sha256(self.embed_text.encode()).hexdigest()


@dataclass
class _Section:
    path: list[str]
    anchor: str
    lines: list[tuple[int, str]] = field(default_factory=list)  # (line number, text)
    heading_lines: int = 0  # how many of `lines` are the heading itself (1 for ATX, 2 for setext)


def split_frontmatter(text: str) -> tuple[dict, list[str], int]:
    """(metadata, remaining lines, number of the first remaining line)."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}, lines, 1
    for i in range(1, len(lines)):
        if lines[i].strip() in FRONTMATTER_END:
            try:
                meta = yaml.safe_load("\n".join(lines[1:i])) or {}
            except yaml.YAMLError:
                meta = {}
            return (meta if isinstance(meta, dict) else {}), lines[i + 1:], i + 2
    return {}, lines, 1


def _sections(lines: list[str], first_line: int, title: str) -> Iterator[_Section]:
    """Split at headings outside fenced code; yields sections in order (the preamble first)."""
    stack: list[tuple[int, str]] = []
    anchors: dict[str, int] = {}
    current = _Section([title], "")
    fence: str | None = None
    for offset, line in enumerate(lines):
        number = first_line + offset
        opener = FENCE.match(line)
        if fence is not None:
            if opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence) \
                    and not line.strip()[len(opener.group(1)):].strip():
                fence = None
            current.lines.append((number, line))
            continue
        if opener:
            fence = opener.group(1)
            current.lines.append((number, line))
            continue
        heading: tuple[int, str] | None = None
        heading_lines = [(number, line)]
        atx = ATX.match(line)
        setext = SETEXT.match(line)
        if atx:
            heading = (len(atx.group(1)), (atx.group(2) or "").strip())
        elif setext and current.lines and current.lines[-1][1].strip() and not _is_block_start(current.lines[-1][1]):
            underlined = current.lines.pop()
            heading_lines.insert(0, underlined)
            heading = (1 if setext.group(1)[0] == "=" else 2, underlined[1].strip())
        if heading is None:
            current.lines.append((number, line))
            continue
        if current.lines or current.anchor:
            yield current
        level, text = heading
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, text))
        anchor = slugify(text)
        if anchor in anchors:  # repeated headings get -1, -2 ... as Otterwiki numbers them
            anchors[anchor] += 1
            anchor = f"{anchor}-{anchors[anchor]}"
        else:
            anchors[anchor] = 0
        current = _Section([title, *(t for _, t in stack)], anchor, heading_lines, len(heading_lines))
    if current.lines:
        yield current


def _is_block_start(line: str) -> bool:
    stripped = line.lstrip()
    return bool(ATX.match(line)) or stripped.startswith((">", "|")) or FENCE.match(line) is not None


def _blocks(section: _Section) -> Iterator[list[tuple[int, str]]]:
    """Paragraph-like blocks: runs of non-blank lines; a fenced code block is one block."""
    block: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in section.lines:
        opener = FENCE.match(line)
        if fence is None and opener:
            if block:
                yield block
            block, fence = [(number, line)], opener.group(1)
            continue
        if fence is not None:
            block.append((number, line))
            if opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence):
                yield block
                block, fence = [], None
            continue
        if line.strip():
            block.append((number, line))
        elif block:
            yield block
            block = []
    if block:
        yield block


class Chunker:
    """Turns one page into chunks whose `embed_text` fits `max_tokens` of the model."""

    def __init__(self, count_tokens: CountTokens, max_tokens: int = 254, overlap_tokens: int = 32) -> None:
        self.count = count_tokens
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens

    def chunk(self, path: str, text: str) -> list[Chunk]:
        meta, lines, first = split_frontmatter(text)
        raw_tags = meta.get("tags") or []
        tags = tuple(str(t) for t in (raw_tags if isinstance(raw_tags, list) else [raw_tags]))
        title = str(meta.get("title") or "") or self._first_h1(lines) or page_title_from_path(path)
        chunks: list[Chunk] = []
        for section in _sections(lines, first, title):
            label = " > ".join(dict.fromkeys(section.path))  # a page's H1 usually repeats its title
            budget = self.max_tokens - self.count(label) - 1
            heading_only = {number for number, _ in section.lines[:section.heading_lines]}
            for piece in self._pack(section, max(budget, 16)):
                body = "\n".join(line for _, line in piece).strip()
                # a heading with no text under it says nothing its section path does not say
                if body and not {n for n, line in piece if line.strip()} <= heading_only:
                    chunks.append(Chunk(path, title, label, section.anchor, piece[0][0], piece[-1][0], body, tags))
        return chunks

    @staticmethod
    def _first_h1(lines: list[str]) -> str:
        for line in lines:
            m = ATX.match(line)
            if m and len(m.group(1)) == 1 and m.group(2):
                return m.group(2).strip()
        return ""

    def _pack(self, section: _Section, budget: int) -> Iterator[list[tuple[int, str]]]:
        """Greedily fill chunks with whole blocks; split blocks only when one alone is too big."""
        current: list[tuple[int, str]] = []
        used = 0
        for block in _blocks(section):
            for piece in self._fit(block, budget):
                size = self.count("\n".join(line for _, line in piece))
                if current and used + size + 1 > budget:
                    yield current
                    current = self._overlap(current, budget - size - 1)
                    used = self.count("\n".join(line for _, line in current)) if current else 0
                current = current + piece
                used += size + (1 if used else 0)
        if current:
            yield current

    def _overlap(self, previous: list[tuple[int, str]], room: int) -> list[tuple[int, str]]:
        """The end of the previous chunk, up to the overlap size: whole lines, then trailing words."""
        tail: list[tuple[int, str]] = []
        limit = min(self.overlap_tokens, room)
        for number, line in reversed(previous):
            candidate = [(number, line), *tail]
            if self.count("\n".join(t for _, t in candidate)) <= limit:
                tail = candidate
                continue
            words = line.split(" ")
            for start in range(1, len(words)):
                partial = [(number, " ".join(words[start:])), *tail]
                if self.count("\n".join(t for _, t in partial)) <= limit:
                    tail = partial
                    break
            break
        return tail

    def _fit(self, block: list[tuple[int, str]], budget: int) -> Iterator[list[tuple[int, str]]]:
        """Split a block that is too big by lines, and a line that is too big by words."""
        if self.count("\n".join(line for _, line in block)) <= budget:
            yield block
            return
        piece: list[tuple[int, str]] = []
        for number, line in block:
            for part in self._split_line(line, budget):
                candidate = [*piece, (number, part)]
                if piece and self.count("\n".join(t for _, t in candidate)) > budget:
                    yield piece
                    piece = [(number, part)]
                else:
                    piece = candidate
        if piece:
            yield piece

    def _split_line(self, line: str, budget: int) -> Iterator[str]:
        if self.count(line) <= budget:
            yield line
            return
        words: list[str] = []
        for word in line.split(" "):
            if words and self.count(" ".join([*words, word])) > budget:
                yield " ".join(words)
                words = []
            while len(word) > 1 and self.count(word) > budget:  # a huge "word" (URL, base64): cut it
                cut = len(word) // 2
                while cut > 1 and self.count(word[:cut]) > budget:
                    cut //= 2
                yield word[:cut]
                word = word[cut:]
            words.append(word)
        if words:
            yield " ".join(words)
