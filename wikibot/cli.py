"""The `wikibot` command line. Its commands and output shapes are a contract scripts rely on.

Every failure prints one line, `wikibot: error: ...`, on stderr and exits non-zero.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from wikibot.bootstrap.create import create_wiki
from wikibot.config import load_config
from wikibot.errors import WikibotError
from wikibot.gitd.core import Core, CoreError
from wikibot.gitd.names import WikiName
from wikibot.gitd.permissions import keep_private, repair
from wikibot.gitd.repository import RepoError
from wikibot.gitd.store import POSTGRES_SCHEMES, Store, open_postgres
from wikibot.oauth.grants import Grants
from wikibot.redaction import redact
from wikibot.wiring import open_core

ADMIN_NAME = "admin"
STARTER_WIKI = "notes"


class UsageError(WikibotError):
    """Wrong command-line usage."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage dump
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def cmd_init(core: Core, args: argparse.Namespace) -> None:
    core.initialise()
    if core.config.store_url:  # TinyDB's file needs no schema; PostgreSQL's is created or upgraded here
        version = core.store.migrate()
        print(f"PostgreSQL store {redact(core.config.store_url)} at schema version {version}")
    repaired = repair(core.config.data_dir)  # left readable by a version that did not set the umask
    if repaired:
        print(f"made {repaired} file(s) and folder(s) in {core.config.data_dir} private to this account")
    if core.store.list_users():
        print(f"wikibot is already initialised in {core.config.data_dir}")
        return
    _, password = core.add_user(ADMIN_NAME, admin=True, tier="premium", platform_account=True)
    wiki, _ = create_wiki(core, WikiName(ADMIN_NAME, STARTER_WIKI), title="Notes",
                          purpose="A starter wiki: try cloning, editing and pushing it.")
    _, token = core.create_token(ADMIN_NAME, scope="write", note="created by wikibot init")
    host = core.config.public_url.split("://", 1)
    print(f"wikibot initialised in {core.config.data_dir}")
    print("These secrets are shown once; keep them somewhere safe.")
    print(f"  admin user:   {ADMIN_NAME}")
    print(f"  password:     {password}")
    print(f"  write token:  {token}")
    print(f"Clone the starter wiki {wiki.name}:")
    print(f"  git clone {host[0]}://{ADMIN_NAME}:{token}@{host[1]}/{wiki.name}.git")
    print("Connect Claude Code to it over MCP:")
    print(f"  claude mcp add --transport http {wiki.slug} {core.config.public_url}/mcp/{wiki.name} "
          f"--header \"Authorization: Bearer {token}\"")


def cmd_user_add(core: Core, args: argparse.Namespace) -> None:
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    user, password_out = core.add_user(args.name, args.email or "", password,
                                       admin=args.admin, tier=args.tier)
    print(f"created user {user.name} (tier {user.tier}{', admin' if user.admin else ''})")
    if not args.password_stdin:
        print(f"password: {password_out}")


def cmd_user_list(core: Core, args: argparse.Namespace) -> None:
    rows = [[u.name, u.email or "-", u.tier, "yes" if u.admin else "", str(len(core.store.list_wikis(u.name)))]
            for u in core.store.list_users()]
    _table(rows, ["NAME", "EMAIL", "TIER", "ADMIN", "WIKIS"])


def cmd_user_delete(core: Core, args: argparse.Namespace) -> None:
    removed = core.delete_user(args.name, purge=args.purge)
    extra = f" and wikis {', '.join(removed)}" if removed else ""
    print(f"deleted user {args.name}{extra}")


def cmd_wiki_create(core: Core, args: argparse.Namespace) -> None:
    wiki, _ = create_wiki(core, args.wiki, title=args.name or "", purpose=args.purpose or "",
                          public=args.public, template=args.template)
    print(f"created wiki {wiki.name} ({'public' if wiki.public else 'private'})")
    print(f"  git clone {core.config.public_url}/{wiki.name}.git")
    print(f"  MCP: {core.config.public_url}/mcp/{wiki.name}")


def cmd_wiki_list(core: Core, args: argparse.Namespace) -> None:
    rows = []
    for w in core.store.list_wikis(args.owner):
        grants = ", ".join(f"{g.user}:{g.role}" for g in core.store.list_grants(wiki=w.name))
        rows.append([str(w.name), "public" if w.public else "private", str(w.pages),
                     f"{w.bytes / 1048576:.1f} MB", w.title, grants or "-"])
    _table(rows, ["WIKI", "ACCESS", "PAGES", "SIZE", "NAME", "COLLABORATORS"])


def cmd_wiki_delete(core: Core, args: argparse.Namespace) -> None:
    core.delete_wiki(args.wiki)
    print(f"deleted wiki {args.wiki}")


def cmd_wiki_visibility(core: Core, args: argparse.Namespace) -> None:
    core.set_public(args.wiki, args.visibility == "public")
    print(f"{args.wiki} is now {args.visibility}")


def cmd_wiki_grant(core: Core, args: argparse.Namespace) -> None:
    grant = core.grant(args.wiki, args.user, args.role)
    print(f"{grant.user} is now {grant.role} of {grant.wiki}")


def cmd_wiki_revoke(core: Core, args: argparse.Namespace) -> None:
    core.revoke(args.wiki, args.user)
    print(f"{args.user} no longer has a role on {args.wiki}")


def cmd_token_create(core: Core, args: argparse.Namespace) -> None:
    token, secret = core.create_token(args.user, args.scope, tuple(args.wiki), args.expires_days, args.note or "")
    limits = ", ".join(map(str, token.wikis)) if token.wikis else "all wikis the user can reach"
    print(f"created {token.scope} token {token.id} for {token.user} ({limits}; expires {_when(token.expires)})")
    print("The token is shown once:")
    print(secret)


def cmd_token_list(core: Core, args: argparse.Namespace) -> None:
    """Personal tokens, then the MCP connectors (one line per grant, not per token record)."""
    core.user(args.user)
    rows = [[t.id, t.scope, ",".join(map(str, t.wikis)) or "*", _when(t.created), _when(t.expires), _when(t.last_used),
             t.note]
            for t in core.personal_tokens(args.user)]
    _table(rows, ["ID", "SCOPE", "WIKIS", "CREATED", "EXPIRES", "LAST USED", "NOTE"])
    grants = Grants(core).of_user(args.user)
    if grants:
        print(f"\n{len(grants)} MCP connector(s) signed in through OAuth (revoke them on the dashboard's tokens page):")
        _table([[g.id, _printable(g.client_name), str(g.wiki), g.scope, _when(g.created), _when(g.expires),
                 _when(g.last_used)] for g in grants],
               ["GRANT", "CLIENT", "WIKI", "SCOPE", "CREATED", "EXPIRES", "LAST USED"])


def _printable(text: str) -> str:
    """A name someone else chose, safe to print: no terminal controls or direction overrides."""
    return "".join(c if c.isprintable() else "?" for c in text)


def cmd_token_revoke(core: Core, args: argparse.Namespace) -> None:
    core.revoke_token(args.id)
    print(f"revoked token {args.id}")


def _refuse_held(where: str, held: dict[str, int]) -> None:
    if any(held.values()):
        raise CoreError(f"the store at {where} already has records ({', '.join(f'{n} {k}' for k, n in held.items())});"
                        " copy only into an empty store")


def _store_at(location: str) -> Store:
    """The empty store `wikibot store copy --to` names: a PostgreSQL URL, `tinydb:PATH`, or a PATH ending
    in .json. A database is checked before its schema is made, so a wrong one is given no tables."""
    where = redact(location)
    if location.startswith(POSTGRES_SCHEMES):
        store = open_postgres(location)
        from wikibot.gitd.pg_store import PostgresStore  # importable: open_postgres succeeded

        assert isinstance(store, PostgresStore)
        _refuse_held(where, store.count_records())  # refuses another application's tables too
        store.migrate()
    elif location.startswith("tinydb:") or location.endswith(".json"):
        from wikibot.gitd.tiny_store import TinyStore

        store = TinyStore(Path(location.removeprefix("tinydb:")).absolute())
    else:
        raise UsageError(f"--to takes a postgresql:// URL, tinydb:PATH or a PATH ending in .json, not {where!r}")
    _refuse_held(where, {kind: len(records) for kind, records in _records(store).items()})
    return store


def _records(store: Store) -> dict[str, list]:
    users = store.list_users()
    return {"users": users, "wikis": store.list_wikis(), "grants": store.list_grants(),
            "tokens": store.list_tokens(), "identities": [i for u in users for i in store.list_identities(u.name)],
            "invites": store.list_used_invites()}


def cmd_store_copy(core: Core, args: argparse.Namespace) -> None:
    target = _store_at(args.to)
    where, into_postgres = redact(args.to), args.to.startswith(POSTGRES_SCHEMES)
    source = _records(core.store)
    target.load(*source.values())  # all of it or nothing
    copied, after = _records(target), _records(core.store)
    _table([[kind, str(len(source[kind])), str(len(copied[kind]))] for kind in source], ["RECORDS", "SOURCE", "TARGET"])
    differ = [kind for kind in source if set(source[kind]) != set(copied[kind])]
    if differ:
        raise CoreError(f"the copy at {where} differs from the source in: {', '.join(differ)}")
    changed = [kind for kind in source if set(source[kind]) != set(after[kind])]
    if changed:  # a running server wrote meanwhile: the copy misses that, and the platform would lose it
        counts = ", ".join(f"{kind} {len(source[kind])} -> {len(after[kind])}" for kind in changed)
        raise CoreError(f"the source changed during the copy ({counts}): something wrote to it meanwhile. Stop the "
                        f"server (and the worker), empty the store at {where} and copy again")
    print(f"copied every record to {where}")
    if into_postgres:
        print("to use it, set [store] url in wikibot.toml (or WIKIBOT_STORE_URL) to that URL and restart wikibot")


def cmd_worker(core: Core, args: argparse.Namespace) -> int:
    from wikibot.worker import run_worker

    return run_worker(core.config)


def _publisher(core: Core):
    from wikibot.hooks.post_receive import Publisher

    return Publisher(core.config.data_dir)


def cmd_events_status(core: Core, args: argparse.Namespace) -> None:
    from wikibot.worker import BUILTIN_CONSUMERS

    queue = _publisher(core).queue
    last = queue.last_id()
    names = sorted(set(queue.consumers()) | set(BUILTIN_CONSUMERS)
                   | {spec.split("=", 1)[0] for spec in core.config.consumers})
    dead = queue.dead_letters()
    rows = [[n, str(queue.cursor(n)), str(last - queue.cursor(n)), str(sum(1 for d in dead if d.consumer == n))]
            for n in names]
    print(f"{last} event(s) queued in all")
    _table(rows, ["CONSUMER", "CURSOR", "LAG", "DEAD"])
    if dead:
        print("dead letters:")
        _table([[d.consumer, str(d.event.id), d.event.wiki, d.event.source, str(d.attempts),
                 d.error.splitlines()[-1][:80]] for d in dead],
               ["CONSUMER", "EVENT", "WIKI", "SOURCE", "ATTEMPTS", "LAST ERROR"])


def cmd_events_replay(core: Core, args: argparse.Namespace) -> None:
    from wikibot.gitd.change import MAIN, ZERO, Change

    name = core.wiki(args.wiki).name
    publisher = _publisher(core)
    head = core.repos.head(name) or ZERO
    dead = publisher.queue.dead_letters(wiki=name)
    event_id = publisher.publish(Change(name, MAIN, ZERO, head, "sync", "wikibot events replay"))
    for d in dead:
        publisher.queue.forget_dead(d.consumer, d.event.id)
    print(f"queued event {event_id}: {name} from scratch to {head[:12]} for every consumer"
          f"{f'; cleared {len(dead)} dead letter(s)' if dead else ''}")


def _indexing(core: Core):
    from wikibot.indexer.model import Model
    from wikibot.indexer.storage import IndexStore

    model = Model(Path(core.config.model_path) if core.config.model_path else None)
    return IndexStore(core.config.index_dir), model


def cmd_index_rebuild(core: Core, args: argparse.Namespace) -> None:
    from wikibot.indexer.refresh import Indexer

    if bool(args.wiki) == args.all:
        raise UsageError("name one wiki (OWNER/SLUG) or pass --all")
    wikis = [w.name for w in core.store.list_wikis()] if args.all else [args.wiki]
    for wiki in wikis:
        core.wiki(wiki)
    store, model = _indexing(core)
    indexer = Indexer(core, store, model)
    for wiki in wikis:
        def bar(done: int, total: int, wiki: str = wiki) -> None:
            filled = int(30 * done / max(total, 1))
            print(f"\r{wiki}: [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} pages", end="",
                  file=sys.stderr, flush=True)

        result = indexer.refresh(wiki, from_scratch=True, progress=bar)
        print(file=sys.stderr)
        print(f"{wiki}: {result.chunks} chunks from "
              f"{result.pages_changed} pages at {(result.indexed_sha or 'empty')[:12]} in {result.seconds:.1f}s")


def cmd_index_status(core: Core, args: argparse.Namespace) -> None:
    from wikibot.indexer.storage import IndexCorrupt, IndexMissing, IndexStore

    store = IndexStore(core.config.index_dir)
    rows = []
    for wiki in core.store.list_wikis():
        head = core.repos.head(wiki.name)
        try:
            index, _ = store.load(wiki.name)
            indexed, chunks = index.indexed_sha, str(len(index.chunks))
        except IndexMissing:
            indexed, chunks = None, "-"
        except IndexCorrupt:
            indexed, chunks = None, "corrupt"
        if indexed == head:
            lag = "0"
        elif indexed and head:
            try:
                lag = str(core.repo(wiki.name).count_commits(indexed, head))
            except RepoError:
                lag = "unknown base"
        else:
            lag = "not indexed" if head else "empty wiki"
        rows.append([str(wiki.name), (head or "-")[:12], (indexed or "-")[:12], lag, chunks])
    _table(rows, ["WIKI", "HEAD", "INDEXED", "COMMITS BEHIND", "CHUNKS"])


def cmd_search(core: Core, args: argparse.Namespace) -> None:
    from wikibot.indexer.search import Searcher
    from wikibot.indexer.service import SearchUnavailable, remote_search

    name = core.wiki(args.wiki).name
    try:
        answer = remote_search(core.config.data_dir, name, args.query, args.mode, args.limit)
    except SearchUnavailable:
        print("(no worker running: loading the model here, which takes a few seconds)", file=sys.stderr)
        store, model = _indexing(core)
        answer = Searcher(store, model, core.store).search(name, args.query, args.mode,
                                                           args.limit).to_dict()
    if args.json:
        print(json.dumps(answer, indent=2))
        return
    print(f"{len(answer['hits'])} result(s) at {(answer['indexed_sha'] or 'nothing indexed yet')[:12]} "
          f"({answer['mode']})")
    for hit in answer["hits"]:
        anchor = f"#{hit['anchor']}" if hit["anchor"] else ""
        print(f"{hit['score']:.4f}  {hit['page']}{anchor}  [{hit['section']}]")
        print(f"        {hit['snippet']}")


def cmd_serve(core: Core, args: argparse.Namespace) -> int:
    from wikibot.serve import serve

    core.initialise()
    return serve(core.config)


def build_parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument("--data", default=argparse.SUPPRESS, metavar="DIR",
                        help="data directory (default: $WIKIBOT_DATA or ./var)")
    parser = Parser(prog="wikibot", parents=[common],
                    description="Self-hostable wikis for people and AI agents, built around a Git server.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def command(group, name: str, fn: Callable, help: str) -> Parser:
        p = group.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(fn=fn)
        return p

    command(sub, "init", cmd_init, "create the data dir; on first run an admin, a token and a starter wiki")
    serve = command(sub, "serve", cmd_serve, "run the whole platform in the foreground")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    command(sub, "worker", cmd_worker, "run only the event worker (serve starts it for you)")
    events = sub.add_parser("events", help="the change-event queue").add_subparsers(
        dest="action", required=True, parser_class=Parser)
    command(events, "status", cmd_events_status, "per-consumer lag and dead letters")
    p = command(events, "replay", cmd_events_replay, "make every consumer reprocess a wiki from scratch")
    p.add_argument("wiki", metavar="OWNER/SLUG", type=WikiName.parse)

    index = sub.add_parser("index", help="the search indexes").add_subparsers(
        dest="action", required=True, parser_class=Parser)
    p = command(index, "rebuild", cmd_index_rebuild, "rebuild search indexes from the repositories")
    p.add_argument("wiki", nargs="?", metavar="OWNER/SLUG", type=WikiName.parse)
    p.add_argument("--all", action="store_true")
    command(index, "status", cmd_index_status, "HEAD, indexed commit and lag of every wiki")
    p = command(sub, "search", cmd_search, "search a wiki")
    p.add_argument("wiki", metavar="OWNER/SLUG", type=WikiName.parse)
    p.add_argument("query")
    p.add_argument("--mode", default="hybrid", choices=["hybrid", "keyword", "semantic"])
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--json", action="store_true", help="print the answer as JSON")

    store = sub.add_parser("store", help="the platform state (users, wikis, grants, tokens)").add_subparsers(
        dest="action", required=True, parser_class=Parser)
    p = command(store, "copy", cmd_store_copy, "copy every record of the configured store into an empty one "
                "(stop the server first); the counts are checked and printed")
    p.add_argument("--to", required=True, metavar="URL",
                   help="postgresql://USER:PASSWORD@HOST:PORT/DATABASE, or tinydb:PATH or PATH.json for a TinyDB file")

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="action", required=True, parser_class=Parser)
    p = command(user, "add", cmd_user_add, "create a user (prints a generated password)")
    p.add_argument("name")
    p.add_argument("--email")
    p.add_argument("--admin", action="store_true")
    p.add_argument("--tier", default="free")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    command(user, "list", cmd_user_list, "list users")
    p = command(user, "delete", cmd_user_delete, "delete a user, their tokens and grants")
    p.add_argument("name")
    p.add_argument("--purge", action="store_true", help="also delete the wikis they own")

    wiki = sub.add_parser("wiki", help="manage wikis").add_subparsers(dest="action", required=True, parser_class=Parser)
    p = command(wiki, "create", cmd_wiki_create, "create a wiki")
    p.add_argument("wiki", metavar="OWNER/SLUG", type=WikiName.parse)
    p.add_argument("--name", help="display name (default: the slug)")
    p.add_argument("--purpose", help="what the wiki is for")
    p.add_argument("--public", action="store_true", help="anyone may read it")
    p.add_argument("--template", default="default", metavar="NAME|URL",
                   help="default (starter pages), empty, a folder of the templates_dir, or an http(s) Git URL "
                        "whose files become the first commit (default: default)")
    p = command(wiki, "list", cmd_wiki_list, "list wikis")
    p.add_argument("--owner")
    p = command(wiki, "delete", cmd_wiki_delete, "delete a wiki and its repository")
    p.add_argument("wiki", metavar="OWNER/SLUG", type=WikiName.parse)
    p = command(wiki, "visibility", cmd_wiki_visibility, "make a wiki public or private")
    p.add_argument("wiki", metavar="OWNER/SLUG", type=WikiName.parse)
    p.add_argument("visibility", choices=["public", "private"])
    p = command(wiki, "grant", cmd_wiki_grant, "give a user a role on a wiki")
    p.add_argument("wiki", metavar="OWNER/SLUG", type=WikiName.parse)
    p.add_argument("user")
    p.add_argument("--role", required=True, choices=["editor", "viewer"])
    p = command(wiki, "revoke", cmd_wiki_revoke, "remove a user's role on a wiki")
    p.add_argument("wiki", metavar="OWNER/SLUG", type=WikiName.parse)
    p.add_argument("user")

    token = sub.add_parser("token", help="manage personal access tokens").add_subparsers(
        dest="action", required=True, parser_class=Parser)
    p = command(token, "create", cmd_token_create, "create a token; prints it alone on the last line")
    p.add_argument("user")
    p.add_argument("--scope", default="read", choices=["read", "write"])
    p.add_argument("--wiki", action="append", default=[], metavar="OWNER/SLUG", type=WikiName.parse,
                   help="limit to this wiki (repeatable)")
    p.add_argument("--expires-days", type=float)
    p.add_argument("--note")
    p = command(token, "list", cmd_token_list, "list a user's tokens")
    p.add_argument("user")
    p = command(token, "revoke", cmd_token_revoke, "revoke a token by id")
    p.add_argument("id")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    keep_private()  # before anything is created; `serve` hands it on to gunicorn, the worker and git
    try:
        args = build_parser().parse_args(argv)
        config = load_config(getattr(args, "data", None))
        if args.fn is cmd_serve:
            from dataclasses import replace

            config = replace(config, host=args.host or config.host, port=args.port or config.port)
        core = open_core(config)
        if args.fn not in (cmd_init, cmd_serve, cmd_worker) and not config.data_dir.exists():
            raise CoreError(f"no data directory at {config.data_dir}; run 'wikibot init' first")
        return args.fn(core, args) or 0
    except WikibotError as exc:  # every refusal and failure the platform reports
        detail = getattr(exc, "detail", None)  # the store's: what HTTP clients are not told, for the admin
        print(f"wikibot: error: {detail or exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except OSError as exc:  # the machine refused (permissions, a full disk): its message names the file
        print(f"wikibot: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
