"""Markdown-aware chunking: pages become section-sized chunks that fit the embedding model's window.

Frontmatter becomes metadata; ATX and setext headings split sections (never inside fenced code);
each chunk carries its section path ("Page > H1 > H2"), the heading anchor Otterwiki renders, and
its line range. Chunks are measured with the model's own tokenizer so nothing is silently
truncated, and neighbours within a section overlap a little so a sentence cut at a boundary
still has its context. Work is linear in the page size, whatever the page (any reader can send
the worst one): WordPiece token counts add up across whitespace, so each line and each heading is
counted once, over-long lines are cut at token offsets, and no pattern rescans a line.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import yaml

FENCE_OPEN = re.compile(r"^ {0,3}(?:(`{3,})[^`]*|(~{3,}).*)$")  # a backtick fence's info has no backtick
FENCE_CLOSE = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*$")
ATX_OPEN = re.compile(r" {0,3}(#{1,6})(?=[ \t]|$)")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
LIST_ITEM = re.compile(r"^ {0,3}(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)")
FRONTMATTER_END = ("---", "...")
MAX_FRONTMATTER = 8192  # bytes; metadata is a title and tags, not a document
MAX_TITLE = 200
MAX_LABEL_TOKENS = 64  # the section path may take at most this much of a chunk's window
MAX_LABEL_HEADING = 200  # characters of one heading in a section path
_MARKER_RUNS = re.compile(r"\*+|_+")
_LINK_START = re.compile(r"!?\[([^\[\]]*)\]\(")  # "[text](" or "![alt](", the text without brackets
_TAG = re.compile(r"<[^<>]+>")
_SLUG_DROPPED = re.compile(r"[^\w\s\-]")
_SLUG_RUNS = re.compile(r"[-\s]+")
Line = tuple[int, str, int]  # (line number, text, tokens)


class Tokens(Protocol):
    """What the chunker needs from the model's tokenizer."""

    def count_tokens(self, text: str) -> int: ...
    def split_tokens(self, text: str, max_tokens: int) -> list[str]: ...


def _atx(line: str) -> tuple[int, str] | None:
    """(level, text) of an ATX heading line, else None. By hand: a lazy pattern for the text before
    an optional closing `###` backtracks quadratically over a long run of spaces."""
    opener = ATX_OPEN.match(line)
    if opener is None:
        return None
    text = line[opener.end():].strip(" \t")
    bare = text.rstrip("#")
    if bare != text and bare[-1:] in (" ", "\t"):  # a closing sequence, "# Title ##"
        text = bare
    return len(opener.group(1)), text.strip()


def _strip_emphasis(text: str) -> str:
    """`re.sub(r"(\\*{1,3}|_{1,3})(\\S(?:.*?\\S)?)\\1", r"\\2", text)` for one line, in O(n log n): that
    pattern rescans the rest of the line from every marker that is never closed (`*a *a *a ...`)."""
    runs = [m.span() for m in _MARKER_RUNS.finditer(text)]
    closers: dict[tuple[str, int], list[int]] = {}  # (marker, length) -> where it may close, in order
    for start, end in runs:
        for k in range(start, end):
            if k and not text[k - 1].isspace():
                for size in range(1, min(3, end - k) + 1):
                    closers.setdefault((text[k], size), []).append(k)
    parts, done = [], 0  # text[:done] is in parts
    for start, end in runs:
        k = max(start, done)
        while k < end:
            for size in range(min(3, end - k), 0, -1):  # the pattern tries the longest marker first
                close = _closer(closers.get((text[k], size), []), k + size, text)
                if close is not None:
                    parts += [text[done:k], text[k + size:close]]
                    done = k = close + size
                    break
            else:
                k += 1
    return "".join(parts) + text[done:]


def _closer(found: list[int], first: int, text: str) -> int | None:
    """Where the emphasis whose text starts at `first` closes: the pattern's optional `.*?\\S` is
    tried first, so the nearest closer after two or more characters, else right after one."""
    if first >= len(text) or text[first].isspace():
        return None
    i = bisect_left(found, first + 2)
    if i < len(found):
        return found[i]
    i = bisect_left(found, first + 1)
    return first + 1 if i < len(found) and found[i] == first + 1 else None


def _strip_links(text: str) -> str:
    """Links and images keep their text: `[text](destination)`, the destination up to the next ')'.
    A pattern would rescan the rest of the line from every `](` that is never closed."""
    parts, done = [], 0
    for m in _LINK_START.finditer(text):
        if m.start() < done:
            continue
        close = text.find(")", m.end())
        if close < 0:  # no ')' left: no later link closes either
            break
        parts += [text[done:m.start()], m.group(1)]
        done = close + 1
    return "".join(parts) + text[done:]


def _plain(heading: str) -> str:
    """Heading text as rendered, tags stripped: links and images keep their text, markers go."""
    text = _strip_links(heading) if "[" in heading else heading
    text = _TAG.sub("", text) if "<" in text else text
    text = _strip_emphasis(text) if "*" in text or "_" in text else text
    return text.replace("`", "")


def slugify(text: str) -> str:
    """The heading anchor Otterwiki renders (otterwiki.util.slugify of the rendered text)."""
    value = unicodedata.normalize("NFKD", _plain(text)).encode("ascii", "ignore").decode("ascii").strip().lower()
    return _SLUG_RUNS.sub("-", _SLUG_DROPPED.sub("", value))


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
        """Content hash of what is embedded: equal keys reuse one embedding. The section path is
        part of it, so a renamed page whose title comes from its file name is embedded anew."""
        return hashlib.sha256(self.embed_text.encode()).hexdigest()


@dataclass
class _Section:
    path: list[str]
    anchor: str
    lines: list[tuple[int, str]] = field(default_factory=list)  # (line number, text)
    heading_lines: int = 0  # how many of `lines` are the heading itself (1 for ATX, 2 for setext)


class _NoAliases(yaml.SafeLoader):
    """YAML aliases let a few bytes expand to gigabytes when stringified: refuse them."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases are not allowed in frontmatter")
        return super().compose_node(parent, index)


def page_lines(text: str) -> list[str]:
    """Lines as git and editors count them (not str.splitlines, which also splits on \\f, \\x1c, ...)."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").split("\n")


def split_frontmatter(lines: list[str]) -> tuple[dict, list[str], int]:
    """(metadata, remaining lines, number of the first remaining line). Bad metadata is no metadata."""
    if not lines or lines[0].strip() != "---":
        return {}, lines, 1
    size = 0
    for i in range(1, len(lines)):
        size += len(lines[i]) + 1
        if size > MAX_FRONTMATTER:
            break
        if lines[i].strip() in FRONTMATTER_END:
            try:
                meta = yaml.load("\n".join(lines[1:i]), Loader=_NoAliases) or {}
            except Exception:  # YAMLError, but also ValueError (bad dates), RecursionError, ...
                meta = {}
            return (meta if isinstance(meta, dict) else {}), lines[i + 1:], i + 2
    return {}, lines, 1


def _fence_flags(lines: list[str]) -> list[bool]:
    """For each line: is it part of a fenced code block (its fences included)?"""
    flags, fence = [], None
    for line in lines:
        if fence is None:
            opener = FENCE_OPEN.match(line)
            if opener:
                fence = opener.group(1) or opener.group(2)
            flags.append(fence is not None)
            continue
        flags.append(True)
        closer = FENCE_CLOSE.match(line)
        if closer and closer.group(1)[0] == fence[0] and len(closer.group(1)) >= len(fence):
            fence = None
    return flags


def scalar_text(value: str | int | float) -> str:
    """str() of a YAML scalar. YAML reads `0x` + 4,000 hex digits as an int Python refuses to print
    in decimal (over 4,300 digits): such an int is shown in hex."""
    if isinstance(value, int) and value.bit_length() > 14_000:
        return hex(value)
    return str(value)


def _metadata(meta: dict) -> tuple[str, tuple[str, ...]]:
    title = meta.get("title")
    title = scalar_text(title)[:MAX_TITLE].strip() if isinstance(title, str | int | float) else ""
    raw = meta.get("tags") or []
    raw = raw if isinstance(raw, list) else [raw]
    tags = tuple(scalar_text(t)[:100] for t in raw[:50] if isinstance(t, str | int | float))
    return title, tags


def _first_h1(lines: list[str], fenced: list[bool]) -> str:
    for line, in_fence in zip(lines, fenced, strict=True):
        heading = None if in_fence else _atx(line)
        if heading and heading[0] == 1 and heading[1]:
            return heading[1][:MAX_TITLE]
    return ""


def _sections(lines: list[str], fenced: list[bool], first_line: int, title: str) -> Iterator[_Section]:
    """Split at headings outside fenced code; yields sections in order (the preamble first)."""
    stack: list[tuple[int, str]] = []
    anchors: dict[str, int] = {}
    slugs: dict[str, str] = {}  # pages repeat headings ("Examples", "Notes")
    current = _Section([title], "")
    for offset, (line, in_fence) in enumerate(zip(lines, fenced, strict=True)):
        number = first_line + offset
        heading_lines = [(number, line)]
        heading = None if in_fence else _atx(line)
        setext = None if in_fence else SETEXT.match(line)
        previous = current.lines[-1][1] if current.lines else ""
        if heading is None and setext and previous.strip() and not _is_block_start(previous) and not fenced[offset - 1]:
            heading_lines.insert(0, current.lines.pop())
            heading = (1 if setext.group(1)[0] == "=" else 2, previous.strip())
        if heading is None:
            current.lines.append((number, line))
            continue
        if current.lines or current.anchor:
            yield current
        level, text = heading
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, text))
        if text not in slugs:
            slugs[text] = slugify(text)
        anchor = slugs[text]
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
    return (_atx(line) is not None or stripped.startswith((">", "|")) or FENCE_OPEN.match(line) is not None
            or LIST_ITEM.match(line) is not None)


def _blocks(section: _Section) -> Iterator[list[tuple[int, str]]]:
    """Paragraph-like blocks: runs of non-blank lines; a fenced code block stays one block."""
    lines = [line for _, line in section.lines]
    fenced = _fence_flags(lines)
    block: list[tuple[int, str]] = []
    for (number, line), in_fence in zip(section.lines, fenced, strict=True):
        if in_fence or line.strip():
            block.append((number, line))
        elif block:
            yield block
            block = []
    if block:
        yield block


@dataclass(frozen=True)
class Section:
    heading: str  # "" for the text above the first heading
    anchor: str
    depth: int  # 0 for the preamble, else the number of enclosing headings including its own
    start_line: int  # 1-based, inclusive; the heading line itself
    end_line: int  # last line before the next heading of the same or a higher level


@dataclass(frozen=True)
class Outline:
    """A page's structure as the wiki renders it: what MCP tools show and address sections by."""
    title: str
    meta: dict
    tags: tuple[str, ...]
    sections: tuple[Section, ...]


def outline(path: str, text: str) -> Outline:
    meta, lines, first = split_frontmatter(page_lines(text))
    fenced = _fence_flags(lines)
    title, tags = _metadata(meta)
    title = title or _first_h1(lines, fenced) or page_title_from_path(path)
    flat = [(s.path[-1] if s.anchor else "", s.anchor, len(s.path) - 1, s.lines[0][0])
            for s in _sections(lines, fenced, first, title) if s.lines]
    ends = [first + len(lines) - 1] * len(flat)
    open_: list[int] = []  # sections not ended yet; their max(depth, 1) increase from bottom to top
    for i, (_, _, depth, start) in enumerate(flat):
        while open_ and max(flat[open_[-1]][2], 1) >= depth:  # a section ends at the next of its level or higher
            ends[open_.pop()] = start - 1
        open_.append(i)
    return Outline(title, meta, tags, tuple(Section(heading, anchor, depth, start, end)
                                            for (heading, anchor, depth, start), end in zip(flat, ends, strict=True)))


class _Labels:
    """Section paths as embedded ("Page > H1 > H2"), cut to MAX_LABEL_TOKENS, and their token counts.

    Sections share their enclosing headings, so each heading is counted once per page and counts are
    added up (WordPiece splits at whitespace and at the '>' between headings): many sections under
    one huge heading stay linear. Headings longer than MAX_LABEL_HEADING characters are cut first.
    """

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens
        self.separator = tokens.count_tokens(" > ")
        self._counts: dict[str, int] = {}
        self._cuts: dict[tuple[str, int], tuple[str, int]] = {}

    def of(self, path: list[str]) -> tuple[str, int]:
        parts: list[str] = []
        used = 0
        for heading in dict.fromkeys(h[:MAX_LABEL_HEADING] for h in path):  # a page's H1 usually repeats its title
            cost = self.separator if parts else 0
            if heading not in self._counts:
                self._counts[heading] = self.tokens.count_tokens(heading)
            if used + cost + self._counts[heading] > MAX_LABEL_TOKENS:
                cut, tokens = self._cut(heading, MAX_LABEL_TOKENS - used - cost)
                if cut:
                    parts.append(cut)
                    used += cost + tokens
                break
            parts.append(heading)
            used += cost + self._counts[heading]
        return " > ".join(parts), used

    def _cut(self, heading: str, room: int) -> tuple[str, int]:
        """The start of `heading` that fits `room` tokens ("" if none does), and its token count."""
        if (heading, room) not in self._cuts:
            cut = self.tokens.split_tokens(heading, room)[0].rstrip() if room > 0 else ""
            tokens = self.tokens.count_tokens(cut)
            self._cuts[(heading, room)] = (cut, tokens) if tokens <= room else ("", 0)
        return self._cuts[(heading, room)]


class Chunker:
    """Turns one page into chunks whose `embed_text` fits `max_tokens` of the model."""

    def __init__(self, tokens: Tokens, max_tokens: int = 254, overlap_tokens: int = 32) -> None:
        self.tokens = tokens
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens

    def chunk(self, path: str, text: str) -> list[Chunk]:
        meta, lines, first = split_frontmatter(page_lines(text))
        fenced = _fence_flags(lines)
        title, tags = _metadata(meta)
        title = title or _first_h1(lines, fenced) or page_title_from_path(path)
        labels = _Labels(self.tokens)
        chunks: list[Chunk] = []
        for section in _sections(lines, fenced, first, title):
            # a heading with no text under it says nothing its section path does not say
            if not any(line.strip() for _, line in section.lines[section.heading_lines:]):
                continue
            label, label_tokens = labels.of(section.path)
            budget = self.max_tokens - label_tokens - 1
            heading_only = {number for number, _ in section.lines[:section.heading_lines]}
            for piece in self._pack(section, budget):
                body = "\n".join(line for _, line, _ in piece).strip()
                if body and not {n for n, line, _ in piece if line.strip()} <= heading_only:
                    chunks.append(Chunk(path, title, label, section.anchor, piece[0][0], piece[-1][0], body, tags))
        return chunks

    def _cost(self, text: str) -> int:
        """Tokens of a line as packing counts them: at least one, so lines the tokenizer drops
        (control and zero-width characters) cannot pile up without bound in one chunk."""
        return max(1, self.tokens.count_tokens(text))

    def _pack(self, section: _Section, budget: int) -> Iterator[list[Line]]:
        """Greedily fill chunks with whole blocks; split blocks only when one alone is too big."""
        current: list[Line] = []
        used = 0
        for block in _blocks(section):
            for piece in self._fit(block, budget):
                size = sum(tokens for *_, tokens in piece)
                if current and used + size > budget:
                    yield current
                    current = self._overlap(current, budget - size)
                    used = sum(tokens for *_, tokens in current)
                current.extend(piece)
                used += size
        if current:
            yield current

    def _overlap(self, previous: list[Line], room: int) -> list[Line]:
        """The end of the previous chunk, up to the overlap size: whole lines, then a line's tail."""
        limit = min(self.overlap_tokens, room)
        tail: list[Line] = []
        used = 0
        for number, line, tokens in reversed(previous):
            if used + tokens <= limit:
                tail.append((number, line, tokens))
                used += tokens
                continue
            if limit - used > 0:
                end = self.tokens.split_tokens(line, limit - used)[-1]
                tail.append((number, end, self._cost(end)))
            break
        return [line for line in reversed(tail) if line[2] <= limit]

    def _fit(self, block: list[tuple[int, str]], budget: int) -> Iterator[list[Line]]:
        """Split a block that is too big by lines, and a line that is too big at token offsets."""
        lines = [(number, line, self._cost(line)) for number, line in block]
        if sum(tokens for *_, tokens in lines) <= budget:
            yield lines
            return
        piece: list[Line] = []
        used = 0
        for number, line, tokens in lines:
            parts = [(line, tokens)] if tokens <= budget else \
                [(p, self._cost(p)) for p in self.tokens.split_tokens(line, budget)]
            for part, size in parts:
                if piece and used + size > budget:
                    yield piece
                    piece, used = [], 0
                piece.append((number, part, size))
                used += size
        if piece:
            yield piece
