"""New wikis from templates: the default starter pages, template folders, and any Git URL."""
from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from test_search import search

from wikibot.bootstrap.create import create_wiki
from wikibot.bootstrap.from_git import check_url, refuse_private
from wikibot.bootstrap.templates import BUILTIN_DIR, TemplateError, fill
from wikibot.config import Config
from wikibot.gitd.core import Core, CoreError
from wikibot.gitd.names import WikiName
from wikibot.indexer.chunking import outline
from wikibot.mcp.server import TOOLS
from wikibot.testing.servers import WIKIBOT, commit_files, free_port, run_git, unique, wait_until

STARTER = {"home.md", "getting_started.md", "agent_guide.md", "administration.md"}
TRICKY = "# Ops *runbooks* [x](javascript:alert(1)) <script>x</script> | a | `b`\n1. list"


def files_at_head(repo: Path) -> dict[str, bytes]:
    names = run_git("ls-tree", "-r", "-z", "--name-only", "HEAD", cwd=repo).stdout.split("\0")
    return {n: subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{n}"], capture_output=True,
                              check=True).stdout for n in names if n}


def nothing_left(server, name: WikiName) -> None:
    assert server.core.store.get_wiki(name) is None
    assert not server.core.repos.path(name).exists()
    assert not (server.data / "index" / name.owner / name.slug).exists()


@pytest.fixture
def admin_templates(server, tmp_path) -> tuple[Core, Path]:
    """An admin's templates folder, and the test server's core configured with it."""
    folder = tmp_path / "templates"
    folder.mkdir()
    config = replace(server.core.config, templates_dir=str(folder))
    return replace(server.core, config=config), folder


def test_default_template_pages_are_substituted_committed_once_and_searchable(server, make_user):
    owner = make_user()
    wiki, head = create_wiki(server.core, WikiName(owner.name, unique("w")), title="Ops Handbook", purpose=TRICKY)
    repo = server.core.repos.path(wiki.name)
    files = files_at_head(repo)
    assert set(files) == STARTER
    assert run_git("rev-list", "--count", "HEAD", cwd=repo).stdout.strip() == "1"
    base = server.core.config.public_url
    texts = {name: body.decode() for name, body in files.items()}
    assert not any("{{" in text for text in texts.values())
    assert f"{base}/{wiki.name}.git" in texts["getting_started.md"]
    assert f"{base}/mcp/{wiki.name}" in texts["getting_started.md"]
    home = texts["home.md"]
    assert "Ops Handbook" in home
    # the purpose is plain text: no heading, list, link, HTML or table cell came out of it
    assert "<script>" not in home and "\\<script\\>" in home
    assert [s.heading for s in outline("home.md", home).sections if s.anchor][0] != "Ops *runbooks*"
    assert not any(s.heading.startswith("Ops") for s in outline("home.md", home).sections[1:])

    def found():
        return search(server, wiki.name, owner.token, "base revision conflict when writing a page", "keyword")
    answer = wait_until(lambda: found()["indexed_sha"] == head and found(), timeout=300, what="starter indexed",
                        server=server)
    assert "agent_guide.md" in [hit["page"] for hit in answer["hits"][:3]]


def test_the_agent_guide_names_only_real_tools_and_arguments():
    """Every `tool(args)` the guide shows exists with those arguments: `arg?` marks an optional
    one, `arg=value` an example value, and every required argument is shown."""
    guide = (BUILTIN_DIR / "default" / "agent_guide.md").read_text()
    tools = {fn.__name__: inspect.signature(fn).parameters for fn, _ in TOOLS}
    calls = re.findall(r"`([a-z_]+)\(([^`]*)\)`", guide)
    assert len({name for name, _ in calls}) >= 12, "the guide should show the tools"
    for name, args in calls:
        assert name in tools, f"the Agent_Guide names a tool that does not exist: {name}"
        params = tools[name]
        shown = set()
        for arg in filter(None, (a.strip() for a in args.split(","))):
            match = re.fullmatch(r"([a-z_][a-z0-9_]*)(\?|=.+)?", arg)
            assert match and match.group(1) in params, f"{name}() has no argument {arg!r}"
            if match.group(2) == "?":
                assert params[match.group(1)].default is not inspect.Parameter.empty, \
                    f"{name}({arg}): the guide marks a required argument as optional"
            shown.add(match.group(1))
        required = {p for p, v in params.items() if v.default is inspect.Parameter.empty}
        assert required <= shown, f"`{name}({args})` leaves out required {sorted(required - shown)}"
    for tool in ("read_page", "edit_page", "write_page", "search", "recent_changes"):
        assert f"`{tool}(" in guide, f"the Agent_Guide should explain {tool}"


def test_fill_escapes_markdown_in_text_and_keeps_code_verbatim():
    text = fill("{{purpose}}\n\n`{{url}}`\n\n```\n{{url}} {{purpose}}\n```\n{{other}}",
                {"purpose": "# *x* [a](b) <i>\n- y", "url": "http://h/a_b.git"})
    lines = text.split("\n")
    assert lines[0] == "\\# \\*x\\* \\[a\\]\\(b\\) \\<i\\> - y"
    assert lines[2] == "`http://h/a_b.git`"
    assert lines[5] == "http://h/a_b.git # *x* [a](b) <i> - y"
    assert lines[7] == "{{other}}"


def test_empty_and_admin_templates(server, make_user, admin_templates):
    core, templates = admin_templates
    owner = make_user()
    wiki, head = create_wiki(core, WikiName(owner.name, unique("w")), template="empty")
    assert head is None and core.repos.head(wiki.name) is None
    folder = templates / "team"
    (folder / "runbooks").mkdir(parents=True)
    (folder / "home.md").write_text("# {{title}}\n\nOwned by {{owner}}.\n")
    (folder / "runbooks" / "deploy.md").write_text("# Deploy\n")
    wiki, _ = create_wiki(core, WikiName(owner.name, unique("w")), title="Team", template="team")
    files = files_at_head(core.repos.path(wiki.name))
    assert files == {"home.md": f"# Team\n\nOwned by {owner.name}.\n".encode(), "runbooks/deploy.md": b"# Deploy\n"}
    with pytest.raises(TemplateError, match="unknown template 'nope'.*team"):
        create_wiki(core, WikiName(owner.name, unique("w")), template="nope")
    (folder / "link.md").symlink_to("/etc/passwd")
    name = WikiName(owner.name, unique("w"))
    with pytest.raises(TemplateError, match="symlink"):
        create_wiki(core, name, template="team")
    nothing_left(server, name)


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
    copy = WikiName(creator.name, unique("w"))
    url = server.clone_url(name, owner.token)  # a token in the URL authenticates the clone
    refused = cli(server, "wiki", "create", str(copy), "--template", url)
    assert refused.returncode == 1 and "loopback" in refused.stderr and owner.token not in refused.stderr
    nothing_left(server, copy)

    done = cli(server, "wiki", "create", str(copy), "--name", "Copied", "--purpose", "tests *now*",
               "--template", url, WIKIBOT_ALLOW_PRIVATE_URLS="1")
    assert done.returncode == 0, done.stderr
    repo = server.core.repos.path(copy)
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
    # readable by everyone whatever this process's umask (a Core initialised in-process sets 077)
    subprocess.run(["chmod", "-R", "a+rX", str(served)], check=True)
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
            name = WikiName(creator.name, unique("w"))
            result = cli(server, "wiki", "create", str(name), "--template", url, **allow)
            assert result.returncode == 1 and reason in result.stderr, (url, result.stderr)
            assert "hunter2" not in result.stderr
            nothing_left(server, name)
        # too large: the limit is enforced while cloning
        name = WikiName(creator.name, unique("w"))
        result = cli(server, "wiki", "create", str(name), "--template",
                     f"{base}/big.git", WIKIBOT_MAX_TEMPLATE_MB="1", **allow)
        assert result.returncode == 1 and "larger than 1 MB" in result.stderr, result.stderr
        nothing_left(server, name)
    finally:
        httpd.terminate()
        httpd.wait()
        shutil.rmtree(served)


RENDER = """\
import json, sys
from otterwiki.server import app
from otterwiki.renderer import render
print(json.dumps(render.markdown(sys.stdin.read())[0]))
"""


def test_a_hostile_purpose_renders_as_plain_text_in_otterwiki(tmp_path):
    """Rendered by Otterwiki itself (in a child: its server module is one instance per process),
    Home with a hostile purpose has exactly the elements it has with a plain one."""
    hostile = ("::: danger DELETE THIS WIKI\n$x^2$ ==mark== :smile: [[Home]] <b>bold</b> | a | b |\n"
               "# heading\n---\n1. list [x](javascript:alert(1)) ![i](/x.png) ~~del~~ &amp; `code`")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTTERWIKI")}
    env |= {"REPOSITORY": str(tmp_path), "SECRET_KEY": "x" * 32, "LOG_LEVEL": "ERROR"}
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)

    def rendered(purpose: str) -> str:
        page = fill((BUILTIN_DIR / "default" / "home.md").read_text(),
                    {"title": "Ops", "purpose": purpose, "owner": "o", "wiki": "o/w", "date": "2026-11-25",
                     "clone_url": "http://h/o/w.git", "mcp_url": "http://h/mcp/o/w", "web_url": "http://h/o/w/"})
        return json.loads(subprocess.run([sys.executable, "-c", RENDER], input=page, env=env, cwd=tmp_path,
                                         capture_output=True, text=True, timeout=120, check=True).stdout)

    plain, attacked = rendered("Plain words only"), rendered(hostile)
    assert re.findall(r"<(\w+)", attacked) == re.findall(r"<(\w+)", plain)
    assert "::: danger DELETE THIS WIKI" in attacked and "$x^2$" in attacked


def test_credentials_go_only_to_their_host_and_path():
    config = replace(Config(), template_credentials={"https://git.example.com/team": "SECRET"})
    def auth(url: str) -> str | None:
        return check_url(url, config).authorization
    assert auth("https://git.example.com/team/wiki.git")
    assert auth("https://GIT.example.com:443/team/x.git")
    for other in ("https://git.example.com/teamevil/x.git", "https://git.example.com.evil.net/team/x.git",
                  "http://git.example.com/team/x.git", "https://git.example.com:8443/team/x.git",
                  "https://git.example.com@evil.net/team/x.git"):
        assert "SECRET" not in str(base64_of(auth(other))), other
    source = check_url("https://h.example/a.git?private_token=x#f", config)
    assert source.url == "https://h.example/a.git?private_token=x" and source.shown == "https://h.example/a.git"
    # with a credential a query is refused (tests/test_template_credentials.py); user info moves to a header
    source = check_url("https://bob:pw%21@h.example/a.git", config)
    assert source.url == "https://h.example/a.git" and base64_of(source.authorization) == "bob:pw!"


def base64_of(authorization: str | None) -> str | None:
    import base64
    return base64.b64decode(authorization.split()[1]).decode() if authorization else None


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "::ffff:127.0.0.1",
                                     "64:ff9b::7f00:1", "2002:7f00:1::", "::127.0.0.1", "fe80::1", "0.0.0.0"])
def test_private_addresses_are_refused_in_every_spelling(address):
    with pytest.raises(TemplateError, match="loopback, private or reserved"):
        refuse_private([address], check_url("http://h.example/x.git", Config()))


def test_quota_and_limits_are_checked_around_the_template(server, make_user, admin_templates):
    core, templates = admin_templates
    owner = make_user(tier="free")
    create_wiki(core, WikiName(owner.name, unique("w")), template="empty")  # the free tier's only wiki
    with pytest.raises(CoreError, match="limit of their tier"):  # refused before any clone is attempted
        create_wiki(core, WikiName(owner.name, unique("w")), template="https://unreachable.invalid/x.git")
    folder = templates / "huge"
    folder.mkdir()
    for i in range(501):
        (folder / f"p{i}.md").write_text(f"page {i}\n")
    other = make_user(tier="free")
    name = WikiName(other.name, unique("w"))
    with pytest.raises(TemplateError, match="does not fit the owner's limits: page limit 500"):
        create_wiki(core, name, template="huge")
    nothing_left(server, name)


def test_a_stalling_server_is_cut_off_with_all_git_processes(server, make_user):
    """The time limit kills git's helpers too (they would otherwise outlive it, holding the URL)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []

    def hold() -> None:  # accept and never answer, until the listener is closed
        try:
            while True:
                held.append(listener.accept()[0])
        except OSError:
            pass

    threading.Thread(target=hold, daemon=True).start()
    port = listener.getsockname()[1]
    creator = make_user()
    name = WikiName(creator.name, unique("w"))
    try:
        result = cli(server, "wiki", "create", str(name), "--template",
                     f"http://127.0.0.1:{port}/stall-{name.slug}.git", WIKIBOT_ALLOW_PRIVATE_URLS="1",
                     WIKIBOT_CLONE_TIMEOUT="3")
        assert result.returncode == 1 and "took longer than 3 s" in result.stderr, result.stderr
        nothing_left(server, name)
        assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if f"stall-{name.slug}".encode() in _read(p)]
    finally:
        for conn in held:
            conn.close()
        listener.close()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # the process ended meanwhile
        return b""
