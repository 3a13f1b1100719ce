"""The pre-receive policy in-process: objects are written into a real quarantine of a real wiki
repository with git plumbing, and `PushPolicy.check` is asked about ref updates directly, no push."""
from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import wikibot.hooks.pre_receive as pre_receive
from wikibot.config import MB, TierLimits
from wikibot.gitd.core import Core
from wikibot.gitd.names import WikiName
from wikibot.gitd.quarantine import Quarantine
from wikibot.gitd.receive import PushContext, RefUpdate
from wikibot.gitd.refs import ZERO
from wikibot.hooks.pre_receive import PushPolicy
from wikibot.testing.servers import platform_config
from wikibot.wiring import open_core

MAIN = b"refs/heads/main"
ZERO_SHA = ZERO.encode()
LIMITS = TierLimits(max_wikis=1, max_pages=50, max_collaborators=1, max_repo_mb=50, max_file_mb=1)
IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_AUTHOR_DATE": "1700000000 +0000",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_COMMITTER_DATE": "1700000000 +0000",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
WIKI_NUMBERS = itertools.count()


@pytest.fixture(scope="module")
def core(tmp_path_factory) -> Core:
    core = open_core(platform_config(tmp_path_factory.mktemp("pre-receive") / "data"))
    core.initialise()
    core.add_user("alice", password="correct horse battery", tier="premium")
    return core


@dataclass
class Push:
    """A wiki whose main holds one page, and a quarantine to write the pushed objects into."""

    core: Core
    name: WikiName
    quarantine: Quarantine
    head: str

    @property
    def path(self) -> Path:
        return self.core.repos.path(self.name)

    def git(self, *args: str, input: bytes = b"", quarantined: bool = True) -> str:
        env = {**os.environ, **IDENTITY, **(self.quarantine.env if quarantined else {})}
        proc = subprocess.run(["git", "-C", str(self.path), *args], input=input, env=env, capture_output=True,
                              check=True)
        return proc.stdout.decode().strip()

    def blob(self, data: bytes, **kw) -> str:
        return self.git("hash-object", "-w", "--stdin", input=data, **kw)

    def tree(self, entries: dict[str, tuple[str, str]], **kw) -> str:
        """A tree of `name -> (mode, sha)`; the object type follows from the mode."""
        kinds = {"040000": "tree", "160000": "commit"}
        lines = "".join(f"{mode} {kinds.get(mode, 'blob')} {sha}\t{name}\n" for name, (mode, sha) in entries.items())
        return self.git("mktree", input=lines.encode(), **kw)

    def commit(self, files: dict[str, bytes | tuple[str, str]], parent: str | None = "head", **kw) -> str:
        """A commit of `files` (content, or (mode, sha)) on `parent` ("head": main; None: a root commit)."""
        entries = {name: ("100644", self.blob(v, **kw)) if isinstance(v, bytes) else v for name, v in files.items()}
        parents = [] if parent is None else ["-p", self.head if parent == "head" else parent]
        return self.git("commit-tree", self.tree(entries, **kw), *parents, "-m", "pushed", **kw)

    def tag(self, target: str, kind: str, name: str = "v1") -> str:
        text = f"object {target}\ntype {kind}\ntag {name}\ntagger t <t@example.org> 1700000000 +0000\n\nrelease\n"
        return self.git("mktag", input=text.encode())

    def set_ref(self, ref: str, sha: str) -> None:
        """A ref already in the repository (not part of the push)."""
        self.git("update-ref", ref, sha, quarantined=False)

    def check(self, *updates: tuple[bytes, str, str], limits: TierLimits = LIMITS) -> dict[bytes, str]:
        refs = [RefUpdate(ref, old.encode(), new.encode()) for ref, old, new in updates]
        return PushPolicy(limits).check(PushContext.of(self.core.repo(self.name), self.quarantine), refs)


@pytest.fixture
def push(core) -> Iterator[Push]:
    name = WikiName("alice", f"w{next(WIKI_NUMBERS)}")
    core.create_wiki(name)
    quarantine = Quarantine(core.repos.path(name) / ".git")
    push = Push(core, name, quarantine, "")
    push.head = push.commit({"home.md": b"# Home\n"}, parent=None, quarantined=False)
    push.set_ref(MAIN.decode(), push.head)
    try:
        yield push
    finally:
        quarantine.discard()
        core.delete_wiki(name)


def test_fast_forward_is_accepted(push):
    new = push.commit({"home.md": b"# Home\n", "more.md": b"# More\n"})
    assert push.check((MAIN, push.head, new)) == {}


def test_main_cannot_be_deleted_but_other_branches_can(push):
    push.set_ref("refs/heads/draft", push.head)
    assert push.check((MAIN, push.head, ZERO), (b"refs/heads/draft", push.head, ZERO)) == {
        MAIN: "main is the wiki and cannot be deleted"}


def test_main_cannot_be_rewritten(push):
    rewritten = push.commit({"home.md": b"# Other home\n"}, parent=None)
    assert push.check((MAIN, push.head, rewritten)) == {
        MAIN: "non-fast-forward: main cannot be rewritten; pull, merge and push again"}
    assert push.check((b"refs/heads/side", ZERO, rewritten)) == {}  # any other branch may start anew


@pytest.mark.parametrize(("name", "mode", "reason"), [
    ("link.md", "120000", "symlinks are not allowed: link.md"),
    (".git", "100644", "path '.git' has a .git component"),
    ("GIT~1", "100644", "path 'GIT~1' has a .git component"),
    ("aux.md", "100644", "path 'aux.md' has a name reserved on Windows"),
    ("page.md.", "100644", "path 'page.md.' has a component ending in a dot or space"),
])
def test_unsafe_entries_are_refused(push, name, mode, reason):
    new = push.commit({"home.md": b"# Home\n", name: (mode, push.blob(b"home.md"))})
    assert push.check((MAIN, push.head, new)) == {MAIN: reason}


def test_a_nested_git_folder_is_refused(push):
    hooks = push.tree({"post-checkout": ("100755", push.blob(b"#!/bin/sh\n"))})
    dotgit = push.tree({"hooks": ("040000", hooks)})
    new = push.commit({"home.md": b"# Home\n", "docs": ("040000", push.tree({".git": ("040000", dotgit)}))})
    assert push.check((MAIN, push.head, new)) == {MAIN: "path 'docs/.git/hooks/post-checkout' has a .git component"}


def test_submodules_are_refused(push):
    new = push.commit({"home.md": b"# Home\n", "vendor": ("160000", push.head)})
    assert push.check((MAIN, push.head, new)) == {MAIN: "submodules are not allowed: vendor"}


def test_a_problem_is_named_on_its_own_ref(push):
    good = push.commit({"home.md": b"# Home\n", "ok.md": b"fine\n"})
    bad = push.commit({"home.md": b"# Home\n", "link": ("120000", push.blob(b"/etc/passwd"))})
    assert push.check((MAIN, push.head, good), (b"refs/heads/bad", ZERO, bad)) == {
        b"refs/heads/bad": "symlinks are not allowed: link"}


def test_file_size_limit(push):
    exactly = push.commit({"home.md": b"# Home\n", "big.bin": b"x" * MB})
    assert push.check((MAIN, push.head, exactly)) == {}
    over = push.commit({"home.md": b"# Home\n", "big.bin": b"x" * (MB + 1)})
    assert push.check((MAIN, push.head, over)) == {MAIN: "file big.bin is 1.0 MB, over the 1 MB per-file limit"}


def test_page_limit(push):
    limits = TierLimits(max_wikis=1, max_pages=2, max_collaborators=1, max_repo_mb=50, max_file_mb=1)
    two = push.commit({"home.md": b"# Home\n", "b.md": b"b\n", "notes.txt": b"not a page\n"})
    assert push.check((MAIN, push.head, two), limits=limits) == {}
    three = push.commit({"home.md": b"# Home\n", "b.md": b"b\n", "c.md": b"c\n"})
    assert push.check((MAIN, push.head, three), limits=limits) == {
        MAIN: "page limit 2 reached: push would make 3 pages"}
    assert push.check((b"refs/heads/big", ZERO, three), limits=limits) == {}  # only main's pages count


def test_a_wiki_over_a_lowered_page_limit_may_stay_as_it_is(push):
    limits = TierLimits(max_wikis=1, max_pages=2, max_collaborators=1, max_repo_mb=50, max_file_mb=1)
    three = push.commit({"home.md": b"# Home\n", "b.md": b"b\n", "c.md": b"c\n"}, quarantined=False)
    push.set_ref(MAIN.decode(), three)
    push.head = three
    same = push.commit({"home.md": b"# Home again\n", "b.md": b"b\n", "c.md": b"c\n"})
    assert push.check((MAIN, three, same), limits=limits) == {}
    more = push.commit({"home.md": b"# Home\n", "b.md": b"b\n", "c.md": b"c\n", "d.md": b"d\n"})
    assert push.check((MAIN, three, more), limits=limits) == {MAIN: "page limit 2 reached: push would make 4 pages"}


def test_repository_size_limit(push):
    limits = TierLimits(max_wikis=1, max_pages=50, max_collaborators=1, max_repo_mb=1, max_file_mb=10)
    new = push.commit({"home.md": b"# Home\n", "noise.bin": os.urandom(MB + MB // 10)})  # incompressible
    reasons = push.check((MAIN, push.head, new), limits=limits)
    assert reasons[MAIN].startswith("repository size limit 1 MB reached: push would make it 1.1 MB")


def test_disk_usage_of_main_is_limited(push):
    """300 empty files pack to nothing, but take a block each once checked out."""
    limits = TierLimits(max_wikis=1, max_pages=50, max_collaborators=1, max_repo_mb=1, max_file_mb=1)
    empty = push.blob(b"")
    files = {f"f{i}.txt": ("100644", empty) for i in range(300)}
    new = push.commit({"home.md": b"# Home\n", **files})
    assert push.check((MAIN, push.head, new), limits=limits) == {
        MAIN: "repository size limit 1 MB reached: the files on main would take 1.2 MB on disk"}
    assert push.check((b"refs/heads/wide", ZERO, new), limits=limits) == {}  # only main is checked out


def test_branches_point_at_commits_and_tags_at_commits(push):
    new = push.commit({"home.md": b"# Home\n", "more.md": b"more\n"})
    tag = push.tag(new, "commit")
    tree_tag = push.tag(push.git("rev-parse", f"{new}^{{tree}}"), "tree", "v2")
    blob = push.blob(b"just a blob\n")
    assert push.check((b"refs/tags/v1", ZERO, tag), (b"refs/tags/v0", ZERO, new)) == {}
    assert push.check(
        (b"refs/heads/tagged", ZERO, tag), (MAIN, push.head, blob), (b"refs/tags/v2", ZERO, tree_tag),
        (b"refs/heads/ghost", ZERO, "1" * 40),
    ) == {
        b"refs/heads/tagged": "a branch must point at a commit: push tags under refs/tags/",
        MAIN: "a branch must point at a commit: push tags under refs/tags/",
        b"refs/tags/v2": "only commits and tags of commits may be pushed",
        b"refs/heads/ghost": "a branch must point at a commit: push tags under refs/tags/",
    }


def test_ref_limit(push, monkeypatch):
    monkeypatch.setattr(pre_receive, "MAX_REFS", 2)
    push.set_ref("refs/heads/a", push.head)
    push.set_ref("refs/tags/b", push.head)
    reason = ("ref limit reached: a wiki holds at most 2 branches and tags besides main: this push would make 4; "
              "delete some and push again")
    assert push.check((b"refs/heads/c", ZERO, push.head), (b"refs/tags/d", ZERO, push.head)) == {
        b"refs/heads/c": reason, b"refs/tags/d": reason}
    # a push that deletes as many as it creates stays within the limit, and moving main is never counted
    new = push.commit({"home.md": b"# Home\n", "more.md": b"more\n"})
    assert push.check((b"refs/heads/c", ZERO, push.head), (b"refs/heads/a", push.head, ZERO),
                      (MAIN, push.head, new)) == {}
