"""Wiki templates: folders of pages whose `{{placeholders}}` are filled in when a wiki is created.

Values are inserted safely for where they land: escaped for Markdown in running text (a purpose
like "# *Ops* [x](y)" stays plain text on one line), verbatim inside code spans and fenced code
(where a reader copies them), with backticks and line breaks removed so they cannot close the code.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from wikibot.errors import WikibotError
from wikibot.gitd.names import path_problem

BUILTIN_DIR = Path(__file__).resolve().parent / "templates"
MANIFEST = ".wikibot-template.toml"  # lists the files of a Git template whose placeholders are filled
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")
FIELDS = ("title", "purpose", "owner", "wiki", "clone_url", "mcp_url", "web_url", "date")
MAX_FILES = 10_000
_FENCE = re.compile(r"^[ \t>]*(`{3,}|~{3,})")  # also fences inside list items and quotes
_TICKS = re.compile(r"`+")
# Every ASCII punctuation character that means something to CommonMark or Otterwiki's extensions
# (::: blocks, $math$, ==mark==, ^sup^, :emoji:, [[links]], footnotes, tables, HTML, entities) is
# backslash-escaped, which CommonMark allows before any ASCII punctuation. Only , . ; ? / % @ ' -
# stay as they are: they mean nothing inside a line (a leading "-" or "1." is escaped).
_INLINE_SPECIAL = re.compile(r"""([!"#$&()*+:<=>\[\\\]^_`{|}~])""")
_BLOCK_START = re.compile(r"^(\d+\.|-)")  # "1." or "-" would start a list or a rule


class TemplateError(WikibotError):
    """A template that cannot be used; the message says why."""


@dataclass(frozen=True)
class Template:
    name: str
    files: dict[str, bytes]  # repository path -> content
    substitute: frozenset[str]  # the files whose placeholders are filled


def template_names(extra_dir: str = "") -> list[str]:
    """Every template a wiki can be created from by name."""
    names = {"empty"}
    for root in _roots(extra_dir):
        names.update(p.name for p in root.iterdir() if p.is_dir() and NAME_RE.fullmatch(p.name))
    return sorted(names)


def find_template(name: str, extra_dir: str = "") -> Template:
    """The template folder `name`: the admin's folder first, then the built-in ones."""
    if name == "empty":
        return Template("empty", {}, frozenset())
    if NAME_RE.fullmatch(name):
        for root in _roots(extra_dir):
            folder = root / name
            if folder.is_dir():
                files = read_folder(folder)
                return Template(name, files, frozenset(p for p in files if p.endswith(".md")))
    raise TemplateError(f"unknown template {name!r}; known: {', '.join(template_names(extra_dir))}, "
                        "or an http(s) Git URL")


def read_folder(folder: Path) -> dict[str, bytes]:
    """The files of a template folder; symlinks and unsafe names are refused, not followed."""
    files: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            raise TemplateError(f"template file {rel} is a symlink; templates hold plain files only")
        if path.is_dir() or rel == MANIFEST:
            continue
        problem = path_problem(rel.encode())
        if problem:
            raise TemplateError(f"template file {rel!r} {problem}")
        files[rel] = path.read_bytes()
        if len(files) > MAX_FILES:
            raise TemplateError(f"template has more than {MAX_FILES} files")
    return files


def manifest_files(text: str) -> frozenset[str]:
    """The files a Git template's manifest opts in to substitution (`substitute = [...]`)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"{MANIFEST} is not valid TOML: {exc}") from None
    listed = raw.get("substitute", [])
    if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
        raise TemplateError(f"{MANIFEST}: 'substitute' must be a list of file paths")
    return frozenset(listed)


def render(template: Template, values: dict[str, str]) -> dict[str, bytes]:
    """The template's files with placeholders filled in the files that opt in."""
    rendered = {}
    for path, content in template.files.items():
        if path in template.substitute:
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError:
                raise TemplateError(f"template file {path} is not UTF-8 text, so it cannot be filled in") from None
            content = fill(text, values).encode()
        rendered[path] = content
    return rendered


def fill(text: str, values: dict[str, str]) -> str:
    """Replace `{{field}}` in Markdown, each value made safe for its context. Unknown fields stay."""
    lines, fence = [], None
    for line in text.split("\n"):
        opener = _FENCE.match(line)
        if fence is None and opener:
            fence = opener.group(1)
            lines.append(_fill_code(line, values))
        elif fence is not None:
            if opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence) \
                    and not line.strip().strip(fence[0]):
                fence = None
            lines.append(_fill_code(line, values))
        else:
            lines.append(_fill_inline(line, values))
    return "\n".join(lines)


def _fill_inline(line: str, values: dict[str, str]) -> str:
    """Text and code spans alternate: a span opened by N backticks ends at the next run of N."""
    out, pos = [], 0
    while pos < len(line):
        opening = _TICKS.search(line, pos)
        if opening is None:
            break
        closing = next((m for m in _TICKS.finditer(line, opening.end()) if len(m.group()) == len(opening.group())),
                       None)
        if closing is None:
            break
        out.append(_fill_text(line[pos:opening.start()], values))
        out.append(_fill_code(line[opening.start():closing.end()], values))
        pos = closing.end()
    out.append(_fill_text(line[pos:], values))
    return "".join(out)


def _fill_text(text: str, values: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: escape(values[m.group(1)]) if m.group(1) in values else m.group(0), text)


def escape(value: str) -> str:
    """`value` as literal Markdown text on one line, wherever in a line it lands."""
    text = _INLINE_SPECIAL.sub(r"\\\1", _one_line(value))
    return _BLOCK_START.sub(lambda m: f"{m.group(1)[:-1]}\\{m.group(1)[-1]}", text)


def _fill_code(text: str, values: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: _one_line(values[m.group(1)]).replace("`", "")
                           if m.group(1) in values else m.group(0), text)


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _roots(extra_dir: str) -> list[Path]:
    roots = [Path(extra_dir)] if extra_dir and Path(extra_dir).is_dir() else []
    return [*roots, BUILTIN_DIR]
