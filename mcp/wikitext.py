"""Page paths and links the way Otterwiki sees them, for the MCP tools (read_page, links, rename_page).

Pure functions only (no I/O, no Flask, no Otterwiki import), so the MCP server can map names and
parse links without Otterwiki's per-process app. Everything assumes Otterwiki's default config:
RETAIN_PAGE_NAME_CASE = False (files are lowercase) and WIKILINK_STYLE = "" (`[[Title|Link]]`).

- `page_file` mirrors Otterwiki's `get_filename(sanitize_pagename(name, handle_md=True))`: the file
  Otterwiki's web views open for a name (they sanitize every URL), so MCP and the web always agree.
  `stored_file` is the literal mapping without the clean-up, to find files pushed with git under
  names Otterwiki would not produce ("c# tips.md"). Both refuse names that could leave the page tree.
- `page_name` mirrors `get_pagename(file, full=True, header=title)`.
- `links_out` / `rewrite_links` follow the renderer's wikilink parsing and `otterwiki.backlinks`,
  but skip fenced and inline code, which Otterwiki's regex-based rename does not.
"""
from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote

from wikibot.errors import WikibotError
from wikibot.gitd.names import path_problem

_HINT = "use a plain path like 'Projects/Roadmap'"
_SANITIZED = re.compile(r"[?|$.!#\\]")  # what Otterwiki's sanitize_pagename removes from page names
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Percent-decoding rounds before a name counts as obfuscated; real names need one at most.
_MAX_DECODE_ROUNDS = 8
# Otterwiki serves a page's attachments as /Page/<file> (and /Page/a/<file>). A page name may
# contain dots ("Report.Final", "v1.2"), so only these well-known extensions mark an attachment.
_ATTACHMENT_EXTS = frozenset(
    "png jpg jpeg gif svg webp bmp ico tif tiff avif heic "
    "pdf doc docx xls xlsx ppt pptx odt ods odp rtf txt csv tsv json xml yaml yml log "
    "zip tar gz tgz bz2 xz 7z rar mp3 mp4 m4a wav ogg flac webm mov avi mkv drawio excalidraw".split()
)
_FENCE = re.compile(r"^[ \t>]*(`{3,}|~{3,})(.*)$")
_TICKS = re.compile(r"`+")
_BLANK_LINE = re.compile(r"\n(?=[ \t\r]*\n)")  # a line end followed by a blank line: a paragraph ends
_BRACKET_TOKENS = re.compile(r"\\.|[\[\]]|\n(?=[ \t\r]*\n)", re.DOTALL)
# Otterwiki's wikilink: `[[...]]` without `]` inside; like its inline parser, not across paragraphs.
# (Otterwiki also allows '[' inside; excluding it keeps matching linear on pages full of brackets.)
_WIKILINK = re.compile(r"\[\[((?:[^\[\]\n]|\n(?![ \t\r]*\n))+)\]\]")
# A Markdown link destination and optional title after `](`: `<dest>` or a bare dest with balanced parens.
_DEST = re.compile(
    r"""\(\s*(?P<dest><[^<>\n]*>|(?:[^\s()\\\x00]|\\.|\((?:[^\s()\\\x00]|\\.)*\))+)"""
    r"""(?:\s+(?:"[^"\n]*"|'[^'\n]*'|\([^()\n]*\)))?\s*\)"""
)
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")
_WIKILINK_UNSAFE = re.compile(r"%(?=[0-9A-Fa-f]{2})|[#\[\]]")
# A Markdown link's text as reported: nested brackets ("[[[...](/a)](/a)") would otherwise make
# the texts of one page add up to the square of its size.
MAX_LINK_TEXT = 1000
MAX_NAME_CHARS = 1024  # a path gitd accepts is at most 1,024 bytes
MAX_PAGE_LINK_TEXT = 64 * 1024  # link texts kept for one page: nested brackets repeat the same text


class PathRefused(WikibotError):
    """A page path that must not be used; the message says why and what to use instead."""


def _refuse(name: str, reason: str) -> PathRefused:
    shown = name if len(name) <= MAX_NAME_CHARS else f"{name[:120]}..."
    return PathRefused(f"page path {shown!r} is refused: {reason}; {_HINT}")


def _strip_edges(value: str) -> str:
    """`value` without leading and trailing whitespace and slashes, in one pass from each end (a
    regex such as `[\\s/]+$` retries every position of a long run inside the text: quadratic)."""
    start, end = 0, len(value)
    while start < end and (value[start] == "/" or value[start].isspace()):
        start += 1
    while end > start and (value[end - 1] == "/" or value[end - 1].isspace()):
        end -= 1
    return value[start:end]


def _clean(name: str) -> str:
    """NFKC, then strip surrounding whitespace/slashes and collapse repeated slashes (Otterwiki's clean-up)."""
    value = _strip_edges(unicodedata.normalize("NFKC", name))
    return "/".join(part for part in value.split("/") if part)


def _traversal(name: str) -> str | None:
    """Why `name` could escape the page tree in any encoding: checked raw, after NFKC, and after
    each round of percent-decoding (a web layer or a careless caller may decode again)."""
    value = name
    for _ in range(_MAX_DECODE_ROUNDS):
        value = unicodedata.normalize("NFKC", value)
        if "\\" in value:
            return "it contains a backslash (maybe percent-encoded); separate folders with '/'"
        if _CONTROL.search(value):
            return "it contains a control character such as NUL or a line break (maybe percent-encoded)"
        for part in value.split("/"):
            part = part.strip()
            if part and not part.strip("."):
                return "it has a '.' or '..' component (maybe percent-encoded or full-width)"
            if part.rstrip(". ").lower() == ".git":
                return "it has a '.git' component"
        decoded = unquote(value)
        if decoded == value:
            return None
        value = decoded
    return f"it is percent-encoded more than {_MAX_DECODE_ROUNDS} times"


def page_file(name: str) -> str:
    """Repo file of a page as a person or agent writes its name ("Projects/Road Map" ->
    "projects/road map.md"), exactly as Otterwiki creates and opens pages: sanitize_pagename
    (drops ? | $ . ! # \\ from the name), then get_filename. So a page written through MCP is
    the page the web UI shows under that name ("C# tips" -> "c tips.md", "What?" -> "what.md").
    Raises PathRefused for unsafe names, checked before anything is dropped."""
    stored_file(name)  # refuses traversal in any encoding and names no file may have
    value = _SANITIZED.sub("", re.sub(r"\.md$", "", unicodedata.normalize("NFKC", name)))
    value = _clean(value.lstrip("-/").strip())
    if not value:
        raise _refuse(name, "nothing is left of it once the characters ? | $ . ! # are dropped")
    file = value.lower() + ".md"
    problem = path_problem(file.encode())
    if problem:
        raise _refuse(name, f"its file {file!r} {problem}")
    return file


def stored_file(name: str) -> str:
    """The file a name denotes literally (Otterwiki's get_filename without its name clean-up):
    how pages pushed with git under names like "c# tips.md" stay addressable. PathRefused for
    unsafe names. Percent signs stay literal ("100% done"): names are never decoded, only checked
    decoded. '?' passes gitd's Windows-name check here only so such pushed files can be read."""
    if not name.strip():
        raise _refuse(name, "it is empty")
    if len(name) > MAX_NAME_CHARS:  # checked first: every later step is at least linear in it
        raise _refuse(name, f"it is {len(name)} characters long, over {MAX_NAME_CHARS}")
    problem = _traversal(name.strip())
    if problem:
        raise _refuse(name, problem)
    file = _clean(name).lower()
    if not file.endswith(".md"):
        file += ".md"
    if file == ".md" or file.endswith("/.md"):
        raise _refuse(name, "its last part is empty before '.md'")
    problem = path_problem(file.replace("?", "_").encode())
    if problem:
        raise _refuse(name, f"its file {file!r} {problem}")
    return file


def _title_ss(s: str) -> str:
    """Otterwiki's titleSs: str.title() that keeps 'ß' and treats an apostrophe as part of a word."""
    marks = []
    for char, mark in (("ß", "E🙉S🙈Z🙊E🐤T🐣T"), ("'", "A🙉P🙈O🙊S🐤T🐣R🐥O🦆P🐔H🦜E")):
        if char in s:
            while mark in s:
                mark *= 2
            s = s.replace(char, mark)
            marks.append((char, mark))
    s = s.title()
    for char, mark in marks:
        s = re.sub(re.escape(mark), char, s, flags=re.IGNORECASE)
    return s


def page_name(file: str, title: str | None = None) -> str:
    """Display path Otterwiki shows for a page file ("projects/road map.md" -> "Projects/Road Map").

    Like get_pagename(file, full=True, header=title): each part is title-cased unless the page's
    first heading (`title`) spells the last part with other capitalisation, or the part already
    has capitals in the file name.
    """
    path = file.rstrip("/")
    if path.endswith(".md"):
        path = path[:-3]
    parts = [part for part in path.split("/") if part]
    for i, part in enumerate(parts):
        hint = title if title is not None and i == len(parts) - 1 else part
        if (hint != part and hint.lower() == part.lower()) or (hint == part and hint != part.lower()):
            parts[i] = hint
        else:
            parts[i] = _title_ss(part)
    return "/".join(parts)


def attachment_dir(file: str) -> str:
    """Folder holding a page's attachments and subpages ("projects/road map.md" -> "projects/road map"),
    like Otterwiki's get_attachment_directoryname; a rename moves it along with the page."""
    lowered = file.lower()
    if not lowered.endswith(".md"):
        raise ValueError(f"{file!r} is not a page file: page files end in '.md'")
    return lowered[:-3]


def is_attachment(path: str, page: str) -> bool:
    """Is `path` an attachment of page file `page`? Attachments are the non-page files directly in
    the page's folder; the .md files there are subpages."""
    folder = attachment_dir(page) + "/"
    if not path.lower().startswith(folder):
        return False
    rest = path[len(folder):]
    return "/" not in rest and not rest.endswith(".md")


@dataclass(frozen=True)
class Link:
    """One internal page link in a page's Markdown."""

    target: str  # repo file of the linked page, as page_file maps it
    anchor: str  # fragment as written (percent-decoded), or ""
    text: str  # displayed text (raw Markdown for Markdown links)
    kind: Literal["wikilink", "markdown"]
    line: int  # 1-based line of the link's start


@dataclass(frozen=True)
class _Ref:
    """A link found in the text, before deciding whether it is a page link."""

    kind: Literal["wikilink", "markdown", "image"]
    start: int  # where the link starts (for its line number)
    span: tuple[int, int]  # what rewrite_links replaces: the whole [[...]], or a Markdown destination
    text: str
    title: str | None  # wikilinks only: the part left of '|', None without one
    page: str  # percent-decoded page path as written ("" for pure anchors and external URLs)
    anchor: str | None  # raw fragment as written, None without '#'
    suffix: str  # Markdown only: "?query" and "#fragment" kept verbatim on rewrite
    leading_slash: bool


def _blot(text: str, spans: list[tuple[int, int]], char: str) -> str:
    """`text` with each span overwritten by `char` (same length, so offsets stay valid)."""
    parts, pos = [], 0
    for start, end in spans:
        parts += [text[pos:start], char * (end - start)]
        pos = end
    return "".join(parts) + text[pos:]


def _code_masked(markdown: str) -> str:
    """`markdown` with fenced code turned into blank lines (fences end paragraphs) and inline code
    spans into NULs, so that link patterns never match inside code."""
    spans, pos, fence = [], 0, ""
    for line in markdown.split("\n"):
        m = _FENCE.match(line)
        if fence:
            spans.append((pos, pos + len(line)))
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not m.group(2).strip():
                fence = ""
        elif m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
            spans.append((pos, pos + len(line)))
            fence = m.group(1)
        pos += len(line) + 1
    masked = _blot(markdown, spans, "\n")
    return _blot(masked, _code_spans(masked), "\x00")


def _code_spans(text: str) -> list[tuple[int, int]]:
    """Inline code spans: a backtick run up to the next run of the same length in the same paragraph
    (CommonMark); an unmatched run is literal. Indexed by run length so long pages stay linear."""
    runs = [m.span() for m in _TICKS.finditer(text)]
    starts_by_length: dict[int, list[int]] = {}
    for start, end in runs:
        starts_by_length.setdefault(end - start, []).append(start)
    paragraph_ends = [m.start() for m in _BLANK_LINE.finditer(text)]
    spans: list[tuple[int, int]] = []
    for start, end in runs:
        if spans and start < spans[-1][1]:
            continue
        start += _escaped(text, start)  # "\`" is a literal backtick, the rest of the run may open a span
        closers = starts_by_length.get(end - start, [])
        k = bisect_left(closers, end)
        i = bisect_left(paragraph_ends, end)
        if k < len(closers) and (i == len(paragraph_ends) or closers[k] < paragraph_ends[i]):
            spans.append((start, closers[k] + end - start))
    return spans


def _escaped(text: str, i: int) -> bool:
    """True if text[i] is escaped by an odd number of backslashes."""
    n = 0
    while i - n - 1 >= 0 and text[i - n - 1] == "\\":
        n += 1
    return n % 2 == 1


def _bracket_pairs(text: str) -> dict[int, int]:
    """Each `[` that is closed in the same paragraph, mapped to its `]` (nesting and escapes respected)."""
    pairs: dict[int, int] = {}
    opened: list[int] = []
    for m in _BRACKET_TOKENS.finditer(text):
        token = m.group()
        if token == "[":
            opened.append(m.start())
        elif token == "]" and opened:
            pairs[opened.pop()] = m.start()
        elif token == "\n":
            opened.clear()
    return pairs


def _refs(markdown: str) -> Iterator[_Ref]:
    """Every wikilink and Markdown link or image outside code, wikilinks first."""
    masked = _code_masked(markdown)
    wikilinks = [m for m in _WIKILINK.finditer(masked) if not _escaped(masked, m.start())]
    for m in wikilinks:
        inner = markdown[m.start(1) : m.end(1)]
        title, sep, link = inner.partition("|")  # default WIKILINK_STYLE: [[Title|Link]]
        if not sep:
            title, link = None, inner
        link = link.strip()
        page, hash_sign, anchor = link.partition("#")
        yield _Ref("wikilink", m.start(), m.span(), inner if title is None else title, title,
                   unquote(page.strip()), anchor if hash_sign else None, "", link.startswith("/"))
    masked = _blot(masked, [m.span() for m in wikilinks], "\x00")
    for start, close in _bracket_pairs(masked).items():
        dest = _DEST.match(masked, close + 1)
        if dest is None:
            continue
        image = start > 0 and masked[start - 1] == "!" and not _escaped(masked, start - 1)
        url = markdown[dest.start("dest") : dest.end("dest")]
        if url.startswith("<"):
            url = url[1:-1]
        path, sep, suffix = _ESCAPED.sub(r"\1", url).partition("#")
        path, query_sign, query = path.partition("?")
        suffix = (query_sign + query) + (sep + suffix)
        site_absolute = path.startswith("/") and not path.startswith(("//", "/-/"))
        yield _Ref("image" if image else "markdown", start - 1 if image else start, dest.span("dest"),
                   markdown[start + 1 : min(close, start + 1 + MAX_LINK_TEXT)], None,
                   unquote(path) if site_absolute else "", suffix.partition("#")[2] if sep else None, suffix, True)


def _page_target(page: str) -> str | None:
    """Repo file a link target names, or None if it is no page (empty, attachment, refused)."""
    if len(page) > MAX_NAME_CHARS:
        return None
    cleaned = _clean(page)
    if not cleaned or cleaned.rsplit("/", 1)[-1].rpartition(".")[2].lower() in _ATTACHMENT_EXTS:
        return None
    try:
        return page_file(cleaned)
    except PathRefused:
        return None


def links_out(markdown: str) -> list[Link]:
    """Internal page links of a page, in document order: wikilinks and site-absolute Markdown links.

    Skipped: external URLs, pure anchors, relative Markdown links, Otterwiki's own /-/ pages,
    images and attachment URLs, anything inside fenced or inline code, and targets page_file
    refuses. Reference-style links and indented code blocks are not recognised.
    """
    links = []
    line, counted = 1, 0  # line numbers are counted on from the previous link: linear in the page
    targets: dict[str, str | None] = {}  # pages link to the same pages again and again
    text_left = MAX_PAGE_LINK_TEXT  # nested links each hold their neighbours' text: bound the sum
    for ref in sorted(_refs(markdown), key=lambda r: r.start):
        if ref.kind == "image":
            continue
        if ref.page not in targets:
            targets[ref.page] = _page_target(ref.page)
        target = targets[ref.page]
        if target:
            line += markdown.count("\n", counted, ref.start)
            counted = ref.start
            text = ref.text[:text_left]
            text_left -= len(text)
            links.append(Link(target, unquote(ref.anchor or ""), text, ref.kind, line))
    return links


def rewrite_links(markdown: str, old_file: str, new_name: str) -> tuple[str, int]:
    """Point every link to the page `old_file` at `new_name` after a rename; returns (text, count).

    Like Otterwiki's rename, the page's folder (attachments and subpages) moves with it, so links
    and images under it are rewritten too (`![x](/Old/a.png)` -> `![x](/New/a.png)`; Otterwiki
    misses wikilinks to subpages). Titles, anchors, queries and a wikilink's leading slash are kept;
    `[[Old]]` becomes `[[New]]` as in Otterwiki. Markdown URLs are percent-quoted; in wikilinks only
    '#', '[', ']' and '%XX' are, since Otterwiki decodes them. Code is never touched.
    Raises PathRefused if `new_name` or `old_file` is not a usable page path.
    """
    old = page_file(old_file)
    page_file(new_name)
    new = _clean(new_name)
    if new.lower().endswith(".md"):
        new = new[:-3]
    folder = attachment_dir(old) + "/"
    edits = []
    files: dict[str, str | None] = {}  # target as written -> its file ("" none, None refused)
    for ref in _refs(markdown):
        cleaned = _clean(ref.page)
        if cleaned not in files:
            try:
                files[cleaned] = page_file(cleaned) if cleaned else ""
            except PathRefused:
                files[cleaned] = None
        file = files[cleaned]
        if file is None:
            continue
        if file == old:
            moved = new
        elif file.startswith(folder):
            moved = new + "/" + "/".join(cleaned.split("/")[folder.count("/") :])
        else:
            continue
        if ref.kind == "wikilink":
            link = ("/" if ref.leading_slash else "") + _WIKILINK_UNSAFE.sub(lambda m: quote(m.group()), moved)
            if ref.anchor is not None:
                link += "#" + ref.anchor
            replacement = "[[" + (link if ref.title is None else ref.title + "|" + link) + "]]"
        else:
            replacement = "/" + quote(moved, safe="/") + ref.suffix
        edits.append((ref.span, replacement))
    parts, pos = [], 0
    for (start, end), replacement in sorted(edits):
        parts += [markdown[pos:start], replacement]
        pos = end
    return "".join(parts) + markdown[pos:], len(edits)
