"""Accounts in the browser: signing in and out, signing up (closed, by invite, or open and limited
per client address), and your account (name, email, password, linked sign-ins, deletion)."""
from __future__ import annotations

from flask import Blueprint, abort, g, redirect, render_template, request

from wikibot.errors import WikibotError
from wikibot.gitd.core import NO_PASSWORD, Core
from wikibot.gitd.names import check_new_name, is_valid_name
from wikibot.gitd.secrets import check_password

from ..sessions import Sessions
from ..signup import BadInvite, Invite, Invites, signup_refusal
from .common import Limiters, accounts_changing, notice, others_left, safe_next, signed_in
from .wikis import Page

MAX_NAME = 100  # characters of a typed user name that count (no user name is longer)


def blueprint(core: Core, sessions: Sessions, limiters: Limiters, invites: Invites) -> Blueprint:
    bp = Blueprint("accounts", __name__)

    def login_page(error: str | None = None, status: int = 200, name: str = "", target: str = "/",
                   done: str = "") -> tuple[str, int]:
        return render_template("login.html", next=target, error=error, name=name, providers=core.config.providers,
                               signup=core.config.signup, notice=done), status

    @bp.get("/-/login")
    def login_form() -> Page:
        return login_page(target=safe_next(request.args.get("next")), done=notice())

    @bp.post("/-/login")
    def login() -> Page:
        name = request.form.get("username", "").strip()[:MAX_NAME]
        password = request.form.get("password", "")
        target = safe_next(request.form.get("next"))
        address = request.remote_addr or "-"
        wait = limiters.logins.retry_after(name, address)
        if wait > 0:
            minutes = max(1, round(wait / 60))
            return login_page(f"Too many failed sign-ins: try again in {minutes} minute(s).", 429, name, target)
        user = core.store.get_user(name) if is_valid_name(name) else None  # no odd bytes reach the store
        if not check_password(user.password_hash if user else None, password):
            limiters.logins.record(name, address)
            return login_page("Wrong user name or password.", 401, name, target)
        if user.disabled:
            return login_page("This account is disabled: ask an administrator.", 403, name, target)
        g.session = sessions.new(user)  # a new id: a session planted before sign-in is worth nothing
        return redirect(target, 303)

    @bp.post("/-/logout")
    def logout() -> Page:
        sessions.sign_out(g.session)
        g.signed_out = True
        return redirect("/", 303)

    @bp.post("/-/account/sessions/end")
    def end_sessions() -> Page:
        user = signed_in()
        sessions.end_all(user.name)  # this browser's too: it signs in again like the others
        g.signed_out = True
        return redirect("/-/login?done=signed-out", 303)

    # sign-up
    def signup_page(invite_token: str | None, invite: Invite | None, error: str | None = None, status: int = 200,
                    form: dict | None = None) -> tuple[str, int]:
        refusal = signup_refusal(core.config, invite)
        return render_template("signup.html", refusal=refusal, error=error, invite_token=invite_token,
                               providers=core.config.providers, form=form or {"username": "", "email": ""}), status

    def opened(token: str | None) -> Invite | None:
        if token is None:
            return None
        try:
            return invites.open(token, core.store)
        except BadInvite as exc:
            abort(400, str(exc))

    @bp.get("/-/signup", defaults={"token": None})
    @bp.get("/-/signup/<token>")
    def signup_form(token: str | None) -> Page:
        if g.user is not None:
            return redirect("/", 303)
        invite = opened(token)
        return signup_page(token, invite, status=200 if signup_refusal(core.config, invite) is None else 403)

    @bp.post("/-/signup", defaults={"token": None})
    @bp.post("/-/signup/<token>")
    def signup(token: str | None) -> Page:
        invite = opened(token)
        refusal = signup_refusal(core.config, invite)
        if refusal is not None:
            return signup_page(token, invite, status=403)
        form = {"username": request.form.get("username", "").strip()[:MAX_NAME],
                "email": request.form.get("email", "").strip()}
        password = request.form.get("password", "")
        address = request.remote_addr or "-"
        if invite is None and limiters.signups.retry_after(form["username"], address) > 0:
            return signup_page(token, invite, "Too many accounts were made from your address: try again in an hour.",
                               429, form)
        if limiters.logins.retry_after(None, address) > 0:  # refused tries count against the address
            return signup_page(token, invite, "Too many failed tries from your address: try again later.", 429, form)
        try:
            if password != request.form.get("password2", ""):
                raise WikibotError("the two passwords differ")
            check_new_name(form["username"], "user name")  # before the store sees it
            if core.store.get_user(form["username"]) is not None:  # said before the password is hashed
                raise WikibotError(f"user {form['username']!r} already exists")
            user, _ = core.add_user(form["username"], form["email"], password,
                                    tier=invite.tier if invite else "free", invite=invite.id if invite else None)
        except WikibotError as exc:
            limiters.logins.record(None, address)  # never the named account's: it is not being guessed
            return signup_page(token, invite, str(exc), 400, form)
        if invite is None:
            limiters.signups.record(form["username"], address)
        g.session = sessions.new(user)
        return redirect("/", 303)

    # your account
    def account_page(error: str | None = None, status: int = 200, section: str = "",
                     form: dict | None = None) -> tuple[str, int]:
        user = signed_in()
        form = form or {"email": user.email, "full_name": user.full_name}  # a refused form keeps what was typed
        return render_template("account.html", account=user, error=error, section=section, notice=notice(), form=form,
                               identities=core.store.list_identities(user.name), providers=core.config.providers,
                               has_password=user.password_hash.startswith("$"),
                               proved=sessions.recently_proved(g.session),
                               owned=core.store.list_wikis(user.name)), status

    @bp.get("/-/account")
    def account() -> Page:
        return account_page()

    @bp.post("/-/account/profile")
    def profile() -> Page:
        user = signed_in()
        form = {"email": request.form.get("email", "").strip()[:1000],
                "full_name": request.form.get("full_name", "").strip()[:1000]}
        try:
            core.update_profile(user.name, **form)
        except WikibotError as exc:
            return account_page(str(exc), 400, "profile", form)
        return redirect("/-/account?done=saved", 303)

    @bp.post("/-/account/password")
    def password() -> Page:
        user = signed_in()
        new, current = request.form.get("new_password", ""), request.form.get("current_password", "")
        address = request.remote_addr or "-"
        wait = limiters.passwords.retry_after(user.name, address)
        if wait > 0:  # the current password is guessed here no faster than at sign-in
            return account_page(f"Too many wrong passwords: try again in {max(1, round(wait / 60))} minute(s).", 429,
                                "password")
        # whoever holds this browser is the account's owner only as far as the browser proves it: a first
        # password (or one set without the current one) needs a sign-in through a linked provider just now,
        # or a stolen session would become a password its owner never knew and cannot change
        proved = sessions.recently_proved(g.session) and bool(core.store.list_identities(user.name))
        if user.password_hash == NO_PASSWORD and not proved:
            return account_page("To set a password, sign in with your linked provider again first, then set it "
                                "within 10 minutes.", 403, "password")
        try:
            if new != request.form.get("new_password2", ""):
                raise WikibotError("the two new passwords differ")
            changed = core.change_password(user.name, current, new, proven=proved and not current)
        except WikibotError as exc:
            if user.password_hash != NO_PASSWORD and current and not check_password(user.password_hash, current):
                limiters.passwords.record(user.name, address)
            return account_page(str(exc), 400, "password")
        # every other session of the account ends with the old password; this one goes on as it was
        g.session = sessions.new(changed, proved=g.session.proved)
        return redirect("/-/account?done=password", 303)

    @bp.post("/-/account/delete")
    def delete() -> Page:
        user = signed_in()
        if request.form.get("confirm", "").strip() != user.name:
            return account_page(f"Nothing was deleted: type your user name, {user.name}, to confirm.", 400, "delete")
        with accounts_changing(core):  # two last administrators deleting themselves at once: one stays
            if user.admin and not others_left(core, user.name):
                return account_page("Nothing was deleted: you are the only administrator. Make another first.", 400,
                                    "delete")
            core.delete_user(user.name, purge=True)
        g.signed_out = True
        return redirect("/?done=account-deleted", 303)

    return bp
