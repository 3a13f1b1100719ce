"""The platform's own pages: `/` and everything under `/-/` (the dashboard, sign-in, the stylesheet).

A Flask app made by `create_pages` with explicit arguments; it never touches Otterwiki. Here are
what every page shares: the session and its CSRF check on every POST, the security headers, the
error pages. The pages themselves are the dashboard's blueprints (`dashboard/`).
"""
from __future__ import annotations

import datetime
import logging
from pathlib import Path

from flask import Flask, Response, abort, g, render_template, request

from wikibot.errors import WikibotError
from wikibot.gitd.core import Core
from wikibot.oauth.provider import WikiAuthProvider

from .consent import consent_blueprint
from .dashboard import Limiters, blueprints
from .identity import identity_blueprint
from .sessions import Sessions, WebSession
from .signup import Invites

HERE = Path(__file__).parent
log = logging.getLogger(__name__)


def create_pages(core: Core, sessions: Sessions, limiters: Limiters, invites: Invites,
                 connectors: WikiAuthProvider) -> Flask:
    app = Flask(__name__, root_path=str(HERE), instance_path=str(core.config.cache_dir / "flask"),
                static_folder="static", static_url_path="/-/static", template_folder="templates")
    app.config.update(MAX_CONTENT_LENGTH=64 * 1024, MAX_FORM_MEMORY_SIZE=64 * 1024)

    @app.before_request
    def open_session() -> None:
        g.session = sessions.load(request.environ)
        g.user = sessions.user_of(g.session)
        if request.method == "POST" and not sessions.csrf_ok(g.session, request.form.get("csrf_token")):
            abort(400, "the form expired or came from another site: reload the page and try again")

    @app.after_request
    def keep_session(response: Response) -> Response:
        session: WebSession = g.get("session")
        if g.get("signed_out"):
            response.headers.add(*sessions.clear_cookie())
        elif session is not None and session.fresh:
            response.headers.add(*sessions.set_cookie(session))
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")  # invite links and tokens stay on the site
        response.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                                    "form-action 'self'; base-uri 'none'")
        return response

    @app.template_filter("when")
    def when(ts: float | None) -> str:
        return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else ""

    @app.context_processor
    def page_globals() -> dict:
        return {"user": g.get("user"), "csrf_token": sessions.csrf_token(g.session) if "session" in g else "",
                "public_url": core.config.public_url}

    for blueprint in blueprints(core, sessions, limiters, invites, connectors):
        app.register_blueprint(blueprint)
    app.register_blueprint(identity_blueprint(core, sessions, invites, limiters.signups))
    app.register_blueprint(consent_blueprint(core, connectors))

    @app.errorhandler(400)
    def bad_request(exc) -> tuple[str, int]:
        return render_template("message.html", title="Bad request", message=exc.description), 400

    @app.errorhandler(404)
    def not_found(exc) -> tuple[str, int]:
        return render_template("message.html", title="Not found", message="There is nothing here."), 404

    @app.errorhandler(405)
    def wrong_method(exc) -> tuple[str, int]:
        return render_template("message.html", title="Not allowed", message="This page does not take that."), 405

    @app.errorhandler(413)
    def too_large(exc) -> tuple[str, int]:
        return render_template("message.html", title="Too large", message="That form is too large."), 413

    @app.errorhandler(WikibotError)
    def refused(exc: WikibotError) -> tuple[str, int]:
        status = getattr(exc, "status", 400)
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.path, getattr(exc, "detail", exc))
        return render_template("message.html", title="Not done", message=str(exc)), status

    return app
