"""The consent step of an MCP connector's OAuth sign-in: `/-/oauth/consent`.

The authorization endpoint (oauth/server.py) sends the browser here with the request signed. A
visitor not signed in signs in first and comes back. The page names the client (as it calls itself:
anyone can register any name, so its redirect host is shown beside it), the wiki and the access asked,
never more than the user's role gives (a reader is offered read only, and anyone may narrow write to
read). Approving gives the client a single-use code at its redirect URI; denying sends it
`access_denied`. A user who cannot read the wiki (or a wiki that is not there) gets neither: the page
says so, as it would for any wiki they cannot see.
"""
from __future__ import annotations

from urllib.parse import quote, urlencode, urlsplit

from flask import Blueprint, Response, abort, g, redirect, render_template, request
from mcp.server.auth.provider import construct_redirect_uri

from wikibot.gitd.core import Core
from wikibot.oauth.provider import Pending, WikiAuthProvider

PATH = "/-/oauth/consent"


def consent_blueprint(core: Core, provider: WikiAuthProvider) -> Blueprint:
    bp = Blueprint("consent", __name__)

    def pending() -> tuple[Pending, dict]:
        found = provider.pending.load(request.values.get("request", ""))
        client = provider.registry.client(found.client) if found else None
        if found is None or client is None:
            abort(400, "This sign-in request expired or is not valid: start connecting again from your app.")
        return found, client

    def answer(redirect_uri: str, destination: str, **params: str | None) -> Response:
        # a page that moves on by itself, not a redirect: the CSP's `form-action 'self'` would block
        # a form's redirect to another site
        url = construct_redirect_uri(redirect_uri, **params)
        return Response(render_template("continue.html", destination=destination, url=url),
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    @bp.route(PATH, methods=["GET", "POST"])
    def consent() -> Response | tuple[str, int]:
        asked, client = pending()
        if g.user is None:
            target = f"{PATH}?" + urlencode({"request": request.values.get("request", "")})
            return redirect("/-/login?next=" + quote(target, safe=""), 303)
        name = client.get("client_name") or "An unnamed app"
        host = urlsplit(asked.redirect_uri).hostname or ""
        allowed = provider.grants.allowed_scope(g.user, asked.wiki, asked.scope)
        if allowed is None:
            return render_template("message.html", title="No access",
                                   message=f"Wiki {asked.wiki} was not found, or you have no access to it: "
                                           f"{name} gets nothing from it."), 404
        wiki, scope = allowed
        if request.method == "POST":
            if request.form.get("decision") != "approve":
                return answer(asked.redirect_uri, host, error="access_denied",
                              error_description="the user denied access", state=asked.state)
            if request.form.get("read_only"):
                scope = "read"
            code = provider.code_for(asked, g.user.name, wiki.created, scope)
            return answer(asked.redirect_uri, host, code=code, state=asked.state)
        return render_template("consent.html", client_name=name, host=host, wiki=wiki, scope=scope,
                               asked=asked.scope, request_blob=request.values.get("request", ""))

    return bp
