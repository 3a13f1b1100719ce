"""Your wikis: the dashboard's home, creating a wiki, how to connect to one, its settings
(title, visibility, collaborators, deletion), and search across every wiki you can read."""
from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request
from werkzeug.wrappers import Response

from wikibot.bootstrap.create import create_wiki
from wikibot.bootstrap.from_git import is_url
from wikibot.bootstrap.templates import template_names
from wikibot.errors import WikibotError
from wikibot.gitd.core import Core
from wikibot.gitd.names import InvalidName, WikiName
from wikibot.gitd.records import User, Wiki

from .common import notice, signed_in, usage, visible_wiki, wiki_url
from .search import Found, InFlight, search_everywhere

Page = str | tuple[str, int] | Response


def readable_wikis(core: Core, user: User) -> list[tuple[Wiki, str]]:
    """The wikis `user` owns, then those shared with them, each with their role."""
    owned = [(w, "owner") for w in core.store.list_wikis(user.name)]
    shared = []
    for grant in core.store.list_grants(user=user.name):
        wiki = core.store.get_wiki(grant.wiki)
        if wiki is not None:
            shared.append((wiki, grant.role))
    return owned + shared


def searched_wikis(core: Core, user: User, public: bool) -> list[Wiki]:
    """What a search from the dashboard asks: the user's own and shared wikis, then (`public`) every
    other public wiki, the largest first (the first `search.MAX_WIKIS` of all are asked)."""
    mine = [wiki for wiki, _ in readable_wikis(core, user)]
    if not public:
        return mine
    seen = {wiki.name for wiki in mine}
    others = sorted((w for w in core.store.list_wikis() if w.public and w.name not in seen), key=lambda w: -w.pages)
    return mine + others


def may_use_git_templates(user: User) -> bool:
    """Cloning a wiki from a Git URL is for premium accounts (and admins)."""
    return user.admin or user.tier == "premium"


def blueprint(core: Core) -> Blueprint:
    bp = Blueprint("wikis", __name__)
    searching = InFlight()

    @bp.get("/-/")  # the dashboard's address inside the platform's own space, for links from wiki pages
    @bp.get("/")
    def home() -> Page:
        if g.user is None:
            return render_template("landing.html", signup=core.config.signup)
        wikis = [(wiki, role, usage(core, wiki)) for wiki, role in readable_wikis(core, g.user)]
        limits = core.config.limits(g.user.tier)
        owned = sum(1 for _, role, _ in wikis if role == "owner")
        return render_template("home.html", wikis=wikis, notice=notice(), owned=owned, max_wikis=limits.max_wikis)

    @bp.route("/-/new", methods=["GET", "POST"])
    def new() -> Page:
        user = signed_in()
        templates = template_names(core.config.templates_dir)
        form = {"title": "", "slug": "", "purpose": "", "public": "", "template": "default", "url": ""}
        git_ok = may_use_git_templates(user)
        if request.method == "GET":
            return render_template("new_wiki.html", form=form, templates=templates, git_ok=git_ok, error=None)
        form.update({k: request.form.get(k, "").strip() for k in form})
        form["template"] = form["template"] or "default"
        template = form["url"] if form["template"] == "url" else form["template"]
        try:
            if form["template"] == "url":
                if not git_ok:
                    raise WikibotError("creating a wiki from a Git URL is for premium accounts")
                if not is_url(template):
                    raise WikibotError("give the template's Git URL (http or https)")
            elif template not in templates:
                raise WikibotError(f"unknown template {template!r}")
            try:
                name = WikiName(user.name, form["slug"])
            except InvalidName as exc:
                raise WikibotError(f"the short name {form['slug']!r} cannot be used: {exc}") from None
            create_wiki(core, name, title=form["title"], purpose=form["purpose"], public=bool(form["public"]),
                        template=template)
        except WikibotError as exc:
            return render_template("new_wiki.html", form=form, templates=templates, git_ok=git_ok,
                                   error=str(exc)), 400
        return redirect(wiki_url(name, "connect?done=created"), 303)

    @bp.get("/-/wikis/<owner>/<slug>/connect")
    def connect(owner: str, slug: str) -> Page:
        user = signed_in()
        wiki, role = visible_wiki(core, owner, slug, user)
        base = core.config.public_url
        return render_template("connect.html", wiki=wiki, role=role, notice=notice(),
                               clone_url=f"{base}/{wiki.name}.git", mcp_url=f"{base}/mcp/{wiki.name}")

    @bp.get("/-/wikis/<owner>/<slug>/settings")
    def settings(owner: str, slug: str) -> Page:
        wiki, _ = visible_wiki(core, owner, slug, signed_in(), need="owner")
        return _settings(wiki)

    def _settings(wiki: Wiki, error: str | None = None, status: int = 200, **typed: str) -> tuple[str, int]:
        limits = core.limits_of(wiki.owner)
        grants = core.store.list_grants(wiki=wiki.name)
        return render_template("settings.html", wiki=wiki, grants=grants, usage=usage(core, wiki), error=error,
                               notice=notice(), max_collaborators=limits.max_collaborators, typed=typed), status

    @bp.post("/-/wikis/<owner>/<slug>/settings")
    def save_settings(owner: str, slug: str) -> Page:
        wiki, _ = visible_wiki(core, owner, slug, signed_in(), need="owner")
        try:
            core.update_wiki(wiki.name, title=request.form.get("title", ""), purpose=request.form.get("purpose", ""),
                             public=request.form.get("visibility") == "public")
        except WikibotError as exc:
            return _settings(wiki, str(exc), 400, title=request.form.get("title", ""),
                             purpose=request.form.get("purpose", ""), visibility=request.form.get("visibility", ""))
        return redirect(wiki_url(wiki.name, "settings?done=saved"), 303)

    @bp.post("/-/wikis/<owner>/<slug>/collaborators")
    def collaborator(owner: str, slug: str) -> Page:
        wiki, _ = visible_wiki(core, owner, slug, signed_in(), need="owner")
        who, role = request.form.get("user", "").strip(), request.form.get("role", "")
        try:
            if not who:
                raise WikibotError("give the user name of the person to add")
            core.grant(wiki.name, who, role)
        except WikibotError as exc:
            return _settings(wiki, str(exc), 400, collaborator=who)
        return redirect(wiki_url(wiki.name, "settings?done=collaborator"), 303)

    @bp.post("/-/wikis/<owner>/<slug>/collaborators/remove")
    def remove_collaborator(owner: str, slug: str) -> Page:
        wiki, _ = visible_wiki(core, owner, slug, signed_in(), need="owner")
        try:
            core.revoke(wiki.name, request.form.get("user", ""))
        except WikibotError as exc:
            return _settings(wiki, str(exc), 400)
        return redirect(wiki_url(wiki.name, "settings?done=removed"), 303)

    @bp.post("/-/wikis/<owner>/<slug>/delete")
    def delete(owner: str, slug: str) -> Page:
        wiki, _ = visible_wiki(core, owner, slug, signed_in(), need="owner")
        typed = request.form.get("confirm", "").strip()
        if typed != wiki.slug:
            return _settings(wiki, f"Nothing was deleted: type the wiki's short name, {wiki.slug}, to confirm.", 400,
                             confirm=typed)
        core.delete_wiki(wiki.name)
        return redirect("/?done=deleted", 303)

    @bp.get("/-/search")
    def search() -> Page:
        user = signed_in()
        query = request.args.get("q", "").strip()[:500]
        public = request.args.get("in") == "public"
        found = None
        if query:
            with searching.one(user.name) as free:  # a search asks many wikis: one at a time per user
                found = (search_everywhere(core, searched_wikis(core, user, public), query) if free else
                         Found(groups=[], error="Your last search is still running: wait for it, then try again."))
        return render_template("search.html", query=query, found=found, public=public)

    return bp
