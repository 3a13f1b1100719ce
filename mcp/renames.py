"""What renaming a page changes: the page and its folder move, links to them are rewritten.

Like Otterwiki's rename, the page's folder (its attachments and subpages) moves with it; unlike
it, links to subpages are rewritten too and code is left alone (`wikitext.rewrite_links`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastmcp.exceptions import ToolError

from wikibot.gitd.commits import FileChange
from wikibot.gitd.repository import Repository

from .wikitext import attachment_dir, rewrite_links

MAX_RELINK_BYTES = 1024 * 1024  # larger pages are left as they are


@dataclass(frozen=True)
class RenamePlan:
    changes: list[FileChange]
    moves: list[tuple[str, str]]  # (from, to), the page first
    relinked: list[str]  # pages (at their new paths) whose links were rewritten


def plan_rename(repo: Repository, head: str, old: str, new: str, new_name: str, update_links: bool,
                checkpoint: Callable[[str], None]) -> RenamePlan:
    """The changes that rename page file `old` to `new` (shown as `new_name`) at `head`;
    `checkpoint` is called between the pages whose links are rewritten."""
    files = {entry.path for entry in repo.entries(head, sizes=False)}
    src_dir, dst_dir = attachment_dir(old) + "/", attachment_dir(new) + "/"
    if new == old:
        raise ToolError("the new path maps to the same file; nothing to rename")
    if new.lower().startswith(src_dir):
        raise ToolError(f"cannot move {old} into its own folder {src_dir}")
    if new in files and new.lower() != old.lower():
        raise ToolError(f"page {new_name!r} ({new}) already exists; choose another name or delete it first")
    moves = [(old, new)] + [(p, dst_dir + p[len(src_dir):]) for p in sorted(files) if p.lower().startswith(src_dir)]
    sources = {src for src, _ in moves}
    clash = sorted(dst for _, dst in moves if dst in files and dst not in sources)
    if clash:
        raise ToolError(f"renaming would overwrite {', '.join(clash)}; move or delete those first")
    content = repo.read_many(head, sorted(sources))
    final = {dst: content[src] for src, dst in moves}  # path after the rename -> bytes
    relinked = []
    if update_links:
        others = [p for p in files if p.endswith(".md") and p not in sources]
        texts = {**repo.read_many(head, others, MAX_RELINK_BYTES),
                 **{p: body for p, body in final.items() if p.endswith(".md") and len(body) <= MAX_RELINK_BYTES}}
        for page in sorted(texts):
            checkpoint("rewriting the links of the next page")
            try:
                text = texts[page].decode("utf-8")
            except UnicodeDecodeError:
                continue  # rewriting would corrupt it
            rewritten, count = rewrite_links(text, old, new_name)
            if count:
                final[page] = rewritten.encode()
                relinked.append(page)
    changes = {src: FileChange(src, None) for src in sources}
    changes.update({path: FileChange(path, body) for path, body in final.items()})
    return RenamePlan(list(changes.values()), moves, relinked)
