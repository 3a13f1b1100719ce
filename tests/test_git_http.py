"""The smart-HTTP Git server driven by the real `git` client against `wikibot serve`."""
from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import pytest
import requests

from wikibot.gitd.names import WikiName
from wikibot.testing.servers import Server, commit_files, run_git


@pytest.fixture
def make_wiki(make_wiki):
    """These tests start from the starter pages (home.md and the others), as a new wiki has them."""
    return functools.partial(make_wiki, template="default")


def clone(server: Server, wiki: WikiName, dest: Path, token: str | None = None, check: bool = True):
    return run_git("clone", server.clone_url(wiki, token), str(dest), check=check)


def commit_file(repo: Path, name: str, content: bytes | str, message: str = "edit") -> str:
    return commit_files(repo, {name: content}, message)


def assert_worktree_is_head(server: Server, wiki: WikiName, head: str) -> None:
    repo = server.core.repos.path(wiki)
    assert run_git("rev-parse", "HEAD", cwd=repo).stdout.strip() == head
    assert run_git("status", "--porcelain", "--untracked-files=no", cwd=repo).stdout == ""
    # index and files on disk match HEAD exactly
    assert run_git("diff-index", "--quiet", "HEAD", "--", cwd=repo, check=False).returncode == 0


def test_clone_push_fetch_pull_roundtrip(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice)
    a, b = tmp_path / "a", tmp_path / "b"
    clone(server, wiki, a, alice.token)
    clone(server, wiki, b, alice.token)
    assert (a / "home.md").exists()
    head = commit_file(a, "Ideas.md", "# Ideas\n\nfirst\n", "add ideas")
    push = run_git("push", "origin", "main", cwd=a)
    assert "main -> main" in push.stderr
    assert_worktree_is_head(server, wiki, head)
    assert (server.core.repos.path(wiki) / "Ideas.md").read_text() == "# Ideas\n\nfirst\n"

    run_git("fetch", "origin", cwd=b)
    assert run_git("rev-parse", "origin/main", cwd=b).stdout.strip() == head
    # several commits in one push, then pull them into the other clone
    for i in range(3):
        head = commit_file(b, f"notes/n{i}.md", f"note {i}\n", f"note {i}")
    run_git("pull", "-q", "--rebase", "origin", "main", cwd=b)
    run_git("push", "origin", "main", cwd=b)
    run_git("pull", "-q", "origin", "main", cwd=a)
    assert (a / "notes" / "n2.md").read_text() == "note 2\n"
    assert_worktree_is_head(server, wiki, run_git("rev-parse", "HEAD", cwd=a).stdout.strip())


def test_deleting_a_page_by_push_removes_it_from_the_worktree(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice)
    clone(server, wiki, tmp_path / "c", alice.token)
    run_git("rm", "-q", "home.md", cwd=tmp_path / "c")
    run_git("commit", "-q", "-m", "remove home", cwd=tmp_path / "c")
    run_git("push", "origin", "main", cwd=tmp_path / "c")
    assert not (server.core.repos.path(wiki) / "home.md").exists()


def test_push_of_several_megabytes(server, make_user, make_wiki, tmp_path):
    """git sends bodies over 1 MiB chunked; gunicorn de-chunks them (DESIGN pitfall)."""
    alice = make_user()
    wiki = make_wiki(alice)
    repo = tmp_path / "big"
    clone(server, wiki, repo, alice.token)
    blob = os.urandom(6 * 1024 * 1024)  # incompressible: the pack really is ~6 MB
    head = commit_file(repo, "attachments/big.bin", blob, "big attachment")
    run_git("push", "origin", "main", cwd=repo)
    assert_worktree_is_head(server, wiki, head)
    assert (server.core.repos.path(wiki) / "attachments" / "big.bin").read_bytes() == blob
    clone(server, wiki, tmp_path / "again", alice.token)
    assert (tmp_path / "again" / "attachments" / "big.bin").read_bytes() == blob


def test_private_wiki_needs_a_valid_token(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice)
    anon = clone(server, wiki, tmp_path / "anon", check=False)
    assert anon.returncode != 0
    assert "could not read Username" in anon.stderr or "Authentication failed" in anon.stderr
    wrong = clone(server, wiki, tmp_path / "wrong", "wbt_" + "x" * 43, check=False)
    assert wrong.returncode != 0 and "Authentication failed" in wrong.stderr
    # the raw answer: 401 with a Basic challenge so git asks its credential helper
    r = requests.get(f"{server.url}/{wiki}.git/info/refs?service=git-upload-pack")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic")


def test_unknown_wiki_and_other_users_private_wiki_look_the_same(server, make_user, make_wiki, tmp_path):
    alice, mallory = make_user(), make_user()
    wiki = make_wiki(alice)
    for target in (wiki, f"{alice.name}/does-not-exist"):
        r = requests.get(f"{server.url}/{target}.git/info/refs?service=git-upload-pack", auth=("x", mallory.token))
        assert r.status_code == 404, target
        assert r.text == "wikibot: repository not found\n"
        # anonymous: the same challenge for both, so existence is never revealed
        r = requests.get(f"{server.url}/{target}.git/info/refs?service=git-upload-pack")
        assert r.status_code == 401
    other = clone(server, wiki, tmp_path / "m", mallory.token, check=False)
    assert other.returncode != 0 and "not found" in other.stderr


def test_viewer_can_fetch_but_not_push(server, make_user, make_wiki, tmp_path):
    alice, victor = make_user(), make_user()
    wiki = make_wiki(alice)
    server.core.grant(wiki, victor.name, "viewer")
    repo = tmp_path / "v"
    clone(server, wiki, repo, victor.token)
    before = server.core.repos.head(wiki)
    commit_file(repo, "x.md", "viewer edit\n")
    push = run_git("push", "origin", "main", cwd=repo, check=False)
    assert push.returncode != 0
    assert "read-only access" in push.stderr and "viewer" in push.stderr
    assert server.core.repos.head(wiki) == before
    # once promoted to editor, the same token pushes
    server.core.grant(wiki, victor.name, "editor")
    run_git("push", "origin", "main", cwd=repo)


def test_read_scoped_token_cannot_push(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice)
    _, reader = server.core.create_token(alice.name, scope="read")
    repo = tmp_path / "r"
    clone(server, wiki, repo, reader)
    commit_file(repo, "x.md", "x\n")
    push = run_git("push", "origin", "main", cwd=repo, check=False)
    assert push.returncode != 0 and "token is read-only" in push.stderr


def test_token_limited_to_another_wiki_sees_nothing(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    w1, w2 = make_wiki(alice), make_wiki(alice)
    _, limited = server.core.create_token(alice.name, scope="write", wikis=(w1,))
    clone(server, w1, tmp_path / "one", limited)
    res = clone(server, w2, tmp_path / "two", limited, check=False)
    # not found, although its holder owns w2: a leaked token must not tell which private wikis exist
    assert res.returncode != 0 and "not found" in res.stderr


def test_revoked_and_expired_tokens_are_refused(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice)
    token, secret = server.core.create_token(alice.name, scope="write")
    clone(server, wiki, tmp_path / "ok", secret)
    server.core.revoke_token(token.id)
    revoked = clone(server, wiki, tmp_path / "revoked", secret, check=False)
    assert revoked.returncode != 0 and "Authentication failed" in revoked.stderr
    _, short = server.core.create_token(alice.name, scope="write", expires_days=1.5 / 86400)
    time.sleep(2)
    expired = clone(server, wiki, tmp_path / "expired", short, check=False)
    assert expired.returncode != 0 and "Authentication failed" in expired.stderr
    r = requests.get(f"{server.url}/{wiki}.git/info/refs?service=git-upload-pack", auth=("x", short))
    assert r.status_code == 401 and "expired" in r.text


def test_token_last_used_is_recorded(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice)
    token, secret = server.core.create_token(alice.name)
    assert token.last_used is None
    clone(server, wiki, tmp_path / "c", secret)
    [stored] = [t for t in server.core.store.list_tokens(alice.name) if t.id == token.id]
    assert stored.last_used is not None and stored.last_used >= token.created


def test_public_wiki_anonymous_clone_but_no_anonymous_push(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice, public=True)
    repo = tmp_path / "pub"
    clone(server, wiki, repo)
    assert (repo / "home.md").exists()
    commit_file(repo, "x.md", "anonymous\n")
    push = run_git("push", "origin", "main", cwd=repo, check=False)
    assert push.returncode != 0 and "could not read Username" in push.stderr
    # an authenticated stranger may read a public wiki but not write it
    bob = make_user()
    push = run_git("push", server.clone_url(wiki, bob.token), "main", cwd=repo, check=False)
    assert push.returncode != 0 and "read-only access" in push.stderr


def test_bearer_token_header_works(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice)
    run_git("-c", f"http.extraHeader=Authorization: Bearer {alice.token}", "clone",
            server.clone_url(wiki), str(tmp_path / "bearer"))
    assert (tmp_path / "bearer" / "home.md").exists()


def raw_get(server: Server, path: str, token: str) -> tuple[int, bytes]:
    """GET `path` byte for byte: requests would normalise dot segments before sending."""
    import base64
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.putheader("Authorization", "Basic " + base64.b64encode(f"x:{token}".encode()).decode())
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_traversal_and_malformed_paths_are_refused(server, make_user, make_wiki):
    alice = make_user()
    wiki = make_wiki(alice)
    owner, slug = wiki.owner, wiki.slug
    auth = ("x", alice.token)
    attempts = [
        f"/{owner}/../{owner}/{slug}.git/info/refs",
        f"/{owner}/%2e%2e/{slug}.git/info/refs",
        f"/{owner}/{slug}%2f..%2f{slug}.git/info/refs",
        "/%2e%2e/%2e%2e/etc.git/info/refs",
        f"/{owner}/..%252f{slug}.git/info/refs",
        f"/{owner.upper()}/{slug}.git/info/refs",
        f"/{owner}/{slug}.git/../../db.json",
        f"/{owner}/{slug}.git/objects/info/packs",
        f"/{owner}/{slug}.git/HEAD",
        f"/{owner}/.{slug}.git/info/refs",
        f"/{owner}/{slug}%00.git/info/refs",
    ]
    for path in attempts:
        status, body = raw_get(server, path + "?service=git-upload-pack", alice.token)
        assert status in (400, 404), (path, status)
        assert b"PACK" not in body and b"refs/heads" not in body, path
    ok = requests.get(f"{server.url}/{wiki}.git/info/refs?service=git-upload-pack", auth=auth)
    assert ok.status_code == 200 and b"refs/heads/main" in ok.content


def test_dumb_protocol_and_wrong_methods_are_refused(server, make_user, make_wiki):
    alice = make_user()
    wiki = make_wiki(alice)
    auth = ("x", alice.token)
    assert requests.get(f"{server.url}/{wiki}.git/info/refs", auth=auth).status_code == 403
    assert requests.get(f"{server.url}/{wiki}.git/git-upload-pack", auth=auth).status_code == 405
    r = requests.post(f"{server.url}/{wiki}.git/git-upload-pack", auth=auth, data=b"0000",
                      headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_gzip_request_bodies_are_accepted(server, make_user, make_wiki):
    """git gzips large upload-pack negotiations; build one by hand and check the pack comes back."""
    import gzip

    alice = make_user()
    wiki = make_wiki(alice)
    head = server.core.repos.head(wiki).encode()
    want = b"want " + head + b" side-band-64k ofs-delta thin-pack no-progress\n"
    body = b"%04x" % (len(want) + 4) + want + b"0000" + b"0009done\n"
    r = requests.post(f"{server.url}/{wiki}.git/git-upload-pack", auth=("x", alice.token),
                      data=gzip.compress(body),
                      headers={"Content-Type": "application/x-git-upload-pack-request", "Content-Encoding": "gzip"})
    assert r.status_code == 200
    assert b"PACK" in r.content


def test_a_wiki_created_by_the_cli_while_serving_is_served(server, tmp_path):
    """The CLI and the server share the data dir: what one writes, the other sees at once."""
    import subprocess

    from wikibot.testing.servers import WIKIBOT, unique

    env = {**os.environ, "WIKIBOT_DATA": str(server.data)}
    name = unique("cli")
    wiki = WikiName(name, "wiki")
    subprocess.run([*WIKIBOT, "user", "add", name], env=env, check=True, capture_output=True)
    subprocess.run([*WIKIBOT, "wiki", "create", str(wiki)], env=env, check=True, capture_output=True)
    out = subprocess.run([*WIKIBOT, "token", "create", name, "--scope", "write"], env=env, check=True,
                         capture_output=True, text=True).stdout
    token = out.strip().splitlines()[-1]
    clone(server, wiki, tmp_path / "w", token)
    assert (tmp_path / "w" / "home.md").exists()


def test_clone_after_push_sees_the_new_head(server, make_user, make_wiki, tmp_path):
    """Full clones come from a pack cached per set of wanted commits: a push must never serve a stale one."""
    alice = make_user()
    wiki = make_wiki(alice)
    first = tmp_path / "first"
    clone(server, wiki, first, alice.token)
    clone(server, wiki, tmp_path / "cached", alice.token)  # served from the cache
    head = commit_file(first, "new.md", "new page\n")
    run_git("push", "origin", "main", cwd=first)
    second = tmp_path / "second"
    clone(server, wiki, second, alice.token)
    assert run_git("rev-parse", "HEAD", cwd=second).stdout.strip() == head
    assert run_git("fsck", "--strict", cwd=second).returncode == 0


def wiki_with_history(server: Server, wiki: WikiName, token: str, tmp_path: Path, commits: int) -> tuple[Path, Path]:
    """A full clone of `wiki` after pushing `commits` more commits, and a --depth 1 clone of it."""
    full = tmp_path / "full"
    clone(server, wiki, full, token)
    for i in range(commits):
        commit_file(full, f"p{i}.md", f"page {i}\n", f"commit {i}")
    run_git("push", "origin", "main", cwd=full)
    shallow = tmp_path / "shallow"
    run_git("clone", "--depth", "1", server.clone_url(wiki, token), str(shallow))
    return full, shallow


def test_shallow_clone_then_deeper_then_full(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice)
    _, shallow = wiki_with_history(server, wiki, alice.token, tmp_path, 4)
    assert run_git("rev-list", "--count", "HEAD", cwd=shallow).stdout.strip() == "1"
    assert (shallow / "p3.md").read_text() == "page 3\n"
    run_git("fetch", "--depth", "3", cwd=shallow)
    assert run_git("rev-list", "--count", "HEAD", cwd=shallow).stdout.strip() == "3"
    run_git("fetch", "--deepen", "1", cwd=shallow)
    assert run_git("rev-list", "--count", "HEAD", cwd=shallow).stdout.strip() == "4"
    run_git("fetch", "--unshallow", cwd=shallow)
    assert run_git("rev-list", "--count", "HEAD", cwd=shallow).stdout.strip() == "5"


def test_tags_and_branches_travel(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice)
    src = tmp_path / "src"
    clone(server, wiki, src, alice.token)
    run_git("tag", "-a", "v1", "-m", "first release", cwd=src)
    run_git("checkout", "-q", "-b", "draft", cwd=src)
    commit_file(src, "draft.md", "draft\n")
    run_git("push", "origin", "v1", "draft", cwd=src)
    dst = tmp_path / "dst"
    clone(server, wiki, dst, alice.token)
    assert "v1" in run_git("tag", cwd=dst).stdout
    assert "origin/draft" in run_git("branch", "-r", cwd=dst).stdout
    # a branch push does not touch the wiki's worktree (only main is the wiki)
    assert not (server.core.repos.path(wiki) / "draft.md").exists()
    run_git("push", "origin", "--delete", "draft", cwd=src)
    assert "draft" not in run_git("ls-remote", "origin", cwd=src).stdout


def test_garbage_request_body_is_a_client_error(server, make_user, make_wiki):
    alice = make_user()
    wiki = make_wiki(alice)
    for service in ("git-upload-pack", "git-receive-pack"):
        r = requests.post(f"{server.url}/{wiki}.git/{service}", auth=("x", alice.token), data=b"zzzz garbage",
                          headers={"Content-Type": f"application/x-{service}-request"})
        assert r.status_code == 400, (service, r.status_code, r.text)
        assert r.text.startswith("wikibot: bad")


def test_a_shallow_clone_can_pull_and_push(server, make_user, make_wiki, tmp_path):
    alice = make_user()
    wiki = make_wiki(alice)
    full, shallow = wiki_with_history(server, wiki, alice.token, tmp_path, 3)
    head = commit_file(full, "later.md", "later\n", "later")
    run_git("push", "origin", "main", cwd=full)
    run_git("pull", "-q", "--ff-only", cwd=shallow)  # a shallow client fetching: git's own upload-pack
    assert (shallow / "later.md").exists()
    mine = commit_file(shallow, "from-shallow.md", "pushed from a shallow clone\n")
    run_git("push", "origin", "main", cwd=shallow)
    assert server.core.repos.head(wiki) == mine != head


def test_a_small_gzip_body_cannot_inflate_without_bound(server, make_user, make_wiki):
    import gzip

    alice = make_user()
    wiki = make_wiki(alice, public=True)
    bomb = gzip.compress(b"0032want " + b"0" * 40 + b"\n" + b"0" * (40 * 1024 * 1024), 9)  # 40 MB of zeros
    assert len(bomb) < 100 * 1024
    r = requests.post(f"{server.url}/{wiki}.git/git-upload-pack", data=bomb,
                      headers={"Content-Type": "application/x-git-upload-pack-request", "Content-Encoding": "gzip"})
    assert r.status_code == 413 and "negotiation over 10 MB" in r.text


def test_replace_refs_and_other_namespaces_cannot_be_pushed(server, make_user, make_wiki, tmp_path):
    """refs/replace/* would make git show the policy one commit while another is stored."""
    alice = make_user()
    wiki = make_wiki(alice)
    repo = tmp_path / "r"
    clone(server, wiki, repo, alice.token)
    head = run_git("rev-parse", "HEAD", cwd=repo).stdout.strip()
    commit_file(repo, "clean.md", "clean\n")
    clean = run_git("rev-parse", "HEAD", cwd=repo).stdout.strip()
    for target in (f"refs/replace/{head}", "refs/notes/commits", "refs/pull/1/head"):
        push = run_git("push", "origin", f"{clean}:{target}", cwd=repo, check=False)
        assert push.returncode != 0 and "only branches (refs/heads/*) and tags" in push.stderr, target


def test_a_token_limited_to_one_wiki_reads_public_wikis_like_anyone(server, make_user, make_wiki, tmp_path):
    alice, bob = make_user(), make_user()
    own = make_wiki(alice)
    public = make_wiki(bob, public=True)
    _, limited = server.core.create_token(alice.name, scope="write", wikis=(own,))
    clone(server, public, tmp_path / "pub", limited)
    commit_file(tmp_path / "pub", "x.md", "x\n")
    push = run_git("push", "origin", "main", cwd=tmp_path / "pub", check=False)
    assert push.returncode != 0
    assert f"this token is limited to {own}; create one that includes {public}" in push.stderr


def test_tokens_cannot_be_limited_to_wikis_their_user_cannot_read(server, make_user, make_wiki):
    from wikibot.gitd.core import CoreError

    alice, bob = make_user(), make_user()
    private = make_wiki(bob)
    with pytest.raises(CoreError, match="no such wiki"):
        server.core.create_token(alice.name, wikis=(private,))
