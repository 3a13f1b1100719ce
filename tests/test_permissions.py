"""Everything under the data dir is private to its account (0700 dirs, 0600 files), whatever the umask.

The platform runs as a real `wikibot init` + `wikibot serve` started under umask 022, and every
write path (CLI, git push, MCP, the worker's indexing) must still leave nothing group- or
world-accessible. `wikibot init` repairs a data dir that an older version left readable.
"""
from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wikibot.gitd.names import WikiName
from wikibot.testing.servers import WIKIBOT, Server, commit_files, run_git, start_server, stop_server, wait_until

HARNESS_FILES = {"serve.log"}  # opened by wikibot.testing's start_server in this test process, not by wikibot
NOTES = WikiName("carol", "notes")


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def wb(data: Path, *args: str) -> str:
    proc = subprocess.run([*WIKIBOT, *args], env={**os.environ, "WIKIBOT_DATA": str(data)},
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"wikibot {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


def exposed(root: Path) -> list[str]:
    """Every entry under `root` (and `root` itself) that group or others may access."""
    found = []
    for entry in [root, *root.rglob("*")]:
        st = entry.lstat()
        if stat.S_ISLNK(st.st_mode) or entry.relative_to(root).as_posix() in HARNESS_FILES:
            continue
        if st.st_mode & 0o077:
            found.append(f"{oct(stat.S_IMODE(st.st_mode))} {entry.relative_to(root)}")
    return found


def _indexed(server: Server, wiki: WikiName, head: str) -> bool:
    from wikibot.indexer.storage import IndexCorrupt, IndexMissing, IndexStore

    try:
        index, _ = IndexStore(server.data / "index").load(wiki)
    except (IndexMissing, IndexCorrupt):
        return False
    return index.indexed_sha == head


def test_every_write_path_leaves_the_data_dir_private_under_umask_022(tmp_path):
    from test_mcp import Mcp

    data = tmp_path / "data"
    with umask(0o022):
        server = start_server(data)
        try:
            wb(data, "user", "add", "carol", "--tier", "premium")
            wb(data, "wiki", "create", str(NOTES), "--template", "empty")
            token = wb(data, "token", "create", "carol", "--scope", "write").strip().splitlines()[-1]
            clone = tmp_path / "clone"
            run_git("clone", "-q", server.clone_url(NOTES, token), str(clone))
            commit_files(clone, {"home.md": "# Home\n\nPrivate thoughts about otters.\n"})
            run_git("push", "-q", "origin", "HEAD:main", cwd=clone)
            mcp = Mcp(server, NOTES, token)
            try:
                head = mcp.ok("write_page", path="Second", content="# Second\n\nMore otters.\n")["revision"]
            finally:
                mcp.close()
            wait_until(lambda: _indexed(server, NOTES, head), timeout=120, what="the index at HEAD")
        finally:
            stop_server(server)
    assert (data / "repos" / "carol" / "notes" / "home.md").exists()
    assert any((data / "index").rglob("*.faiss")), "the worker wrote no index"
    config = run_git("-C", str(data / "repos" / "carol" / "notes"), "config", "--list", "--local").stdout
    assert "sharedrepository" not in config.lower()
    assert exposed(data) == []


def test_init_repairs_a_world_readable_data_dir_without_following_symlinks(tmp_path):
    data = tmp_path / "data"
    with umask(0o077):
        wb(data, "init")  # the starter wiki gives repos/, locks/ and a git repository to repair
    outside = tmp_path / "outside.txt"
    outside.write_text("not wikibot's\n")
    outside.chmod(0o644)
    (data / "repos" / "link-to-outside").symlink_to(outside)
    for entry in [data, *data.rglob("*")]:
        if not entry.is_symlink():
            entry.chmod(stat.S_IMODE(entry.stat().st_mode) | (0o755 if entry.is_dir() else 0o644))
    assert exposed(data), "the setup did not make anything readable"
    with umask(0o022):
        again = wb(data, "init")
    assert "already initialised" in again
    assert exposed(data) == []
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644, "init followed a symlink out of the data dir"
    hook = data / "repos" / "admin" / "notes" / ".git" / "hooks" / "post-commit"
    assert os.access(hook, os.X_OK), "repairing removed the owner's execute bit"


def test_init_repairs_top_level_folders_kept_elsewhere_through_a_symlink(tmp_path):
    """`repos/` on another disk (a symlink in the data dir) is repaired too; deeper symlinks are not
    followed, and nothing above the linked folder is touched."""
    data = tmp_path / "data"
    with umask(0o077):
        wb(data, "init")
    disk = tmp_path / "disk2"
    disk.mkdir()
    disk.chmod(0o755)
    (data / "repos").rename(disk / "repos")
    (data / "repos").symlink_to(disk / "repos")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "theirs.txt").write_text("not wikibot's\n")
    (disk / "repos" / "admin" / "link-deeper").symlink_to(elsewhere)
    for tree in (data, disk / "repos", elsewhere):
        for entry in [tree, *tree.rglob("*")]:
            if not entry.is_symlink():
                entry.chmod(stat.S_IMODE(entry.stat().st_mode) | (0o755 if entry.is_dir() else 0o644))
    page = disk / "repos" / "admin" / "notes" / "agent_guide.md"
    assert page.exists() and stat.S_IMODE(page.stat().st_mode) == 0o644
    with umask(0o022):
        wb(data, "init")
    assert exposed(disk / "repos") == [], "the linked repos/ folder kept readable pages"
    assert exposed(data) == []
    assert stat.S_IMODE(disk.stat().st_mode) == 0o755, "init changed the folder the link points into"
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o755, "init followed a symlink below the top level"
    assert stat.S_IMODE((elsewhere / "theirs.txt").stat().st_mode) == 0o644
