"""Commits made by the platform (agents' writes, new wikis) obey the same rules as a push."""
from __future__ import annotations

import functools

import pytest

from wikibot.gitd.commits import CommitConflict, CommitRefused, FileChange
from wikibot.testing.servers import events_of, run_git


@pytest.fixture
def make_wiki(make_wiki):
    """These tests start from the starter pages (home.md and the others), as a new wiki has them."""
    return functools.partial(make_wiki, template="default")

AUTHOR = ("Agent Smith", "agent@example.org")


def test_a_commit_lands_on_main_with_its_author_worktree_and_event(server, make_user, make_wiki):
    alice = make_user()
    wiki = make_wiki(alice)
    base = server.core.repos.head(wiki)
    new = server.core.commit(wiki, [FileChange("notes/plan.md", b"# Plan\n"), FileChange("home.md", None)],
                             message="[mcp] plan", author=AUTHOR, actor=alice.name, source="mcp", base=base)
    path = server.core.repos.path(wiki)
    assert run_git("log", "-1", "--format=%an <%ae>|%s|%P", cwd=path).stdout.strip() == \
        f"Agent Smith <agent@example.org>|[mcp] plan|{base}"
    assert (path / "notes" / "plan.md").read_text() == "# Plan\n" and not (path / "home.md").exists()
    assert run_git("status", "--porcelain", cwd=path).stdout == ""
    last = events_of(server, wiki)[-1]
    assert (last.source, last.old_sha, last.new_sha, last.actor) == ("mcp", base, new, alice.name)


def test_a_stale_base_is_a_conflict_and_changes_nothing(server, make_user, make_wiki):
    alice = make_user()
    wiki = make_wiki(alice)
    base = server.core.repos.head(wiki)
    server.core.commit(wiki, [FileChange("a.md", b"first\n")], message="first", author=AUTHOR,
                       actor=alice.name, source="mcp", base=base)
    head = server.core.repos.head(wiki)
    with pytest.raises(CommitConflict) as conflict:
        server.core.commit(wiki, [FileChange("a.md", b"second\n")], message="second", author=AUTHOR,
                           actor=alice.name, source="mcp", base=base)
    assert conflict.value.current == head
    assert server.core.repos.head(wiki) == head
    objects = server.core.repos.path(wiki) / ".git" / "objects"
    assert not list(objects.glob("incoming-*"))


@pytest.mark.parametrize("path,why", [("../escape.md", "component"), ("CON.md", "reserved"),
                                      ("a/.git/config", ".git")])
def test_forbidden_paths_are_refused_like_in_a_push(server, make_user, make_wiki, path, why):
    alice = make_user()
    wiki = make_wiki(alice)
    head = server.core.repos.head(wiki)
    with pytest.raises(CommitRefused) as refused:
        server.core.commit(wiki, [FileChange(path, b"x")], message="bad", author=AUTHOR,
                           actor=alice.name, source="mcp")
    assert why in str(refused.value)
    assert server.core.repos.head(wiki) == head


def test_commits_respect_the_owners_page_limit(server, make_user, make_wiki):
    alice = make_user(tier="free")  # 500 pages
    wiki = make_wiki(alice)
    too_many = [FileChange(f"p{i}.md", b"page\n") for i in range(500)]
    with pytest.raises(CommitRefused, match="page limit 500 reached"):
        server.core.commit(wiki, too_many, message="bulk", author=AUTHOR, actor=alice.name, source="mcp")
