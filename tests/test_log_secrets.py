"""No secret reaches a log or a message: tokens in every position git, the search API and MCP accept
them, cookies, and credentials inside a template URL, then every file the platform writes is searched."""
from __future__ import annotations

import base64
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from test_mcp import Mcp

from wikibot.access_log import ACCESS_FORMAT
from wikibot.bootstrap.create import create_wiki
from wikibot.gitd.names import WikiName
from wikibot.redaction import redact
from wikibot.testing.servers import (
    WIKIBOT,
    Server,
    commit_files,
    free_port,
    platform_config,
    run_git,
    start_server,
    stop_server,
    unique,
    wait_until,
)


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of our own, so its data dir and log hold only what this test did."""
    srv = start_server(tmp_path_factory.mktemp("log-secrets"))
    yield srv
    stop_server(srv)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def raw_request(server: Server, request_line: str, headers: dict[str, str]) -> bytes:
    """A request exactly as written, e.g. with an absolute-form target carrying user info."""
    lines = [request_line, f"Host: 127.0.0.1:{server.port}", "Connection: close",
             *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
        conn.sendall("\r\n".join(lines).encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *args],
                          capture_output=True, text=True, timeout=60)


def forms(secret: str) -> set[str]:
    """The secret and the parts of it that would still identify it in a log."""
    body = secret.removeprefix("wbt_")
    found = {secret, body, body[:16], body[-16:]}
    for user, password in ((secret, ""), ("x", secret), ("user", secret), ("wikibot", secret)):
        found.add(basic(user, password).split()[1])
    return found


def test_no_secret_is_logged_in_any_position(own_server: Server, tmp_path: Path) -> None:
    srv = own_server
    owner = unique("u")
    srv.core.add_user(owner, password="correct horse battery", tier="premium")
    _, token = srv.core.create_token(owner, scope="write")
    wiki, _ = create_wiki(srv.core, WikiName(owner, unique("w")), template="empty")
    name = wiki.name
    base = f"127.0.0.1:{srv.port}"
    cookie = "session=" + secrets.token_urlsafe(24)
    query_secret = secrets.token_urlsafe(24)
    template_password = "hunter2-" + secrets.token_urlsafe(12)
    template_query = secrets.token_urlsafe(24)
    messages: list[str] = []  # what clients were told

    # git: token as Basic password, as Basic user name (empty password), clone and push
    clone = tmp_path / "clone"
    run_git("clone", f"http://user:{token}@{base}/{name}.git", str(clone))
    commit_files(clone, {"home.md": "# Home\n"})
    pushed = run_git("push", f"http://{token}:@{base}/{name}.git", "HEAD:main", cwd=clone)
    messages += [pushed.stdout, pushed.stderr]
    assert run_git("ls-remote", f"http://{token}:@{base}/{name}.git").stdout.strip()
    # URL user info as curl sends it (user name = token), and a token in the request line itself
    for url in (f"http://{token}@{base}/{name}.git/info/refs?service=git-upload-pack",
                f"http://{token}:@{base}/{name}.git/info/refs?service=git-upload-pack"):
        assert curl(url).stdout == "200"
    answer = raw_request(srv, f"GET http://{token}@{base}/{name}.git/info/refs?service=git-upload-pack HTTP/1.1",
                         {"Authorization": basic(token, ""), "Cookie": cookie})
    messages.append(answer.decode(errors="replace"))

    # search API: bearer, Basic password, Basic user name, a cookie, a secret in the query string
    search = f"{srv.url}/api/wikis/{name}/search"
    for headers in ({"Authorization": f"Bearer {token}"}, {"Authorization": basic("x", token)},
                    {"Authorization": basic(token, ""), "Cookie": cookie}):
        r = requests.get(search, params={"q": "home", "access_token": query_secret}, headers=headers, timeout=60)
        assert r.status_code in (200, 503), r.text
        messages.append(r.text)

    # MCP: the real client with a bearer token, then a wrong, a revoked and an expired token
    mcp = Mcp(srv, name, token)
    try:
        assert mcp.ok("list_pages")
    finally:
        mcp.close()
    wrong = "wbt_" + secrets.token_urlsafe(32)
    revoked_record, revoked = srv.core.create_token(owner, scope="read")
    srv.core.revoke_token(revoked_record.id)
    _, expired = srv.core.create_token(owner, scope="read", expires_days=0.5 / 86400)
    time.sleep(1)
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                             "clientInfo": {"name": "t", "version": "1"}}}
    mcp_headers = {"Accept": "application/json, text/event-stream", "Cookie": cookie}
    for bad in (wrong, revoked, expired):
        for auth in (f"Bearer {bad}", basic(bad, "")):
            r = requests.post(f"{srv.url}/mcp/{name}", json=initialize, headers={**mcp_headers, "Authorization": auth},
                              timeout=60)
            assert r.status_code == 401, r.text
            messages += [r.text, r.headers.get("WWW-Authenticate", "")]
    for bad in (wrong, revoked, expired):  # git with a bad token as password and as user name
        for url in (f"http://user:{bad}@{base}/{name}.git", f"http://{bad}:@{base}/{name}.git"):
            failed = run_git("ls-remote", url, check=False)
            assert failed.returncode != 0
            messages.append(failed.stderr)

    # a template URL with credentials and a secret query that fails (our server refuses them)
    env = {**os.environ, "WIKIBOT_DATA": str(srv.data), "WIKIBOT_ALLOW_PRIVATE_URLS": "1"}
    for where in (f"{base}/{owner}/nothing.git", f"127.0.0.1:{free_port()}/x.git"):
        url = f"http://user:{template_password}@{where}?private_token={template_query}"
        created = subprocess.run([*WIKIBOT, "wiki", "create", f"{owner}/{unique('w')}", "--template", url],
                                 env=env, capture_output=True, text=True, timeout=300)
        assert created.returncode == 1, created.stdout + created.stderr
        messages += [created.stdout, created.stderr]

    log = srv.data / "serve.log"
    # the access log is written (so this test can fail): request lines of each surface appear
    wait_until(lambda: f'"POST /mcp/{name}' in log.read_text(errors="replace"), what="the MCP request logged")
    text = log.read_text(errors="replace")
    expected = (f'"GET /{name}.git/info/refs?', f'"POST /{name}.git/git-receive-pack',
                f'"GET /api/wikis/{name}/search?')
    for line in expected:
        assert line in text, f"no access log line {line!r} in {log}"

    all_secrets = [token, wrong, revoked, expired, cookie.split("=", 1)[1], query_secret, template_password,
                   template_query]
    leaks = []
    for path in sorted(p for p in srv.data.rglob("*") if p.is_file()):
        data = path.read_bytes()
        leaks += [f"{path.relative_to(srv.data)}: {form!r}" for s in all_secrets for form in forms(s)
                  if form.encode() in data]
    for message in messages:
        leaks += [f"a message: {form!r} in {message[:300]!r}" for s in all_secrets for form in forms(s)
                  if form in message]
    assert not leaks, "secrets written where they must not be:\n" + "\n".join(leaks)



@pytest.mark.parametrize("text, kept, gone", [
    ('"GET http://wbt_abc-DEF_1@h:80/o/w.git/info/refs?service=git-upload-pack HTTP/1.1"',
     ["/o/w.git/info/refs?service=git-upload-pack"], ["wbt_abc-DEF_1"]),
    ("fatal: unable to access 'https://bob:hunter2@h.example/a.git?private_token=s3cr3t&x=1/': 403",
     ["https://[redacted]@h.example/a.git?private_token=[redacted]&x=[redacted]"], ["hunter2", "s3cr3t", "bob"]),
    ("/api/wikis/o/w/search?q=salary+of+bob&mode=keyword&limit=5", ["mode=keyword&limit=5"], ["salary"]),
    ("headers: Authorization: Basic dXNlcjpwYXNzd29yZA==", ["Authorization: [redacted]"], ["dXNlcjpwYXNzd29yZA"]),
    ("sent bearer abcdefghijklmnop and cookie=sess1on-value", [], ["abcdefghijklmnop", "sess1on-value"]),
    ("/x.git?OPAQUESECRET", ["/x.git?[redacted]"], ["OPAQUESECRET"]),
    ("wiki o/w: 3 page(s) changed at 0123abcd (what?)", ["wiki o/w: 3 page(s) changed at 0123abcd"], []),
    # quoted keys, as a dict or a list of ASGI header pairs is printed
    ("headers {'Cookie': 'session=s3ss10n-v4lue', 'Host': 'h'}", ["'Cookie': [redacted]"], ["s3ss10n-v4lue"]),
    ("[(b'host', b'h'), (b'cookie', b'session=s3ss10n-v4lue')]", ["(b'host', b'h')"], ["s3ss10n-v4lue"]),
    ('{"authorization": "Token abcdefgh12345678"}', [], ["abcdefgh12345678"]),
    ("environ {'HTTP_AUTHORIZATION': 'Token abcdefgh12345678'}", [], ["abcdefgh12345678"]),
    ("environ {'HTTP_COOKIE': 'session=s3ss10n-v4lue'}", [], ["s3ss10n-v4lue"]),
    # a URL password holding '@' or a quote
    ("cloning https://bob:p@ss@w0rd@h.example/a.git failed", ["https://[redacted]@h.example/a.git"],
     ["bob", "p@ss", "ss@w0rd", "w0rd"]),
    ("fatal: unable to access 'https://bob:it'sHunter2@h.example/a.git/'", ["[redacted]@h.example/a.git"],
     ["bob", "sHunter2"]),
    # token headers other than Authorization
    ("PRIVATE-TOKEN: glpat-s3cr3tvalue", ["PRIVATE-TOKEN: [redacted]"], ["glpat-s3cr3tvalue"]),
    ("X-Api-Key: k3y-s3cr3tvalue", ["X-Api-Key: [redacted]"], ["k3y-s3cr3tvalue"]),
    ("{'x-api-key': 'k3y-s3cr3tvalue'}", [], ["k3y-s3cr3tvalue"]),
])
def test_redact(text: str, kept: list[str], gone: list[str]) -> None:
    out = redact(text)
    assert all(k in out for k in kept) and not any(g in out for g in gone), out


def test_the_access_format_names_no_user_referer_or_header() -> None:
    assert not any(atom in ACCESS_FORMAT for atom in ("%(u)s", "%(f)s", "}i)s", "}e)s", "%(q)s"))


def test_every_handler_of_every_logger_redacts_once_the_app_is_loaded(tmp_path: Path, capsys) -> None:
    """fastmcp installs its own (rich) handlers on `fastmcp`, which does not propagate to the root
    logger that gunicorn made redacting; once the app is loaded, its lines are redacted too."""
    import logging

    from wikibot.app import create_app

    create_app(platform_config(tmp_path / "data"))
    token = "wbt_" + secrets.token_urlsafe(32)
    library = logging.getLogger("fastmcp.server.test")
    assert not logging.getLogger("fastmcp").propagate and logging.getLogger("fastmcp").handlers
    library.warning("request from %s with cookie=%s", f"http://{token}@h/x", "sess-" + token[4:])
    try:
        raise RuntimeError(f"tool failed for Authorization: Bearer {token}")
    except RuntimeError:
        library.exception("tool error")
    written = capsys.readouterr()
    out = written.out + written.err
    assert "tool error" in out and "RuntimeError" in out, out  # the lines were written
    assert token[4:] not in out and token[4:20] not in out, out


def test_access_log_atoms_hide_every_token_header() -> None:
    """An admin's access format naming a token header (`%({x-api-key}i)s`) logs it hidden."""
    import datetime
    from types import SimpleNamespace

    from gunicorn.config import Config as GunicornConfig

    from wikibot.access_log import GunicornLogger

    logger = GunicornLogger(GunicornConfig())
    headers = [("PRIVATE-TOKEN", "glpat-s3cr3t"), ("X-Api-Key", "k3y-s3cr3t"), ("Cookie", "session=s3ss"),
               ("Accept", "text/plain")]
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/x", "SERVER_PROTOCOL": "HTTP/1.1",
               "HTTP_X_API_KEY": "k3y-s3cr3t", "HTTP_PRIVATE_TOKEN": "glpat-s3cr3t"}
    resp = SimpleNamespace(status="200 OK", sent=0, headers=[("Set-Cookie", "session=s3ss")])
    atoms = logger.atoms(resp, SimpleNamespace(headers=headers), environ, datetime.timedelta(seconds=1))
    assert atoms["{accept}i"] == "text/plain"
    for key in ("{private-token}i", "{x-api-key}i", "{cookie}i", "{set-cookie}o", "{http_x_api_key}e",
                "{http_private_token}e"):
        assert atoms[key] == "[redacted]", key
