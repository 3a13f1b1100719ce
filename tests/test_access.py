"""The HTTP access layer in-process: `credentials`, `authenticate`, `decide` and `access` over a real
store, for every kind of caller git, MCP and the search API meet. No server: each case is a call."""
from __future__ import annotations

import base64
import time
from dataclasses import dataclass

import pytest

from wikibot.gitd.acl import TOUCH_INTERVAL, Action, BadToken, Verdict, authenticate, decide
from wikibot.gitd.core import Core
from wikibot.gitd.http_access import Caller, Refusal, access, challenge, credentials
from wikibot.gitd.names import WikiName
from wikibot.testing.servers import platform_config
from wikibot.wiring import open_core

NOTES = WikiName("alice", "notes")  # private: alice owns it, bob edits, carol views
OPEN = WikiName("alice", "open")  # public, no grants
OTHER = WikiName("alice", "other")  # private, no grants
PUB = WikiName("bob", "pub")  # public, of another owner
MISSING = WikiName("alice", "nope")
WIKIS = (NOTES, OPEN, OTHER, PUB, MISSING)
BASIC = 'Basic realm="wikibot", charset="UTF-8"'
READ, WRITE = Action.READ, Action.WRITE


@dataclass(frozen=True)
class World:
    core: Core
    secrets: dict[str, str]  # who -> token secret


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    core = open_core(platform_config(tmp_path_factory.mktemp("access") / "data"))
    core.initialise()
    for user in ("alice", "bob", "carol", "dave"):
        core.add_user(user, password="correct horse battery", tier="premium")
    core.create_wiki(NOTES)
    core.create_wiki(OPEN, public=True)
    core.create_wiki(OTHER)
    core.create_wiki(PUB, public=True)
    core.grant(NOTES, "bob", "editor")
    core.grant(NOTES, "carol", "viewer")
    tokens = {
        "alice": core.create_token("alice", "write"),
        "alice-read": core.create_token("alice", "read"),
        "alice-other": core.create_token("alice", "write", wikis=[OTHER]),  # limited to OTHER
        "alice-dated": core.create_token("alice", "write", expires_days=1),
        "bob": core.create_token("bob", "write"),
        "carol": core.create_token("carol", "write"),
        "dave": core.create_token("dave", "write"),
        "dave-open": core.create_token("dave", "write", wikis=[OPEN]),  # limited to a public wiki
    }
    return World(core, {who: secret for who, (_, secret) in tokens.items()})


def basic(secret: str, user: str = "git") -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def ask(world: World, who: str | None, name: WikiName, action: Action, **kw) -> Caller | Refusal:
    """`access` as git asks it (Basic), or as `kw` says; `who` None is anonymous."""
    environ = {} if who is None else basic(world.secrets[who])
    kw.setdefault("scheme", "Basic")
    return access(world.core.store, environ, name, action, **kw)


def allowed(role: str | None, actor: str | None, refusal: str | None = None) -> tuple:
    return ("allow", role, actor, refusal)


MATRIX = [
    # anonymous: a private (or missing) wiki is a challenge, a public one is read-only
    (None, NOTES, READ, (401, "authentication required")),
    (None, NOTES, WRITE, (401, "authentication required")),
    (None, MISSING, READ, (401, "authentication required")),
    (None, OPEN, READ, allowed(None, None, "authentication required to write")),
    (None, OPEN, WRITE, (401, "authentication required to write")),
    # roles
    ("alice", NOTES, READ, allowed("owner", "alice")),
    ("alice", NOTES, WRITE, allowed("owner", "alice")),
    ("bob", NOTES, READ, allowed("editor", "bob")),
    ("bob", NOTES, WRITE, allowed("editor", "bob")),
    ("carol", NOTES, READ, allowed("viewer", "carol", "you have read-only access to alice/notes (viewer)")),
    ("carol", NOTES, WRITE, (403, "you have read-only access to alice/notes (viewer)")),
    ("dave", NOTES, READ, (404, "wiki alice/notes not found")),
    ("dave", NOTES, WRITE, (404, "wiki alice/notes not found")),
    ("dave", OPEN, READ, allowed(None, "dave", "you have read-only access to alice/open")),
    ("dave", OPEN, WRITE, (403, "you have read-only access to alice/open")),
    ("dave", MISSING, READ, (404, "wiki alice/nope not found")),
    ("alice-dated", NOTES, WRITE, allowed("owner", "alice")),
    # a read-scope token
    ("alice-read", NOTES, READ, allowed("owner", "alice", "this token is read-only (scope 'read'); "
                                                        "create a write token to change alice/notes")),
    ("alice-read", NOTES, WRITE, (403, "this token is read-only (scope 'read'); "
                                       "create a write token to change alice/notes")),
    # a token limited to other wikis: an anonymous reader of public wikis, told it is limited when it writes to one;
    # of private wikis it learns nothing, not even which its holder can reach
    ("alice-other", OTHER, WRITE, allowed("owner", "alice")),
    ("alice-other", OPEN, READ, allowed(None, None, "this token is limited to alice/other; "
                                                  "create one that includes alice/open")),
    ("alice-other", OPEN, WRITE, (403, "this token is limited to alice/other; create one that includes alice/open")),
    ("alice-other", NOTES, READ, (404, "wiki alice/notes not found")),  # not even which private wikis it could reach
    ("alice-other", MISSING, READ, (404, "wiki alice/nope not found")),
    ("dave-open", PUB, READ, allowed(None, None, "this token is limited to alice/open; "
                                                 "create one that includes bob/pub")),
    ("dave-open", PUB, WRITE, (403, "this token is limited to alice/open; create one that includes bob/pub")),
    ("dave-open", NOTES, READ, (404, "wiki alice/notes not found")),
    ("dave-open", OPEN, READ, allowed(None, "dave", "you have read-only access to alice/open")),
]


@pytest.mark.parametrize(("who", "name", "action", "expected"), MATRIX,
                         ids=[f"{w}-{n}-{a.value}" for w, n, a, _ in MATRIX])
def test_access_matrix(world, who, name, action, expected):
    got = ask(world, who, name, action)
    if expected[0] == "allow":
        _, role, actor, refusal = expected
        assert isinstance(got, Caller), got
        assert (got.name, got.role, got.actor, got.write_refusal) == (name, role, actor, refusal)
        assert (got.token is None) == (got.user is None)  # a token limited elsewhere is not carried on
        if got.token is not None:
            assert got.token.user == actor
        return
    status, reason = expected
    assert got == Refusal(status, reason, BASIC if status == 401 else None)


@pytest.mark.parametrize("who", [None, "alice", "alice-read", "alice-other", "bob", "carol", "dave", "dave-open"])
def test_write_refusal_is_set_exactly_when_writing_is_refused(world, who):
    for name in WIKIS:
        read, write = ask(world, who, name, READ), ask(world, who, name, WRITE)
        if isinstance(read, Refusal):
            assert write == read, name  # what cannot be read cannot be written, and says the same
            continue
        assert isinstance(write, Refusal) == (read.write_refusal is not None), name
        if isinstance(write, Caller):
            assert (write.role, write.actor, write.write_refusal) == (read.role, read.actor, None)
        elif write.status != 404:
            assert write.reason == read.write_refusal, name


@pytest.mark.parametrize("who", [None, "dave", "carol", "dave-open"])
@pytest.mark.parametrize("action", [READ, WRITE])
@pytest.mark.parametrize(("scheme", "anonymous"), [("Basic", True), ("Bearer", False)])
def test_a_private_wiki_is_answered_like_a_missing_one(world, who, action, scheme, anonymous):
    private = ask(world, who, OTHER, action, scheme=scheme, anonymous=anonymous)
    missing = ask(world, who, MISSING, action, scheme=scheme, anonymous=anonymous)
    assert isinstance(private, Refusal) and private.status in (401, 403, 404)
    assert private == Refusal(missing.status, missing.reason.replace(str(MISSING), str(OTHER)), missing.challenge)


# bad credentials: never anonymous, even where anonymous could read
@pytest.fixture(scope="module")
def bad_secrets(world) -> dict[str, str]:
    core = world.core
    revoked, revoked_secret = core.create_token("dave", "write")
    core.revoke_token(revoked.id)
    expiring, expiring_secret = core.create_token("dave", "write", expires_days=1e-6)  # 86 ms
    while time.time() <= expiring.expires:
        time.sleep(0.01)
    return {
        "unknown or revoked token": "wbt_" + "x" * 43,
        "not a wikibot token": "hunter2",
        "token expired": expiring_secret,
        "revoked": revoked_secret,
    }


@pytest.mark.parametrize("name", [OPEN, NOTES, MISSING])
def test_bad_tokens_are_challenged(world, bad_secrets, name):
    for label, secret in bad_secrets.items():
        reason = "unknown or revoked token" if label == "revoked" else label
        got = access(world.core.store, basic(secret), name, READ, scheme="Basic")
        assert got == Refusal(401, reason, BASIC), label
        got = access(world.core.store, bearer(secret), name, READ, scheme="Bearer", anonymous=False)
        assert got == Refusal(401, reason, f'Bearer realm="wikibot", error="invalid_token", '
                                           f'error_description="{reason}"'), label


@pytest.mark.parametrize("name", [OPEN, NOTES])
def test_malformed_basic_credentials_are_bad_not_anonymous(world, name):
    malformed = {"HTTP_AUTHORIZATION": "Basic abc"}
    assert access(world.core.store, malformed, name, READ, scheme="Basic") == Refusal(401, "not a wikibot token", BASIC)
    assert access(world.core.store, malformed, name, READ, scheme="Bearer") == Refusal(
        401, "not a wikibot token", 'Bearer realm="wikibot", error="invalid_token", '
                                    'error_description="not a wikibot token"')


# MCP: no one is served without a token
@pytest.mark.parametrize("name", [NOTES, OPEN, MISSING])
def test_mcp_style_refuses_callers_without_a_token(world, name):
    got = access(world.core.store, {}, name, READ, scheme="Bearer", anonymous=False)
    assert isinstance(got, Refusal)
    assert (got.status, got.challenge) == (401, 'Bearer realm="wikibot"')
    assert got.headers == (("WWW-Authenticate", 'Bearer realm="wikibot"'),)
    assert "personal access token is required" in got.reason


@pytest.mark.parametrize(("who", "name", "limited_to"), [("alice-other", OPEN, OTHER), ("dave-open", PUB, OPEN)])
def test_mcp_style_refuses_a_limited_token_on_a_public_wiki(world, who, name, limited_to):
    assert isinstance(ask(world, who, name, READ), Caller)  # git would serve it, as anonymous
    got = access(world.core.store, bearer(world.secrets[who]), name, READ, scheme="Bearer", anonymous=False)
    assert got == Refusal(403, f"this token is limited to {limited_to}; create one that includes {name}")
    assert got.headers == ()


def test_mcp_style_serves_a_token_holder(world):
    got = access(world.core.store, bearer(world.secrets["carol"]), NOTES, READ, scheme="Bearer", anonymous=False)
    assert isinstance(got, Caller)
    assert (got.actor, got.role, got.token.user) == ("carol", "viewer", "carol")


# the pieces
@pytest.mark.parametrize(("header", "expected"), [
    (None, None),
    ("Bearer wbt_abc", "wbt_abc"),
    ("bearer  wbt_abc ", "wbt_abc"),
    ("Bearer ", None),
    ("Basic " + base64.b64encode(b"git:wbt_pw").decode(), "wbt_pw"),
    ("Basic " + base64.b64encode(b"wbt_user:").decode(), "wbt_user"),
    ("Basic " + base64.b64encode(b"wbt_user").decode(), "wbt_user"),
    ("Basic " + base64.b64encode(b"u:wbt_a:b").decode(), "wbt_a:b"),
    ("Basic abc", ""),  # bad padding
    ("Basic " + base64.b64encode(b"u:\xff").decode(), ""),  # not UTF-8
    ("Digest username=x", None),
])
def test_credentials(header, expected):
    environ = {} if header is None else {"HTTP_AUTHORIZATION": header}
    assert credentials(environ) == expected


def test_challenge():
    assert challenge("Basic") == BASIC
    assert challenge("Basic", "invalid_token", "x") == BASIC
    assert challenge("Bearer") == 'Bearer realm="wikibot"'
    assert challenge("Bearer", "invalid_token", 'say "hi"') == \
        'Bearer realm="wikibot", error="invalid_token", error_description="say \'hi\'"'


def test_authenticate_refreshes_last_used_at_most_every_interval(world):
    store = world.core.store
    token, secret = world.core.create_token("bob", "read")
    start = time.time()
    assert authenticate(store, secret, now=start)[1].id == token.id
    assert store.find_token(token.hash).last_used == start
    authenticate(store, secret, now=start + TOUCH_INTERVAL / 2)
    assert store.find_token(token.hash).last_used == start
    authenticate(store, secret, now=start + TOUCH_INTERVAL + 1)
    assert store.find_token(token.hash).last_used == start + TOUCH_INTERVAL + 1


def test_authenticate_refuses_a_token_at_its_expiry(world):
    token, secret = world.core.create_token("bob", "read", expires_days=1)
    assert authenticate(world.core.store, secret, now=token.expires - 1)[0].name == "bob"
    with pytest.raises(BadToken, match="token expired"):
        authenticate(world.core.store, secret, now=token.expires)


def test_decide_for_a_user_without_a_token(world):
    """A session caller (the coming web UI) has a user and no token: the role alone decides."""
    store = world.core.store
    bob, carol = store.get_user("bob"), store.get_user("carol")
    assert decide(store, bob, None, NOTES, WRITE).verdict is Verdict.ALLOW
    viewer = decide(store, carol, None, NOTES, READ)
    assert (viewer.verdict, viewer.role, viewer.write_refusal) == (
        Verdict.ALLOW, "viewer", "you have read-only access to alice/notes (viewer)")
    assert decide(store, carol, None, NOTES, WRITE).verdict is Verdict.FORBIDDEN
    assert decide(store, carol, None, OTHER, READ).verdict is Verdict.NOT_FOUND
    assert decide(store, None, None, OTHER, READ).verdict is Verdict.CHALLENGE
