"""The MCP SDK's authorization-server provider, on the platform's records.

The SDK's handlers (`mcp.server.auth.handlers`) parse and check each request (client authentication,
redirect URIs, PKCE S256, code expiry, scopes); this provider answers what they ask: the client, the
code, the tokens. Added here: registration rules (https or loopback redirect URIs, bounded metadata),
the `resource` every authorization names and its tokens are bound to (RFC 8707), the consent step
(the platform's sign-in and consent page, given the request signed), a code used twice ending what its
first use gave, a spent refresh token used again ending its grant.
"""
from __future__ import annotations

import contextvars
import ipaddress
import secrets
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlencode, urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    RegistrationError,
    TokenError,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import AnyUrl

from wikibot.config import Config
from wikibot.gitd.core import Core
from wikibot.gitd.names import InvalidName, WikiName
from wikibot.gitd.records import Scope, Token

from .grants import GrantRefused, Grants
from .registry import CODE_SECONDS, Code, Registry

SCOPES = ("read", "write")
CONSENT_SECONDS = 1800  # from the authorization request to the user's answer (a sign-in may come between)
MAX_REDIRECT_URIS = 10
MAX_URI = 2000
MAX_NAME = 100
LOOPBACK_NAMES = ("localhost",)
# the `resource` of the token request being answered (the SDK's handler does not pass it on)
requested_resource: contextvars.ContextVar[str | None] = contextvars.ContextVar("requested_resource", default=None)


def resource_url(config: Config, name: WikiName) -> str:
    """A wiki's MCP URL: the resource its tokens are for."""
    return f"{config.public_url}/mcp/{name}"


def resource_metadata_url(config: Config, name: WikiName) -> str:
    return f"{config.public_url}/.well-known/oauth-protected-resource/mcp/{name}"


def wiki_of_resource(config: Config, resource: str | None) -> WikiName | None:
    """The wiki whose MCP URL `resource` is (a trailing slash allowed), or None."""
    prefix = f"{config.public_url}/mcp/"
    if not resource or not resource.startswith(prefix):
        return None
    parts = resource[len(prefix):].removesuffix("/").split("/")
    if len(parts) != 2:
        return None
    try:
        return WikiName(parts[0], parts[1])
    except InvalidName:
        return None


def asked_scope(scopes: list[str] | None) -> Scope:
    """What a connector asks for: write unless it asks for read alone (the consent page may narrow it)."""
    return "read" if scopes is not None and "write" not in scopes else "write"


@dataclass(frozen=True)
class Pending:
    """An authorization request waiting for its user's answer, carried signed through the browser."""

    client: str
    redirect_uri: str
    explicit: bool
    challenge: str
    state: str | None
    scope: Scope
    resource: str

    @property
    def wiki(self) -> WikiName:
        name = self.resource.split("/mcp/", 1)[1].removesuffix("/")
        return WikiName.parse(name)


class PendingRequests:
    def __init__(self, key: bytes) -> None:
        self._signer = URLSafeTimedSerializer(key, salt="wikibot-oauth-consent")

    def dump(self, pending: Pending) -> str:
        return self._signer.dumps(asdict(pending))

    def load(self, blob: str) -> Pending | None:
        try:
            return Pending(**self._signer.loads(blob, max_age=CONSENT_SECONDS))
        except (BadSignature, TypeError):
            return None


class WikiAuthProvider:
    """`OAuthAuthorizationServerProvider` for wikibot (see the module docstring)."""

    def __init__(self, core: Core, registry: Registry, grants: Grants, pending: PendingRequests) -> None:
        self.core = core
        self.registry = registry
        self.grants = grants
        self.pending = pending

    # clients
    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        info = self.registry.client(client_id)
        if info is None:
            return None
        client = OAuthClientInformationFull.model_validate(info)
        if client.token_endpoint_auth_method != "none":
            client.client_secret = self.registry.client_secret(client_id)
        return client

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        uris = [str(u) for u in client_info.redirect_uris or ()]
        if not uris or len(uris) > MAX_REDIRECT_URIS:
            raise RegistrationError("invalid_redirect_uri", f"give 1 to {MAX_REDIRECT_URIS} redirect URIs")
        for uri in uris:
            why = redirect_problem(uri)
            if why:
                raise RegistrationError("invalid_redirect_uri", f"{uri[:100]}: {why}")
        if client_info.token_endpoint_auth_method not in ("none", "client_secret_post", "client_secret_basic"):
            raise RegistrationError("invalid_client_metadata", "token_endpoint_auth_method must be none, "
                                    "client_secret_post or client_secret_basic")
        if not set(client_info.grant_types) <= {"authorization_code", "refresh_token"}:
            raise RegistrationError("invalid_client_metadata", "grant_types: authorization_code and refresh_token only")
        name = client_info.client_name or ""
        if len(name) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise RegistrationError("invalid_client_metadata",
                                    f"client_name: one line of at most {MAX_NAME} characters")
        # the secret the handler made is replaced by one derived from the id: nothing secret is stored
        client_info.client_secret = (None if client_info.token_endpoint_auth_method == "none"
                                     else self.registry.client_secret(client_info.client_id or ""))
        kept = client_info.model_dump(mode="json", exclude_none=True, exclude={"client_secret"})
        for field in ("client_uri", "logo_uri", "tos_uri", "policy_uri", "jwks_uri", "jwks", "software_statement"):
            kept.pop(field, None)  # never shown nor fetched: not kept
        self.registry.add_client(client_info.client_id or "", kept)

    # the authorization request: to the consent page
    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        if not params.resource:
            raise AuthorizeError("invalid_request", "resource is required: the wiki's MCP URL (RFC 8707)")
        wiki = wiki_of_resource(self.core.config, params.resource)
        if wiki is None:
            raise AuthorizeError("invalid_target", "resource must be the MCP URL of a wiki on this server")
        pending = Pending(client.client_id or "", str(params.redirect_uri), params.redirect_uri_provided_explicitly,
                          params.code_challenge, params.state, asked_scope(params.scopes),
                          resource_url(self.core.config, wiki))
        return f"{self.core.config.public_url}/-/oauth/consent?" + urlencode({"request": self.pending.dump(pending)})

    # codes
    async def load_authorization_code(self, client: OAuthClientInformationFull,
                                      authorization_code: str) -> AuthorizationCode | None:
        code = self.registry.code(authorization_code)
        if code is None or code.client != client.client_id:
            return None
        if code.grant is not None:  # a second use: what the first gave ends (the code may have been stolen)
            self.grants.end(code.user, code.grant)
            return None
        return AuthorizationCode(code=authorization_code, scopes=[code.scope], expires_at=code.expires,
                                 client_id=code.client, code_challenge=code.challenge,
                                 redirect_uri=AnyUrl(code.redirect_uri),
                                 redirect_uri_provided_explicitly=code.explicit, resource=code.resource,
                                 subject=code.user)

    async def exchange_authorization_code(self, client: OAuthClientInformationFull,
                                          authorization_code: AuthorizationCode) -> OAuthToken:
        code = self.registry.code(authorization_code.code)
        if code is None:
            raise TokenError("invalid_grant", "authorization code does not exist")
        _check_resource(code.resource)
        grant = secrets.token_hex(8)
        if not self.registry.claim(authorization_code.code, grant):  # another exchange went first
            fresh = self.registry.code(authorization_code.code)
            if fresh is not None and fresh.grant:
                self.grants.end(code.user, fresh.grant)
            raise TokenError("invalid_grant", "authorization code was used already")
        try:
            issued = self.grants.issue(code.user, code.wiki, code.wiki_created, code.client,
                                       client.client_name or "MCP connector", code.scope, grant)
        except GrantRefused as exc:
            raise TokenError("invalid_grant", str(exc)) from None
        return _answer(issued)

    # refresh
    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str) -> RefreshToken | None:
        token = self.grants.find_refresh(refresh_token)
        if token is None or token.client != client.client_id:
            return None
        if token.kind == "spent":  # used before: whoever else holds it ends the grant with it
            self.grants.end(token.user, token.grant)
            return None
        return RefreshToken(token=refresh_token, client_id=token.client,
                            scopes=list(SCOPES[:SCOPES.index(token.scope) + 1]), expires_at=int(token.expires or 0),
                            resource=resource_url(self.core.config, token.wikis[0]), subject=token.user)

    async def exchange_refresh_token(self, client: OAuthClientInformationFull, refresh_token: RefreshToken,
                                     scopes: list[str]) -> OAuthToken:
        _check_resource(refresh_token.resource or "")
        token = self.grants.find_refresh(refresh_token.token)
        if token is None or token.kind != "refresh":
            raise TokenError("invalid_grant", "refresh token does not exist")
        try:
            issued = self.grants.rotate(token, asked_scope(scopes))
        except GrantRefused as exc:
            raise TokenError("invalid_grant", str(exc)) from None
        return _answer(issued)

    # access tokens (the revocation endpoint asks; MCP requests go through the platform's access layer)
    async def load_access_token(self, token: str) -> AccessToken | None:
        found = self.grants.find_access(token)
        if found is None or (found.expires or 0) <= time.time():
            return None
        return AccessToken(token=token, client_id=found.client, scopes=[found.scope],
                           expires_at=int(found.expires or 0), resource=resource_url(self.core.config, found.wikis[0]),
                           subject=found.user)

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        """Revoking either token ends the grant (RFC 7009 allows it; the user consented to one thing)."""
        found: Token | None = self.grants.find_access(token.token) or self.grants.find_refresh(token.token)
        if found is not None:
            self.grants.end(found.user, found.grant)

    def code_for(self, pending: Pending, user: str, wiki_created: float, scope: Scope) -> str:
        """The consent page's approval: a code for the client's redirect."""
        return self.registry.add_code(Code(pending.client, user, pending.wiki, wiki_created, scope, pending.challenge,
                                           pending.redirect_uri, pending.explicit, pending.resource,
                                           time.time() + CODE_SECONDS, None))


def redirect_problem(uri: str) -> str | None:
    """Why `uri` cannot be a redirect URI (None if it can): https, or http to this machine (a native
    client's loopback listener); never a fragment or credentials."""
    if len(uri) > MAX_URI:
        return "too long"
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        return "no fragment allowed"
    if parts.username or parts.password:
        return "no credentials allowed"
    if not parts.hostname:
        return "no host"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and _loopback(parts.hostname):
        return None
    return "must be https, or http to a loopback address"


def _loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_resource(bound: str) -> None:
    """A token request naming a resource must name the one the grant is bound to."""
    asked = requested_resource.get()
    if asked and asked.removesuffix("/") != bound.removesuffix("/"):
        raise TokenError("invalid_target", "resource does not match the one this grant is for")


def _answer(issued) -> OAuthToken:
    return OAuthToken(access_token=issued.access, token_type="Bearer", expires_in=issued.expires_in,
                      scope=issued.scope, refresh_token=issued.refresh)
