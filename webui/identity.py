"""Sign-in with an identity provider: any OpenID Connect issuer, and GitHub's OAuth.

An account is found by the provider's stable subject (an ID token's `sub`, GitHub's numeric user
id), never by a handle or an email address: those change hands. Everything a browser carries
between our pages is signed with a key of its own and short-lived, and bound to the browser's
session: the flow (state, nonce, PKCE verifier, where to go after) in an HttpOnly cookie under
`/-/login/`, and, for a new account, the identity waiting for its user name in the sign-up form.

The OAuth 2 exchange is authlib's requests client (PKCE S256); an ID token is checked with joserfc
(the JOSE library authlib itself uses now that `authlib.jose` is deprecated) against the issuer's
keys, and its claims with authlib's `CodeIDToken` (iss, aud, exp, nonce, azp, at_hash). A refusal
or a failing provider is a page that says what happened; nothing is made or linked then.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from flask import Blueprint, Response, abort, after_this_request, g, redirect, render_template, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from wikibot.config import IdentityProvider
from wikibot.errors import WikibotError
from wikibot.gitd.core import NO_PASSWORD, Core, CoreError, check_profile
from wikibot.gitd.names import RESERVED_NAMES
from wikibot.gitd.records import Identity
from wikibot.gitd.secrets import ensure_secret_key
from wikibot.gitd.store import StoreError
from wikibot.local_state import AttemptLimiter

from .dashboard.common import accounts_changing, safe_next, signed_in
from .sessions import Sessions
from .signup import BadInvite, Invite, Invites, signup_refusal

log = logging.getLogger(__name__)

TIMEOUT = 10  # seconds for every call to a provider
CACHE_SECONDS = 300  # discovery documents and key sets, per process
FLOW_SECONDS = 600  # from leaving for the provider to coming back
PENDING_SECONDS = 600  # from coming back to choosing a user name
FLOW_COOKIE, FLOW_PATH = "wikibot_login", "/-/login/"
LEEWAY = 60  # seconds of clock difference allowed on a token's times
# Signatures with the issuer's published keys only: never `none`, never HS* (keyed with a secret we share)
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
MAX_NAME = 100


class IdentityError(WikibotError):
    """A sign-in with a provider that was refused or failed; the message is meant for the visitor."""

    def __init__(self, message: str, status: int = 400, title: str = "Sign-in not done") -> None:
        super().__init__(message)
        self.status = status
        self.title = title


@dataclass(frozen=True)
class Profile:
    """Who the provider says signed in. Only `subject` identifies; the rest are suggestions."""

    subject: str
    label: str  # what the provider calls the account (shown, never trusted)
    username: str  # a user name to offer
    email: str
    full_name: str


class _Documents:
    """JSON documents (discovery, key sets) fetched with a timeout and kept a few minutes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, url: str, *, fresh: bool = False) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(url)
        if hit is not None and not fresh and now - hit[0] < self.seconds:
            return hit[1]
        answer = requests.get(url, timeout=TIMEOUT, headers={"Accept": "application/json"})
        answer.raise_for_status()
        document = answer.json()
        if not isinstance(document, dict):
            raise ValueError(f"{url} did not answer a JSON object")
        with self._lock:
            self._items[url] = (now, document)
        return document


_documents = _Documents(CACHE_SECONDS)


def _discover(provider: IdentityProvider) -> dict[str, Any]:
    """The issuer's discovery document, checked to be its own and to name the endpoints we use."""
    issuer = provider.issuer.rstrip("/")
    document = _documents.get(issuer + "/.well-known/openid-configuration")
    if str(document.get("issuer", "")).rstrip("/") != issuer:
        raise ValueError(f"the discovery document names another issuer: {document.get('issuer')!r}")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not str(document.get(key, "")).startswith(("https://", "http://")):
            raise ValueError(f"the discovery document has no {key}")
    return document


def _session(provider: IdentityProvider, redirect_uri: str, *, auth_method: str = "client_secret_basic",
             scope: str = "") -> OAuth2Session:
    return OAuth2Session(provider.client_id, provider.client_secret, token_endpoint_auth_method=auth_method,
                         scope=scope, redirect_uri=redirect_uri, code_challenge_method="S256",
                         default_timeout=TIMEOUT)


def authorization_url(provider: IdentityProvider, redirect_uri: str, state: str, nonce: str, verifier: str) -> str:
    """Where to send the visitor to sign in at the provider."""
    if provider.kind == "github":
        endpoint, scope, extra = provider.github_url.rstrip("/") + "/login/oauth/authorize", "read:user", {}
    else:
        endpoint, scope, extra = _discover(provider)["authorization_endpoint"], "openid profile email", {"nonce": nonce}
    url, _ = _session(provider, redirect_uri, scope=scope).create_authorization_url(
        endpoint, state=state, code_verifier=verifier, **extra)
    return url


def fetch_profile(provider: IdentityProvider, code: str, redirect_uri: str, verifier: str, nonce: str) -> Profile:
    """Exchange the code and say who signed in; raises IdentityError (nothing usable came back)."""
    try:
        if provider.kind == "github":
            return _github_profile(provider, code, redirect_uri, verifier)
        return _oidc_profile(provider, code, redirect_uri, verifier, nonce)
    except (requests.RequestException, AuthlibBaseError, JoseError, ValueError) as exc:
        log.warning("sign-in with %s failed: %s: %s", provider.name, type(exc).__name__, exc)
        raise IdentityError(f"{provider.title} did not confirm who you are ({_reason(exc)}). Nothing was changed: "
                            "try again in a moment.", 502) from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, requests.Timeout):
        return "it did not answer in time"
    if isinstance(exc, requests.ConnectionError):
        return "it could not be reached"
    if isinstance(exc, JoseError):
        return f"its token was not valid: {exc.error}"
    if isinstance(exc, AuthlibBaseError):
        return f"it answered {exc.error}"
    return "its answer was not usable"


def _oidc_profile(provider: IdentityProvider, code: str, redirect_uri: str, verifier: str, nonce: str) -> Profile:
    document = _discover(provider)
    methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    method = "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
    session = _session(provider, redirect_uri, auth_method=method)
    token = session.fetch_token(document["token_endpoint"], grant_type="authorization_code", code=code,
                                code_verifier=verifier)
    if not isinstance(token.get("id_token"), str):
        raise ValueError("the token answer has no ID token")
    offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
    registry = JWSRegistry(algorithms=[a for a in offered if a in SIGNING_ALGORITHMS], strict_check_header=False)
    try:
        decoded = jwt.decode(token["id_token"], KeySet.import_key_set(_documents.get(document["jwks_uri"])),
                             registry=registry)
    except InvalidKeyIdError:  # the issuer may have rotated its keys since we fetched them
        decoded = jwt.decode(token["id_token"],
                             KeySet.import_key_set(_documents.get(document["jwks_uri"], fresh=True)),
                             registry=registry)
    options = {"iss": {"essential": True, "value": document["issuer"]},
               "aud": {"essential": True, "value": provider.client_id},
               "sub": {"essential": True}}
    claims = CodeIDToken(decoded.claims, decoded.header, options,
                         {"nonce": nonce, "client_id": provider.client_id, "access_token": token.get("access_token")})
    claims.validate(leeway=LEEWAY)
    subject = claims["sub"]
    shown = dict(claims)
    if not any(shown.get(k) for k in ("preferred_username", "email", "name")) and document.get("userinfo_endpoint"):
        shown.update(_userinfo(session, document["userinfo_endpoint"], subject))
    return Profile(subject=subject, label=_text(shown.get("preferred_username") or shown.get("email") or subject),
                   username=_text(shown.get("preferred_username") or str(shown.get("email") or "").split("@")[0]),
                   email=_text(shown.get("email")), full_name=_text(shown.get("name")))


def _userinfo(session: OAuth2Session, endpoint: str, subject: str) -> dict[str, Any]:
    """The display claims an issuer keeps out of its ID tokens; they count only for the same subject."""
    answer = session.get(endpoint, headers={"Accept": "application/json"})
    answer.raise_for_status()
    info = answer.json()
    if not isinstance(info, dict) or info.get("sub") != subject:
        raise ValueError("the userinfo answer is about someone else")
    return {k: info[k] for k in ("preferred_username", "email", "name") if k in info}


def _github_profile(provider: IdentityProvider, code: str, redirect_uri: str, verifier: str) -> Profile:
    session = _session(provider, redirect_uri, auth_method="client_secret_post")
    session.fetch_token(provider.github_url.rstrip("/") + "/login/oauth/access_token",
                        grant_type="authorization_code", code=code, code_verifier=verifier)
    answer = session.get(provider.github_api_url.rstrip("/") + "/user",
                         headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"})
    answer.raise_for_status()
    user = answer.json()
    number = user.get("id") if isinstance(user, dict) else None
    if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
        raise ValueError("GitHub's answer has no user id")
    login = _text(user.get("login"))
    return Profile(subject=str(number), label=login or str(number), username=login, email=_text(user.get("email")),
                   full_name=_text(user.get("name")))


def _text(value: object) -> str:
    return value.strip()[:MAX_NAME * 3] if isinstance(value, str) else ""


def suggested_name(text: str) -> str:
    """A user name the rules allow, made from the provider's handle: only ever a suggestion."""
    name = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")[:39].rstrip("-")
    return "" if name in RESERVED_NAMES else name


def identity_blueprint(core: Core, sessions: Sessions, invites: Invites, signups: AttemptLimiter) -> Blueprint:
    """`/-/login/<provider>` (start), `…/callback`, `…/signup` (a new account's user name) and
    `/-/account/identities/remove`. `signups` limits open sign-ups per client address (the one the
    password sign-up counts in)."""
    bp = Blueprint("identity", __name__)
    key = hmac.new(ensure_secret_key(core.config.secret_key_path), b"wikibot-webui:identity", hashlib.sha256).digest()
    flows = URLSafeTimedSerializer(key, salt="wikibot-login-flow")
    pendings = URLSafeTimedSerializer(key, salt="wikibot-login-pending")

    def configured(name: str) -> IdentityProvider:
        provider = core.config.provider(name)
        if provider is None:
            abort(404)
        return provider

    def callback_url(provider: IdentityProvider) -> str:
        return f"{core.config.public_url}/-/login/{quote(provider.name)}/callback"

    def opened(token: str) -> Invite | None:
        if not token:
            return None
        try:
            return invites.open(token, core.store)
        except BadInvite as exc:
            raise IdentityError(f"{exc}. No account was made.", 400) from None

    def sign_in(identity: Identity, target: str) -> Response:
        user = core.store.get_user(identity.user)
        if user is None or user.disabled:
            raise IdentityError("This account is disabled: ask an administrator.", 403)
        g.session = sessions.new(user, proved=time.time())  # a new id: a session planted before is worth nothing
        return redirect(target, 303)

    @bp.errorhandler(IdentityError)
    def refused(exc: IdentityError) -> tuple[str, int]:
        return render_template("identity_message.html", title=exc.title, message=str(exc)), exc.status

    @bp.route("/-/login/<name>", methods=["GET", "POST"])
    def start(name: str) -> Response:
        provider = configured(name)
        if request.method != "POST":
            # a trip to the provider starts only from a form of ours (POST, CSRF-checked by the pages app):
            # another site's link must never sign a browser in, nor link an identity to its account
            if g.user is not None:
                raise IdentityError(f"You are signed in as {g.user.name}: link {provider.title} from your account "
                                    "page.", 403)
            invite = request.args.get("invite", "")[:1000]
            return redirect(f"/-/signup/{quote(invite)}" if invite else
                            "/-/login?next=" + quote(safe_next(request.args.get("next"))), 303)
        invite_token = "" if g.user else request.values.get("invite", "")[:1000]
        opened(invite_token)  # a bad invite is said now, before the trip to the provider
        state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), generate_token(64)
        try:
            url = authorization_url(provider, callback_url(provider), state, nonce, verifier)
        except (requests.RequestException, ValueError) as exc:
            log.warning("sign-in with %s cannot start: %s: %s", provider.name, type(exc).__name__, exc)
            raise IdentityError(f"{provider.title} cannot be reached ({_reason(exc)}): try again in a moment.",
                                502) from None
        flow = {"p": provider.name, "s": state, "n": nonce, "v": verifier, "b": g.session.sid,
                "x": safe_next(request.values.get("next")), "l": g.user.name if g.user else "", "i": invite_token}
        # a page that moves on by itself rather than a redirect: the CSP's `form-action 'self'` governs where
        # a form's answer may redirect, and browsers block a redirect to the provider
        response = Response(render_template("continue.html", destination=provider.title, url=url),
                            headers={"Cache-Control": "no-store"})
        response.set_cookie(FLOW_COOKIE, flows.dumps(flow), max_age=FLOW_SECONDS, path=FLOW_PATH, httponly=True,
                            samesite="Lax", secure=sessions.secure)
        return response

    @bp.get("/-/login/<name>/callback")
    def callback(name: str) -> Response | tuple[str, int]:
        provider = configured(name)

        @after_this_request
        def spent(response: Response) -> Response:  # one flow, one callback: a replay finds nothing
            response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH, httponly=True, samesite="Lax", secure=sessions.secure)
            return response

        try:
            flow = flows.loads(request.cookies.get(FLOW_COOKIE, ""), max_age=FLOW_SECONDS)
        except BadSignature:
            flow = {}
        state = request.args.get("state", "")
        if (flow.get("p") != provider.name or flow.get("b") != g.session.sid
                or not hmac.compare_digest(str(flow.get("s", "")), state) or not state):
            raise IdentityError(f"This sign-in with {provider.title} was not started in this browser, took longer "
                                "than 10 minutes or was used already. Nothing was changed: start again.")
        if request.args.get("error"):
            if request.args["error"] == "access_denied":
                raise IdentityError(f"You did not let {provider.title} share who you are, so nothing was changed.",
                                    403, "Sign-in cancelled")
            raise IdentityError(f"{provider.title} refused the sign-in ({request.args['error'][:100]}). Nothing "
                                "was changed.", 502)
        if not request.args.get("code"):
            raise IdentityError(f"{provider.title} sent no answer to use. Nothing was changed: start again.")
        profile = fetch_profile(provider, request.args["code"], callback_url(provider), flow["v"], flow["n"])
        target = safe_next(flow.get("x"))
        identity = core.store.find_identity(provider.name, profile.subject)
        if flow.get("l"):
            return link(provider, profile, identity, flow["l"], target)
        if identity is not None:
            return sign_in(identity, target)
        invite = opened(flow.get("i", ""))
        refusal = signup_refusal(core.config, invite)
        if refusal is not None:
            raise IdentityError(f"No wikibot account is linked to this {provider.title} account, and none can be "
                                f"made: {refusal}", 403, "No account")
        pending = pendings.dumps({"p": provider.name, "s": profile.subject, "l": profile.label, "f": profile.full_name,
                                  "x": target, "i": flow.get("i", ""), "b": g.session.sid})
        return signup_page(provider, pending, profile.label, suggested_name(profile.username), profile.email)

    def link(provider: IdentityProvider, profile: Profile, identity: Identity | None, account: str,
             target: str) -> Response:
        if g.user is None or g.user.name != account:
            raise IdentityError(f"You signed out or changed accounts while away at {provider.title}. Nothing was "
                                "linked: sign in and start again.")
        if identity is not None and identity.user == account:
            return redirect(target, 303)
        if identity is not None:
            raise IdentityError(f"This {provider.title} account ({profile.label}) is linked to another wikibot account "
                                "already. Nothing was changed: unlink it there first.", 409, "Not linked")
        try:
            core.store.add_identity(Identity(provider=provider.name, subject=profile.subject, user=account,
                                             created=time.time(), label=profile.label))
        except StoreError as exc:  # linked meanwhile, from another browser
            raise IdentityError(f"{exc}. Nothing was changed.", 409, "Not linked") from None
        return redirect(target, 303)

    def signup_page(provider: IdentityProvider, pending: str, label: str, username: str, email: str,
                    error: str | None = None, status: int = 200) -> tuple[str, int]:
        return render_template("identity_signup.html", provider=provider, pending=pending, label=label,
                               username=username, email=email, error=error), status

    @bp.post("/-/login/<name>/signup")
    def signup(name: str) -> Response | tuple[str, int]:
        provider = configured(name)
        token = request.form.get("pending", "")
        try:
            pending = pendings.loads(token, max_age=PENDING_SECONDS)
        except BadSignature:
            pending = {}
        if pending.get("p") != provider.name or pending.get("b") != g.session.sid:
            raise IdentityError(f"This sign-up took longer than 10 minutes or was not started in this browser. No "
                                f"account was made: sign in with {provider.title} again.")
        if core.store.find_identity(provider.name, pending["s"]) is not None:
            raise IdentityError(f"This {provider.title} account has a wikibot account already: sign in with "
                                f"{provider.title}.", 409, "Account exists")
        invite = opened(pending["i"])
        refusal = signup_refusal(core.config, invite)
        if refusal is not None:
            raise IdentityError(f"No account was made: {refusal}", 403, "No account")
        username = request.form.get("username", "").strip()[:MAX_NAME]
        email = request.form.get("email", "").strip()[:MAX_NAME * 3]
        address = request.remote_addr or "-"
        if invite is None and signups.retry_after(username, address) > 0:
            return signup_page(provider, token, pending["l"], username, email,
                               "Too many accounts were made from your address: try again in an hour.", 429)
        try:
            check_profile("", pending["f"])
            full_name = pending["f"]
        except CoreError:  # the provider's name for you does not fit ours: leave it out
            full_name = ""
        try:
            user, _ = core.add_user(username, email, no_password=True, full_name=full_name,
                                    tier=invite.tier if invite else "free", invite=invite.id if invite else None)
        except WikibotError as exc:
            return signup_page(provider, token, pending["l"], username, email, str(exc), 400)
        try:
            core.store.add_identity(Identity(provider=provider.name, subject=pending["s"], user=user.name,
                                             created=time.time(), label=pending["l"]))
        except StoreError:  # the same subject signed up meanwhile, from another browser: undo this account
            core.delete_user(user.name)
            raise IdentityError(f"This {provider.title} account got a wikibot account meanwhile: sign in with "
                                f"{provider.title}.", 409, "Account exists") from None
        if invite is None:
            signups.record(username, address)
        g.session = sessions.new(user, proved=time.time())
        return redirect(safe_next(pending["x"]), 303)

    @bp.post("/-/account/identities/remove")
    def remove() -> Response:
        user = signed_in()
        provider, subject = request.form.get("provider", ""), request.form.get("subject", "")
        identity = core.store.find_identity(provider, subject)
        if identity is None or identity.user != user.name:
            raise IdentityError("That sign-in is not linked to your account.", 404, "Not unlinked")
        with accounts_changing(core):  # two unlinks at once: they cannot both leave the account without a way in
            account = core.user(user.name)
            others = [i for i in core.store.list_identities(user.name)
                      if (i.provider, i.subject) != (provider, subject) and core.config.provider(i.provider)]
            if account.password_hash == NO_PASSWORD and not others:
                raise IdentityError("This is the only way you can sign in: set a password or link another sign-in "
                                    "on your account page first.", 400, "Not unlinked")
            core.store.remove_identity(provider, subject)
        # whoever signed in through that account of the provider is signed out; this browser stays
        sessions.end_all(user.name)
        g.session = sessions.new(core.user(user.name), proved=g.session.proved)
        return redirect("/-/account?done=unlinked", 303)

    return bp
