"""Personal access tokens in the browser: made (scope, wikis, expiry, note) and shown once, listed
with when they were made and last used, revoked with one click. Beside them, the MCP connectors the
user let in through OAuth (one grant per app and wiki), each ended with one click too."""
from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request

from wikibot.errors import WikibotError
from wikibot.gitd.core import Core
from wikibot.gitd.names import InvalidName, WikiName
from wikibot.oauth.provider import WikiAuthProvider

from .common import notice, signed_in
from .wikis import Page, readable_wikis

EXPIRIES = [("30", "30 days"), ("90", "90 days"), ("365", "a year"), ("7", "7 days"), ("", "never")]
CONNECTOR_REVOKED = "revoked"  # the notice shown after a connector's grant is ended


def blueprint(core: Core, connectors: WikiAuthProvider) -> Blueprint:
    bp = Blueprint("tokens", __name__)

    def page(error: str | None = None, status: int = 200, secret: str | None = None, made=None,
             form: dict | None = None) -> tuple[str, int]:
        user = signed_in()
        return render_template("tokens.html", tokens=core.personal_tokens(user.name),
                               grants=connectors.grants.of_user(user.name), error=error, secret=secret, made=made,
                               wikis=[w for w, _ in readable_wikis(core, user)], expiries=EXPIRIES, notice=notice(),
                               form=form or {"scope": "read", "expires": "30", "note": "", "wikis": []}), status

    @bp.get("/-/tokens")
    def tokens() -> Page:
        signed_in()
        return page()

    @bp.post("/-/tokens")
    def create() -> Page:
        user = signed_in()
        form = {"scope": request.form.get("scope", ""), "expires": request.form.get("expires", ""),
                "note": request.form.get("note", "").strip(), "wikis": request.form.getlist("wiki")}
        try:
            try:
                wikis = tuple(WikiName.parse(w) for w in form["wikis"])
                if form["expires"] not in dict(EXPIRIES):
                    raise ValueError(form["expires"])
                days = float(form["expires"]) if form["expires"] else None
            except (InvalidName, ValueError):
                raise WikibotError("choose the wikis and the expiry from the lists") from None
            made, secret = core.create_token(user.name, form["scope"], wikis, days, form["note"])
        except WikibotError as exc:
            return page(str(exc), 400, form=form)
        return page(secret=secret, made=made)  # shown this once, never stored

    @bp.post("/-/tokens/<token_id>/revoke")
    def revoke(token_id: str) -> Page:
        user = signed_in()
        if not any(t.id == token_id for t in core.personal_tokens(user.name)):
            abort(404)  # another user's token, or a connector's (ended by its grant only), is as absent as none
        core.revoke_token(token_id)
        return redirect("/-/tokens?done=revoked", 303)

    @bp.post("/-/tokens/connectors/<grant_id>/revoke")
    def revoke_connector(grant_id: str) -> Page:
        """End a connector's grant: its access and refresh tokens stop working at once."""
        user = signed_in()
        if not connectors.grants.end(user.name, grant_id):
            abort(404)  # another user's grant is as absent as a missing one
        return redirect(f"/-/tokens?done={CONNECTOR_REVOKED}", 303)

    return bp
