"""The platform's own pages: `/` and everything under `/-/` (sign-in, sign-out, the stylesheet).

A Flask app made by `create_pages` with explicit arguments; it never touches Otterwiki. The
dashboard (accounts, wikis, collaborators, tokens) will join it as blueprints.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, Response, abort, g, redirect, render_template, request

from wikibot.gitd.core import Core
from wikibot.gitd.secrets import check_password

from .sessions import LoginLimiter, Sessions, WebSession

HERE = Path(__file__).parent
MAX_NAME = 100  # characters of a typed user name that count (no user name is longer)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (never `//host` or `https://…`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/"


def create_pages(core: Core, sessions: Sessions, limiter: LoginLimiter) -> Flask:
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
        return response

    @app.context_processor
    def page_globals() -> dict:
        return {"user": g.get("user"), "csrf_token": sessions.csrf_token(g.session) if "session" in g else "",
                "public_url": core.config.public_url}

    @app.get("/")
    def home() -> str:
        wikis = []
        if g.user is not None:
            owned = core.store.list_wikis(g.user.name)
            shared = [core.store.get_wiki(grant.wiki) for grant in core.store.list_grants(user=g.user.name)]
            wikis = owned + [w for w in shared if w is not None]
        return render_template("home.html", wikis=wikis)

    @app.get("/-/login")
    def login_form() -> str:
        return render_template("login.html", next=safe_next(request.args.get("next")), error=None, name="")

    @app.post("/-/login")
    def login() -> Response | tuple[str, int]:
        name = request.form.get("username", "").strip()[:MAX_NAME]
        password = request.form.get("password", "")
        target = safe_next(request.form.get("next"))
        address = request.remote_addr or "-"
        wait = limiter.retry_after(name, address)
        if wait > 0:
            minutes = max(1, round(wait / 60))
            return render_template("login.html", next=target, name=name,
                                   error=f"Too many failed sign-ins: try again in {minutes} minute(s)."), 429
        user = core.store.get_user(name) if name else None
        if not check_password(user.password_hash if user else None, password):
            limiter.failed(name, address)
            return render_template("login.html", next=target, name=name,
                                   error="Wrong user name or password."), 401
        g.session = sessions.new(user)  # a new id: a session planted before sign-in is worth nothing
        return redirect(target, 303)

    @app.post("/-/logout")
    def logout() -> Response:
        g.signed_out = True
        return redirect("/", 303)

    @app.errorhandler(400)
    def bad_request(exc) -> tuple[str, int]:
        return render_template("message.html", title="Bad request", message=exc.description), 400

    @app.errorhandler(404)
    def not_found(exc) -> tuple[str, int]:
        return render_template("message.html", title="Not found", message="There is nothing here."), 404

    return app
