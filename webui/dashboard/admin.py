"""The platform admin's pages: users (create, invite, tier, disable) and every wiki with its usage."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, request

from wikibot.errors import WikibotError
from wikibot.gitd.core import Core

from ..sessions import Sessions
from ..signup import Invites
from .common import accounts_changing, admin_only, notice, others_left, usage
from .wikis import Page


def blueprint(core: Core, sessions: Sessions, invites: Invites) -> Blueprint:
    bp = Blueprint("admin", __name__)

    def page(error: str | None = None, status: int = 200, created: tuple | None = None,
             invite_link: str | None = None, form: dict | None = None) -> tuple[str, int]:
        admin_only()
        users = core.store.list_users()
        wikis = core.store.list_wikis()
        owned: dict[str, int] = {}
        for wiki in wikis:
            owned[wiki.owner] = owned.get(wiki.owner, 0) + 1
        return render_template("admin.html", users=users, owned=owned, wikis=[(w, usage(core, w)) for w in wikis],
                               tiers=sorted(core.config.tiers), error=error, created=created, notice=notice(),
                               invite_link=invite_link, signup=core.config.signup, invite_days=core.config.invite_days,
                               form=form or {"name": "", "email": "", "tier": "free"}), status

    @bp.get("/-/admin")
    def admin() -> Page:
        return page()

    @bp.post("/-/admin/users")
    def create_user() -> Page:
        admin_only()
        form = {k: request.form.get(k, "").strip() for k in ("name", "email", "tier")}
        try:
            user, password = core.add_user(form["name"], form["email"], tier=form["tier"] or "free",
                                           admin=request.form.get("admin") == "1")
        except WikibotError as exc:
            return page(str(exc), 400, form=form)
        return page(created=(user, password))  # the generated password, shown this once

    @bp.post("/-/admin/invites")
    def invite() -> Page:
        admin = admin_only()
        tier = request.form.get("tier", "free")
        if tier not in core.config.tiers:
            return page(f"unknown tier {tier!r}", 400)
        return page(invite_link=f"{core.config.public_url}/-/signup/{invites.make(admin.name, tier)}")

    @bp.post("/-/admin/users/<name>/tier")
    def tier(name: str) -> Page:
        admin_only()
        try:
            core.set_tier(name, request.form.get("tier", ""))
        except WikibotError as exc:
            return page(str(exc), 400)
        return redirect("/-/admin?done=user", 303)

    @bp.post("/-/admin/users/<name>/disabled")
    def disabled(name: str) -> Page:
        admin = admin_only()
        if name == admin.name:
            return page("You cannot disable your own account.", 400)
        stop = request.form.get("disabled") == "1"
        try:
            with accounts_changing(core):
                # read again under the lock: two administrators disabling each other at once leave one
                if stop and not others_left(core, name):
                    return page("Nothing was changed: your own account was disabled meanwhile.", 409)
                core.set_disabled(name, stop)
                if stop:
                    sessions.end_all(name)  # enabled again later, it signs in afresh
        except WikibotError as exc:
            return page(str(exc), 400)
        return redirect("/-/admin?done=user", 303)

    return bp
