"""The front router in-process: the platform's URL table, each surface's access answers and the names
the URL space reserves, through werkzeug's test client (no gunicorn, no worker, no model)."""
from __future__ import annotations

import base64
import json

import pytest
from werkzeug.test import Client

from wikibot.app import Platform, routes
from wikibot.gitd.core import Core
from wikibot.gitd.names import RESERVED_NAMES, InvalidName, WikiName
from wikibot.testing.servers import platform_config
from wikibot.wiring import open_core

NOTES = WikiName("alice", "notes")  # private
OPEN = WikiName("alice", "open")  # public
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def core(tmp_path_factory) -> Core:
    core = open_core(platform_config(tmp_path_factory.mktemp("router") / "data"))
    core.initialise()
    for user in ("alice", "dave"):
        core.add_user(user, password=PASSWORD, tier="premium")
    core.create_wiki(NOTES)
    core.create_wiki(OPEN, public=True)
    return core


@pytest.fixture(scope="module")
def client(core) -> Client:
    return Client(Platform(routes(core)))


@pytest.fixture(scope="module")
def tokens(core) -> dict[str, str]:
    return {
        "alice": core.create_token("alice", "write")[1],
        "alice-notes": core.create_token("alice", "write", wikis=[NOTES])[1],
        "dave": core.create_token("dave", "write")[1],
    }


def basic(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"git:{secret}".encode()).decode()}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# the table
def test_landing(client):
    got = client.get("/")
    assert got.status_code == 200 and got.mimetype == "text/html"
    assert "git clone http://127.0.0.1:8080/OWNER/WIKI.git" in got.text and 'href="/-/login"' in got.text


@pytest.mark.parametrize("path", ["/nothing", "/alice", "/alice/notes.git", "/mcp", "/Alice/notes/"])
def test_unknown_paths_are_not_found(client, path):
    got = client.get(path)
    assert (got.status_code, got.text) == (404, "not found\n")


def test_unknown_platform_pages_are_not_found(client):
    assert client.get("/-/x").status_code == 404


# git smart HTTP
INFO_REFS = "/alice/notes.git/info/refs?service=git-upload-pack"


def test_git_challenges_for_a_private_wiki(client):
    got = client.get(INFO_REFS)
    assert got.status_code == 401
    assert got.headers["WWW-Authenticate"] == 'Basic realm="wikibot", charset="UTF-8"'
    assert "personal access token as the password" in got.text


def test_git_does_not_reveal_a_private_wiki(client, tokens):
    private = client.get(INFO_REFS, headers=basic(tokens["dave"]))
    missing = client.get("/alice/nope.git/info/refs?service=git-upload-pack", headers=basic(tokens["dave"]))
    assert (private.status_code, private.text) == (missing.status_code, missing.text) == (
        404, "wikibot: repository not found\n")


def test_git_advertises_refs_to_the_owner(client, tokens):
    got = client.get(INFO_REFS, headers=basic(tokens["alice"]))
    assert got.status_code == 200
    assert got.headers["Content-Type"] == "application/x-git-upload-pack-advertisement"
    assert got.headers["Cache-Control"] == "no-cache, max-age=0, must-revalidate"
    assert got.data.startswith(b"001e# service=git-upload-pack\n0000")


def test_git_serves_a_public_wiki_to_anyone(client):
    got = client.get("/alice/open.git/info/refs?service=git-upload-pack")
    assert got.status_code == 200
    assert got.data.startswith(b"001e# service=git-upload-pack\n0000")


@pytest.mark.parametrize("owner", ["mcp", "api"])
def test_git_serves_users_named_before_their_name_was_reserved(tmp_path, owner):
    """Routes match git first: `/mcp/notes.git/` is a wiki of a user called `mcp` made by an older version."""
    core = open_core(platform_config(tmp_path / "data"))
    core.initialise()
    client = Client(Platform(routes(core)))
    core.add_user(owner, password=PASSWORD, platform_account=True)  # how such a user exists today
    core.create_wiki(WikiName(owner, "notes"))
    secret = core.create_token(owner, "write")[1]
    got = client.get(f"/{owner}/notes.git/info/refs?service=git-upload-pack", headers=basic(secret))
    assert got.status_code == 200, got.text
    assert got.data.startswith(b"001e# service=git-upload-pack\n0000")


def test_git_push_to_a_public_wiki_needs_a_token(client):
    got = client.get("/alice/open.git/info/refs?service=git-receive-pack")
    assert got.status_code == 401
    assert got.headers["WWW-Authenticate"].startswith("Basic ")


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("POST", INFO_REFS, "GET"),
    ("GET", "/alice/notes.git/git-upload-pack", "POST"),
    ("GET", "/alice/notes.git/git-receive-pack", "POST"),
])
def test_git_wrong_method(client, method, path, allow):
    got = client.open(path, method=method)
    assert got.status_code == 405
    assert got.headers["Allow"] == allow


def test_git_dumb_http_is_refused(client, tokens):
    got = client.get("/alice/notes.git/info/refs", headers=basic(tokens["alice"]))
    assert got.status_code == 403
    assert "smart HTTP protocol only" in got.text


# the search API
SEARCH = "/api/wikis/alice/notes/search?q=hello"


def test_search_challenges_anonymous_callers(client):
    got = client.get(SEARCH)
    assert got.status_code == 401
    assert got.headers["WWW-Authenticate"] == 'Basic realm="wikibot", charset="UTF-8"'
    assert got.headers["Content-Type"] == "application/json"
    assert got.json == {"error": "authentication required"}


def test_search_does_not_reveal_a_private_wiki(client, tokens):
    for path in (SEARCH, "/api/wikis/alice/nope/search?q=hello"):
        got = client.get(path, headers=basic(tokens["dave"]))
        assert (got.status_code, got.json) == (404, {"error": "wiki not found"}), path
        assert "WWW-Authenticate" not in got.headers


def test_search_bad_token(client):
    got = client.get(SEARCH, headers=bearer("wbt_" + "x" * 43))
    assert (got.status_code, got.json) == (401, {"error": "unknown or revoked token"})
    assert got.headers["WWW-Authenticate"].startswith("Basic ")


def test_search_wrong_method(client, tokens):
    got = client.post(SEARCH, headers=basic(tokens["alice"]))
    assert (got.status_code, got.json, got.headers["Allow"]) == (405, {"error": "use GET"}, "GET")


def test_search_unknown_path(client):
    got = client.get("/api/wikis/alice/notes")
    assert (got.status_code, got.json) == (404, {"error": "not found"})


@pytest.mark.parametrize(("path", "who"), [(SEARCH, "alice"), ("/api/wikis/alice/open/search?q=hi", None)])
def test_search_passes_access_and_finds_no_worker(client, tokens, path, who):
    """No worker runs here: a 503 with Retry-After proves the route and the access check let it through."""
    got = client.get(path, headers=basic(tokens[who]) if who else {})
    assert got.status_code == 503
    assert got.headers["Retry-After"] == "5"
    assert got.headers["Content-Type"] == "application/json"
    assert "search service is not answering" in got.json["error"]


def test_search_limit_must_be_a_number(client, tokens):
    got = client.get(SEARCH + "&limit=ten", headers=basic(tokens["alice"]))
    assert (got.status_code, got.json) == (400, {"error": "limit must be a whole number"})
    assert "Retry-After" not in got.headers


# MCP
def rpc_message(got) -> str:
    doc = json.loads(got.data)
    assert (doc["jsonrpc"], doc["id"], doc["error"]["code"]) == ("2.0", None, -32600)
    return doc["error"]["message"]


def test_mcp_takes_post_only(client, tokens):
    got = client.get("/mcp/alice/notes", headers=bearer(tokens["alice"]))
    assert (got.status_code, got.headers["Allow"]) == (405, "POST")
    assert rpc_message(got) == "this MCP endpoint takes POST requests"


def test_mcp_unknown_path(client):
    got = client.post("/mcp/alice")
    assert got.status_code == 404
    assert rpc_message(got) == "not an MCP endpoint: use /mcp/OWNER/WIKI"


@pytest.mark.parametrize("wiki", ["alice/notes", "alice/open"])
def test_mcp_without_a_token(client, wiki):
    got = client.post(f"/mcp/{wiki}", json={})
    assert got.status_code == 401
    metadata = f"http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp/{wiki}"
    assert got.headers["WWW-Authenticate"] == f'Bearer realm="wikibot", resource_metadata="{metadata}", ' \
                                              'scope="read write"'
    assert "connect with OAuth" in rpc_message(got) and "personal access token" in rpc_message(got)


def test_mcp_bad_token(client):
    got = client.post("/mcp/alice/notes", json={}, headers=bearer("wbt_" + "x" * 43))
    assert got.status_code == 401
    metadata = "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp/alice/notes"
    assert got.headers["WWW-Authenticate"] == (f'Bearer realm="wikibot", resource_metadata="{metadata}", '
                                               'scope="read write", error="invalid_token", '
                                               'error_description="unknown or revoked token"')
    assert rpc_message(got) == "unknown or revoked token"


def test_mcp_limited_token_on_a_public_wiki(client, tokens):
    got = client.post("/mcp/alice/open", json={}, headers=bearer(tokens["alice-notes"]))
    assert got.status_code == 403
    assert "WWW-Authenticate" not in got.headers
    assert rpc_message(got) == "this token is limited to alice/notes; create one that includes alice/open"


def test_mcp_serves_a_token_holder(client, tokens):
    """Past the access check the request reaches FastMCP: `initialize` answers with the server's name."""
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2025-03-26", "capabilities": {},
                        "clientInfo": {"name": "test", "version": "1"}}}
    got = client.post("/mcp/alice/open", json=hello, headers={**bearer(tokens["dave"]),
                                                              "Accept": "application/json, text/event-stream"})
    assert got.status_code == 200
    assert got.json["result"]["serverInfo"]["name"] == "wikibot"


def test_mcp_does_not_reveal_a_private_wiki(client, tokens):
    for wiki in ("alice/notes", "alice/nope"):
        got = client.post(f"/mcp/{wiki}", json={}, headers=bearer(tokens["dave"]))
        assert got.status_code == 404
        assert rpc_message(got) == f"wiki {wiki} not found"


# reserved names
@pytest.mark.parametrize("name", sorted(RESERVED_NAMES))
def test_reserved_names_are_refused_as_user_names(core, name):
    with pytest.raises(InvalidName, match=f"user name '{name}' is reserved for the platform's own pages"):
        core.add_user(name, password=PASSWORD)
    assert core.store.get_user(name) is None


@pytest.mark.parametrize("slug", ["settings", "mcp", "api", "admin", "token"])
def test_reserved_names_are_refused_as_wiki_names(core, slug):
    with pytest.raises(InvalidName, match=f"wiki name '{slug}' is reserved for the platform's own pages"):
        core.create_wiki(WikiName("alice", slug))
    assert core.store.get_wiki(WikiName("alice", slug)) is None
    assert not core.repos.path(WikiName("alice", slug)).exists()


def test_a_normal_name_works(core):
    core.add_user("mcp-fan", password=PASSWORD)
    wiki = core.create_wiki(WikiName("mcp-fan", "settings-notes"))
    assert wiki.name == WikiName("mcp-fan", "settings-notes")
    assert core.repos.exists(wiki.name)
