"""Identity providers for tests, served for real over HTTP on 127.0.0.1 (werkzeug, a free port, a
thread): a small OpenID Connect provider and a fake GitHub.

Both follow the protocol a real one does (registered redirect URIs only, single-use codes that
expire, PKCE S256 checked against the verifier, the client secret checked), so the platform's
client is tested against the wire, not against itself. The person who signs in is approved at
once; attributes let a test play the provider's part in what can go wrong: consent denied, ID
token claims changed (wrong nonce, another audience, no subject), tokens signed by a key the
provider never published.
"""
from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

CODE_SECONDS = 60  # an authorization code is good this long, once


@dataclass
class Person:
    """Who signs in at the OIDC provider: `sub` is the stable subject, the rest can change."""

    sub: str
    preferred_username: str = ""
    email: str = ""
    name: str = ""


@dataclass
class GitHubUser:
    """Who signs in at the fake GitHub: `id` is GitHub's stable number, `login` the handle that can change."""

    id: int
    login: str
    email: str | None = None
    name: str | None = None


@dataclass
class _Grant:
    person: Any
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    expires: float


def new_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"}, private=True)


class _HTTPProvider:
    """A provider's HTTP server and its codes; subclasses fill `routes`."""

    def __init__(self, client_id: str, client_secret: str, redirect_uris: tuple[str, ...]) -> None:
        self.client_id, self.client_secret, self.redirect_uris = client_id, client_secret, redirect_uris
        self.deny = False  # answer error=access_denied, as when the person declines
        self.seen: list[str] = []  # "METHOD path" of every request, in order
        self._grants: dict[str, _Grant] = {}
        self._tokens: dict[str, Any] = {}
        self.routes: dict[tuple[str, str], Callable[[Request], Response]] = {}  # (method, path) -> answer
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True)

    def start(self) -> _HTTPProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self._lock:
            self.seen.append(f"{request.method} {request.path}")
        route = self.routes.get((request.method, request.path))
        answer = route(request) if route else _json({"error": "not_found"}, 404)
        return answer(environ, start_response)

    # the authorization code grant, shared
    def _authorize(self, request: Request, person: Any, nonce: str) -> Response:
        args = request.args
        if args.get("client_id") != self.client_id or args.get("redirect_uri") not in self.redirect_uris:
            return Response("unknown client or redirect URI", 400)  # never redirect to an unregistered place
        back = {"state": args["state"]} if "state" in args else {}
        if self.deny:
            back.update(error="access_denied", error_description="The person declined")
        elif args.get("response_type") != "code":
            back.update(error="unsupported_response_type")
        elif args.get("code_challenge_method") != "S256" or not args.get("code_challenge"):
            back.update(error="invalid_request", error_description="PKCE S256 is required")
        else:
            code = secrets.token_urlsafe(24)
            with self._lock:
                self._grants[code] = _Grant(person=person, client_id=self.client_id, redirect_uri=args["redirect_uri"],
                                            challenge=args["code_challenge"], nonce=nonce,
                                            expires=time.time() + CODE_SECONDS)
            back["code"] = code
        return Response(status=302, headers={"Location": args["redirect_uri"] + "?" + urlencode(back)})

    def _client_ok(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            client_id, _, secret = (unquote(part) for part in base64.b64decode(header[6:]).decode().partition(":"))
        else:
            client_id, secret = request.form.get("client_id", ""), request.form.get("client_secret", "")
        return secrets.compare_digest(client_id, self.client_id) and secrets.compare_digest(secret, self.client_secret)

    def _redeem(self, request: Request) -> tuple[_Grant | None, str]:
        """The grant a token request redeems (at most once), or None and the OAuth error to answer."""
        if not self._client_ok(request):
            return None, "invalid_client"
        if request.form.get("grant_type") != "authorization_code":
            return None, "unsupported_grant_type"
        with self._lock:
            grant = self._grants.pop(request.form.get("code", ""), None)
        verifier = request.form.get("code_verifier", "")
        if (grant is None or grant.expires < time.time() or grant.redirect_uri != request.form.get("redirect_uri")
                or not verifier or create_s256_code_challenge(verifier) != grant.challenge):
            return None, "invalid_grant"
        return grant, ""

    def _bearer(self, request: Request) -> Any:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        with self._lock:
            return self._tokens.get(token) if scheme.lower() in ("bearer", "token") else None

    def _new_access_token(self, person: Any) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = person
        return token


class OidcProvider(_HTTPProvider):
    """An OpenID Connect provider: discovery, authorize, token, JWKS, userinfo; ID tokens RS256."""

    def __init__(self, client_id: str, client_secret: str, redirect_uris: tuple[str, ...], person: Person) -> None:
        super().__init__(client_id, client_secret, redirect_uris)
        self.person = person  # who signs in next
        self.key = new_key("key-1")  # published in the JWKS
        self.signing_key = self.key  # what ID tokens are signed with (a test may use one never published)
        self.id_token_changes: dict[str, Any] = {}  # claim -> value in the next ID tokens (None: left out)
        self.profile_in_id_token = True  # False: name and email only from userinfo, as some issuers do
        self.routes = {("GET", "/.well-known/openid-configuration"): self._discovery,
                       ("GET", "/authorize"): self._start, ("POST", "/token"): self._token,
                       ("GET", "/jwks"): self._jwks, ("GET", "/userinfo"): self._userinfo}

    @property
    def issuer(self) -> str:
        return self.url

    def _discovery(self, request: Request) -> Response:
        return _json({
            "issuer": self.issuer, "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token", "jwks_uri": self.url + "/jwks",
            "userinfo_endpoint": self.url + "/userinfo", "response_types_supported": ["code"],
            "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"], "scopes_supported": ["openid", "profile", "email"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"]})

    def _start(self, request: Request) -> Response:
        if "openid" not in request.args.get("scope", "").split():
            return Response("this provider only does OpenID Connect", 400)
        return self._authorize(request, Person(**vars(self.person)), request.args.get("nonce", ""))

    def _token(self, request: Request) -> Response:
        grant, error = self._redeem(request)
        if grant is None:
            return _json({"error": error}, 401 if error == "invalid_client" else 400)
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.issuer, "sub": grant.person.sub, "aud": grant.client_id,
                                  "iat": now, "exp": now + 300, "auth_time": now}
        if grant.nonce:
            claims["nonce"] = grant.nonce
        if self.profile_in_id_token:
            claims.update(self._profile(grant.person))
        for claim, value in self.id_token_changes.items():
            if value is None:
                claims.pop(claim, None)
            else:
                claims[claim] = value
        id_token = jwt.encode({"alg": "RS256", "kid": self.signing_key.kid}, claims, self.signing_key)
        return _json({"access_token": self._new_access_token(grant.person), "token_type": "Bearer",
                      "expires_in": 300, "id_token": id_token})

    def _jwks(self, request: Request) -> Response:
        return _json(KeySet([self.key]).as_dict(private=False))

    def _userinfo(self, request: Request) -> Response:
        person = self._bearer(request)
        if person is None:
            return _json({"error": "invalid_token"}, 401)
        return _json({"sub": person.sub, **self._profile(person)})

    @staticmethod
    def _profile(person: Person) -> dict[str, Any]:
        found = {"preferred_username": person.preferred_username, "name": person.name, "email": person.email}
        claims = {k: v for k, v in found.items() if v}
        if person.email:
            claims["email_verified"] = True
        return claims


class FakeGitHub(_HTTPProvider):
    """GitHub's OAuth app flow and its `/user` API, for `github_url` = `url`, `github_api_url` = `api_url`."""

    def __init__(self, client_id: str, client_secret: str, redirect_uris: tuple[str, ...], user: GitHubUser) -> None:
        super().__init__(client_id, client_secret, redirect_uris)
        self.user = user  # who signs in next
        self.routes = {("GET", "/login/oauth/authorize"): self._start,
                       ("POST", "/login/oauth/access_token"): self._token, ("GET", "/api/user"): self._user}

    @property
    def api_url(self) -> str:
        return self.url + "/api"

    def _start(self, request: Request) -> Response:
        return self._authorize(request, GitHubUser(**vars(self.user)), "")

    def _token(self, request: Request) -> Response:
        grant, error = self._redeem(request)
        # GitHub answers a bad code with 200 and an error, as JSON only when asked for JSON
        body = ({"error": "bad_verification_code" if error == "invalid_grant" else error} if grant is None else
                {"access_token": self._new_access_token(grant.person), "token_type": "bearer", "scope": "read:user"})
        if "application/json" in request.headers.get("Accept", ""):
            return _json(body)
        return Response(urlencode(body), content_type="application/x-www-form-urlencoded")

    def _user(self, request: Request) -> Response:
        user = self._bearer(request)
        if user is None:
            return _json({"message": "Requires authentication"}, 401)
        return _json({"login": user.login, "id": user.id, "node_id": f"U_{user.id}", "type": "User",
                      "name": user.name, "email": user.email})


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status, content_type="application/json",
                    headers={"Cache-Control": "no-store"})
