"""New wikis from templates: the default starter pages, template folders, and any Git URL."""
from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import WIKIBOT, commit_files, free_port, run_git, unique, wait_until
from test_search import search

from wikibot.bootstrap.create import create_wiki
from wikibot.bootstrap.templates import BUILTIN_DIR, TemplateError, fill
from wikibot.indexer.chunking import outline
from wikibot.mcp.server import TOOLS

STARTER = {"home.md", "getting_started.md", "agent_guide.md", "administration.md"}
TRICKY = "# Ops *runbooks* [x](javascript:alert(1)) <script>x</script> | a | `b`\n1. list"


def files_at_head(repo: Path) -> dict[str, bytes]:
    names = run_git("ls-tree", "-r", "-z", "--name-only", "HEAD", cwd=repo).stdout.split("\0")
    return {n: subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{n}"], capture_output=True,
                              check=True).stdout for n in names if n}


def nothing_left(server, owner: str, slug: str) -> None:
    assert server.core.store.get_wiki(owner, slug) is None
    assert not server.core.repos.path(owner, slug).exists()
    assert not (server.data / "index" / owner / slug).exists()


def test_default_template_pages_are_substituted_committed_once_and_searchable(server, make_user):
    owner = make_user()
    slug = unique("w")
    wiki, head = create_wiki(server.core, owner.name, slug, title="Ops Handbook", purpose=TRICKY)
    repo = server.core.repos.path(owner.name, slug)
    files = files_at_head(repo)
    assert set(files) == STARTER
    assert run_git("rev-list", "--count", "HEAD", cwd=repo).stdout.strip() == "1"
    base = server.core.config.public_url
    texts = {name: body.decode() for name, body in files.items()}
    assert not any("{{" in text for text in texts.values())
    assert f"{base}/{wiki.full_name}.git" in texts["getting_started.md"]
    assert f"{base}/mcp/{wiki.full_name}" in texts["getting_started.md"]
    home = texts["home.md"]
    assert "Ops Handbook" in home
    # the purpose is plain text: no heading, list, link, HTML or table cell came out of it
    assert "<script>" not in home and "\\<script\\>" in home
    assert [s.heading for s in outline("home.md", home).sections if s.anchor][0] != "Ops *runbooks*"
    assert not any(s.heading.startswith("Ops") for s in outline("home.md", home).sections[1:])

    def found():
        return search(server, wiki.full_name, owner.token, "base revision conflict when writing a page", "keyword")
    answer = wait_until(lambda: found()["indexed_sha"] == head and found(), timeout=120, what="starter indexed")
    assert "agent_guide.md" in [hit["page"] for hit in answer["hits"][:3]]


def test_the_agent_guide_names_only_real_tools_and_arguments():
    guide = (BUILTIN_DIR / "default" / "agent_guide.md").read_text()
    tools = {fn.__name__: set(inspect.signature(fn).parameters) for fn, _ in TOOLS}
    calls = re.findall(r"`([a-z_]+)\(([^`]*)\)`", guide)
    assert len({name for name, _ in calls}) >= 8, "the guide should show the main tools"
    for name, args in calls:
        assert name in tools, f"the Agent_Guide names a tool that does not exist: {name}"
        for arg in filter(None, (a.strip() for a in args.split(","))):
            arg_name = re.match(r"[a-z_][a-z0-9_]*", arg)
            assert arg_name and arg_name.group() in tools[name], f"{name}() has no argument {arg!r}"
    for tool in ("read_page", "edit_page", "write_page", "search", "recent_changes"):
        assert f"`{tool}(" in guide, f"the Agent_Guide should explain {tool}"


def test_fill_escapes_markdown_in_text_and_keeps_code_verbatim():
    text = fill("{{purpose}}\n\n`{{url}}`\n\n```\n{{url}} {{purpose}}\n```\n{{other}}",
                {"purpose": "# *x* [a](b) <i>\n- y", "url": "http://h/a_b.git"})
    lines = text.split("\n")
    assert lines[0] == "\\# \\*x\\* \\[a\\](b) \\<i\\> - y"
    assert lines[2] == "`http://h/a_b.git`"
    assert lines[5] == "http://h/a_b.git # *x* [a](b) <i> - y"
    assert lines[7] == "{{other}}"


def test_empty_and_admin_templates(server, make_user, tmp_path):
    owner = make_user()
    wiki, head = create_wiki(server.core, owner.name, unique("w"), template="empty")
    assert head is None and server.core.repos.head(owner.name, wiki.slug) is None
    folder = tmp_path / "templates" / "team"
    (folder / "runbooks").mkdir(parents=True)
    (folder / "home.md").write_text("# {{title}}\n\nOwned by {{owner}}.\n")
    (folder / "runbooks" / "deploy.md").write_text("# Deploy\n")
    core = server.core
    core.config = replace(core.config, templates_dir=str(tmp_path / "templates"))
    try:
        wiki, _ = create_wiki(core, owner.name, unique("w"), title="Team", template="team")
        files = files_at_head(core.repos.path(owner.name, wiki.slug))
        assert files == {"home.md": f"# Team\n\nOwned by {owner.name}.\n".encode(), "runbooks/deploy.md": b"# Deploy\n"}
        with pytest.raises(TemplateError, match="unknown template 'nope'.*team"):
            create_wiki(core, owner.name, unique("w"), template="nope")
        (folder / "link.md").symlink_to("/etc/passwd")
        slug = unique("w")
        with pytest.raises(TemplateError, match="symlink"):
            create_wiki(core, owner.name, slug, template="team")
        nothing_left(server, owner.name, slug)
    finally:
        core.config = replace(core.config, templates_dir="")


def cli(server, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WIKIBOT, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "WIKIBOT_DATA": str(server.data), **env})


@pytest.fixture
def template_wiki(server, make_user, make_wiki, tmp_path):
    """A wiki on our own server to use as a template: pages, an attachment, a manifest, history."""
    owner = make_user()
    name = make_wiki(owner)
    clone = tmp_path / "template"
    run_git("clone", server.clone_url(name, owner.token), str(clone))
    commit_files(clone, {"home.md": "# {{title}}\n\nFor {{purpose}}\n", "guide/style.md": "Keep {{title}} literal.\n",
                         "guide/style/logo.png": b"\x89PNG\x00\x01binary", ".wikibot-template.toml":
                         'substitute = ["home.md"]\n'}, "template pages")
    commit_files(clone, {"notes.md": "second commit\n"}, "more")
    run_git("push", "-q", "origin", "HEAD:main", cwd=clone)
    return owner, name, clone


def test_create_from_a_git_url_strips_history_and_fills_opted_in_files(server, make_user, template_wiki):
    owner, name, clone = template_wiki
    creator = make_user()
    slug = unique("w")
    url = server.clone_url(name, owner.token)  # a token in the URL authenticates the clone
    refused = cli(server, "wiki", "create", f"{creator.name}/{slug}", "--template", url)
    assert refused.returncode == 1 and "loopback" in refused.stderr and owner.token not in refused.stderr
    nothing_left(server, creator.name, slug)

    done = cli(server, "wiki", "create", f"{creator.name}/{slug}", "--name", "Copied", "--purpose", "tests *now*",
               "--template", url, WIKIBOT_ALLOW_PRIVATE_URLS="1")
    assert done.returncode == 0, done.stderr
    repo = server.core.repos.path(creator.name, slug)
    assert run_git("rev-list", "--count", "HEAD", cwd=repo).stdout.strip() == "1"
    assert run_git("log", "-1", "--format=%an", cwd=repo).stdout.strip() == "wikibot"
    ours, theirs = files_at_head(repo), files_at_head(clone)
    assert set(ours) == set(theirs) - {".wikibot-template.toml"}
    assert ours["home.md"] == b"# Copied\n\nFor tests \\*now\\*\n"
    for path in ("guide/style.md", "guide/style/logo.png", "notes.md"):
        assert ours[path] == theirs[path]


def test_bad_template_urls_fail_clearly_and_leave_nothing(server, make_user, tmp_path):
    creator = make_user()
    allow = {"WIKIBOT_ALLOW_PRIVATE_URLS": "1"}
    # templates served by git http-backend under python's CGI server (our own server refuses
    # symlinks in pushes, so it could not serve this one). Run as root, that server runs CGI
    # scripts as nobody, so the folder must be readable by everyone (pytest's tmp_path is not).
    served = Path(tempfile.mkdtemp(prefix="wikibot-served-"))
    served.chmod(0o755)
    (served / "cgi-bin").mkdir(parents=True)
    backend = served / "cgi-bin" / "git"
    backend.write_text(f"#!/bin/sh\nexport GIT_PROJECT_ROOT={served} GIT_HTTP_EXPORT_ALL=1\n"
                       "exec git -c safe.directory=* http-backend\n")
    backend.chmod(0o755)

    def serve(name: str, files: dict[str, bytes]) -> None:
        work = tmp_path / name
        work.mkdir()
        run_git("init", "-q", "-b", "main", cwd=work)
        for path, content in files.items():
            (work / path).write_bytes(content)
        if name == "bad":
            (work / "evil.md").symlink_to("/etc/passwd")
        run_git("add", "-A", cwd=work)
        run_git("commit", "-qm", name, cwd=work)
        run_git("clone", "-q", "--bare", str(work), str(served / f"{name}.git"))

    serve("bad", {"home.md": b"# Home\n"})
    serve("big", {"blob.bin": os.urandom(3 * 2**20)})
    port = free_port()
    httpd = subprocess.Popen(["python3", "-m", "http.server", "--cgi", str(port), "--bind", "127.0.0.1"],
                             cwd=served, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/cgi-bin/git"
    try:
        wait_until(lambda: subprocess.run(["git", "ls-remote", f"{base}/bad.git"],
                                          capture_output=True).returncode == 0, what="the dumb http server")
        cases = {
            f"{base}/bad.git": "symlink",
            f"http://127.0.0.1:{free_port()}/nothing.git": "cannot clone",
            "file:///etc": "only http and https",
            "ssh://git@127.0.0.1/x.git": "only http and https",
            base.replace("//", "//user:hunter2@") + "/missing.git": "has no commits",
        }
        for url, reason in cases.items():
            slug = unique("w")
            result = cli(server, "wiki", "create", f"{creator.name}/{slug}", "--template", url, **allow)
            assert result.returncode == 1 and reason in result.stderr, (url, result.stderr)
            assert "hunter2" not in result.stderr
            nothing_left(server, creator.name, slug)
        # too large: the limit is enforced while cloning
        slug = unique("w")
        result = cli(server, "wiki", "create", f"{creator.name}/{slug}", "--template",
                     f"{base}/big.git", WIKIBOT_MAX_TEMPLATE_MB="1", **allow)
        assert result.returncode == 1 and "larger than 1 MB" in result.stderr, result.stderr
        nothing_left(server, creator.name, slug)
    finally:
        httpd.terminate()
        httpd.wait()
        shutil.rmtree(served)
