"""The HTTP side: the two metadata documents, and the SDK's handlers for the authorization,
token, registration and revocation endpoints (under `/-/oauth/`), run through the ASGI bridge.

Metadata (answered here, for every well-formed wiki name alike: whether a wiki exists is never told):
- `/.well-known/oauth-protected-resource/mcp/OWNER/WIKI` (RFC 9728): the resource is that wiki's MCP
  URL, its authorization server the platform;
- `/.well-known/oauth-authorization-server` (RFC 8414), the issuer being the platform's public URL.
Registrations are limited per client address; every endpoint answers with CORS for browser clients.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.handlers.register import RegistrationHandler
from mcp.server.auth.handlers.revoke import RevocationHandler
from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.middleware.client_auth import ClientAuthenticator
from mcp.server.auth.routes import cors_middleware
from mcp.server.auth.settings import ClientRegistrationOptions
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wikibot.gitd.core import Core
from wikibot.gitd.http_access import Answer, StartResponse
from wikibot.gitd.names import InvalidName, WikiName
from wikibot.gitd.secrets import ensure_secret_key
from wikibot.local_state import AttemptLimiter
from wikibot.mcp.asgi_bridge import AsgiBridge

from .grants import Grants
from .provider import SCOPES, PendingRequests, WikiAuthProvider, requested_resource, resource_url
from .registry import Registry, RegistryFull

PREFIX = "/-/oauth"
PROTECTED = "/.well-known/oauth-protected-resource"
AUTHORIZATION_SERVER = "/.well-known/oauth-authorization-server"
MAX_BODY = 64 * 1024
CORS = [("Access-Control-Allow-Origin", "*")]


def keys(core: Core) -> tuple[bytes, bytes]:
    """The keys of client secrets and of pending consents, each of its own from the platform secret."""
    secret = ensure_secret_key(core.config.secret_key_path)
    return tuple(hmac.new(secret, f"wikibot-oauth:{use}".encode(), hashlib.sha256).digest()  # type: ignore[return-value]
                 for use in ("clients", "consent"))


def make_provider(core: Core) -> WikiAuthProvider:
    client_key, consent_key = keys(core)
    return WikiAuthProvider(core, Registry(core.config.oauth_path, client_key), Grants(core),
                            PendingRequests(consent_key))


class OAuthServer:
    """WSGI app for `/.well-known/oauth-*` and `/-/oauth/{authorize,token,register,revoke}`."""

    def __init__(self, core: Core, provider: WikiAuthProvider) -> None:
        self.core = core
        self.provider = provider
        self.registrations = AttemptLimiter(core.config.cache_dir / "oauth_registrations.sqlite3",
                                            per_address=core.config.oauth_registrations_per_hour, window=3600.0)
        too_large = Answer.json(413, {"error": "invalid_request", "error_description": "request too large"})
        self.bridge = AsgiBridge(self._app, MAX_BODY, too_large=too_large, timeout=30.0)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/.well-known/"):
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD", "OPTIONS"):
                return Answer.json(405, {"error": "use GET"}, [("Allow", "GET")]).send(start_response)
            document = self.metadata(path)
            if document is None:
                return Answer.json(404, {"error": "not found"}, CORS).send(start_response)
            return Answer.json(200, document, [*CORS, ("Cache-Control", "max-age=300")]).send(start_response)
        return self.bridge(environ, start_response, {})

    def metadata(self, path: str) -> dict | None:
        base = self.core.config.public_url
        if path == AUTHORIZATION_SERVER:
            return {
                "issuer": base,
                "authorization_endpoint": f"{base}{PREFIX}/authorize",
                "token_endpoint": f"{base}{PREFIX}/token",
                "registration_endpoint": f"{base}{PREFIX}/register",
                "revocation_endpoint": f"{base}{PREFIX}/revoke",
                "scopes_supported": list(SCOPES),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
                "revocation_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
            }
        if path.startswith(PROTECTED + "/mcp/"):
            parts = path[len(PROTECTED + "/mcp/"):].removesuffix("/").split("/")
            if len(parts) != 2:
                return None
            try:
                name = WikiName(parts[0], parts[1])
            except InvalidName:
                return None
            return {"resource": resource_url(self.core.config, name), "authorization_servers": [base],
                    "scopes_supported": list(SCOPES), "bearer_methods_supported": ["header"],
                    "resource_name": f"wikibot wiki {name}"}
        return None

    def _app(self) -> Starlette:
        provider = self.provider
        authenticator = ClientAuthenticator(provider)  # type: ignore[arg-type]
        authorize = AuthorizationHandler(provider)  # type: ignore[arg-type]
        token = TokenHandler(provider, authenticator)  # type: ignore[arg-type]
        register = RegistrationHandler(provider, ClientRegistrationOptions(  # type: ignore[arg-type]
            enabled=True, valid_scopes=list(SCOPES), default_scopes=list(SCOPES)))
        revoke = RevocationHandler(provider, authenticator)  # type: ignore[arg-type]

        async def token_endpoint(request: Request) -> Response:
            form = await request.form()  # read once: the handler gets the same, cached
            resource = form.get("resource")
            requested_resource.set(resource if isinstance(resource, str) else None)
            return await token.handle(request)

        async def register_endpoint(request: Request) -> Response:
            address = request.client.host if request.client else ""
            wait = self.registrations.retry_after(None, address)
            if wait > 0:
                return JSONResponse({"error": "invalid_client_metadata",
                                     "error_description": "too many registrations from this address; try later"},
                                    status_code=429, headers={"Retry-After": str(int(wait) + 1)})
            self.registrations.record(None, address)
            try:
                return await register.handle(request)
            except RegistryFull as exc:
                return JSONResponse({"error": "temporarily_unavailable", "error_description": str(exc)},
                                    status_code=503, headers={"Retry-After": "60"})

        return Starlette(routes=[
            Route(f"{PREFIX}/authorize", authorize.handle, methods=["GET", "POST"]),
            Route(f"{PREFIX}/token", cors_middleware(token_endpoint, ["POST", "OPTIONS"]), methods=["POST", "OPTIONS"]),
            Route(f"{PREFIX}/register", cors_middleware(register_endpoint, ["POST", "OPTIONS"]),
                  methods=["POST", "OPTIONS"]),
            Route(f"{PREFIX}/revoke", cors_middleware(revoke.handle, ["POST", "OPTIONS"]), methods=["POST", "OPTIONS"]),
        ])
