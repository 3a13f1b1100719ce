"""Registered OAuth clients and the codes of pending consents, in a SQLite file of the data dir.

Clients register themselves without credentials (RFC 7591), so they are kept cheap: their metadata
as the SDK validated it, and no secret at all: a confidential client's secret is an HMAC of its id
with a key of the platform's, computed when needed. A client that was never used for a consent goes
after a day. Codes are stored hashed, live a few minutes and are used once: the row stays until it
expires, holding the grant the first use made, so a second use can end it (RFC 6749 4.1.2).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from wikibot.errors import WikibotError
from wikibot.gitd.names import WikiName
from wikibot.gitd.records import Scope
from wikibot.local_state import SharedFile

CODE_SECONDS = 300
UNUSED_CLIENT_SECONDS = 86400  # a registration no consent followed
MAX_CLIENTS = 100_000  # every registered client at once; registrations are limited per address too


class RegistryFull(WikibotError):
    status = 503


@dataclass(frozen=True)
class Code:
    """A consent given, waiting for its exchange."""

    client: str
    user: str
    wiki: WikiName
    wiki_created: float  # the wiki consented to: one made again under its name is another
    scope: Scope
    challenge: str  # PKCE S256
    redirect_uri: str
    explicit: bool  # whether the authorization request named redirect_uri (then the exchange must too)
    resource: str
    expires: float
    grant: str | None  # the grant its (first) exchange made


class Registry(SharedFile):
    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS clients (id TEXT PRIMARY KEY, info TEXT NOT NULL, created REAL NOT NULL,"
        " used REAL)",
        "CREATE INDEX IF NOT EXISTS clients_unused ON clients (used, created)",
        "CREATE TABLE IF NOT EXISTS codes (hash TEXT PRIMARY KEY, client TEXT NOT NULL, user TEXT NOT NULL,"
        " wiki TEXT NOT NULL, wiki_created REAL NOT NULL, scope TEXT NOT NULL, challenge TEXT NOT NULL,"
        " redirect_uri TEXT NOT NULL, explicit INTEGER NOT NULL, resource TEXT NOT NULL, expires REAL NOT NULL,"
        " grant_id TEXT)",
        "CREATE INDEX IF NOT EXISTS codes_by_time ON codes (expires)",
    )

    def __init__(self, path, key: bytes) -> None:
        super().__init__(path)
        self._key = key

    # clients
    def client_secret(self, client_id: str) -> str:
        return hmac.new(self._key, f"oauth-client:{client_id}".encode(), hashlib.sha256).hexdigest()

    def add_client(self, client_id: str, info: dict) -> None:
        db = self._db()
        now = time.time()
        db.execute("DELETE FROM clients WHERE used IS NULL AND created < ?", (now - UNUSED_CLIENT_SECONDS,))
        (count,) = db.execute("SELECT count(*) FROM clients").fetchone()
        if count >= MAX_CLIENTS:
            raise RegistryFull("too many clients are registered; try again later")
        db.execute("INSERT INTO clients (id, info, created) VALUES (?, ?, ?)", (client_id, json.dumps(info), now))

    def client(self, client_id: str) -> dict | None:
        row = self._db().execute("SELECT info FROM clients WHERE id = ?", (client_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def client_used(self, client_id: str) -> None:
        self._db().execute("UPDATE clients SET used = ? WHERE id = ?", (time.time(), client_id))

    # codes
    def add_code(self, code: Code) -> str:
        """Store a consent's code; returns the code (256 random bits), shown to the client only."""
        secret = secrets.token_urlsafe(32)
        db = self._db()
        db.execute("DELETE FROM codes WHERE expires < ?", (time.time() - CODE_SECONDS,))
        db.execute("INSERT INTO codes (hash, client, user, wiki, wiki_created, scope, challenge, redirect_uri,"
                   " explicit, resource, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (_hash(secret), code.client, code.user, str(code.wiki), code.wiki_created, code.scope,
                    code.challenge, code.redirect_uri, int(code.explicit), code.resource, code.expires))
        self.client_used(code.client)
        return secret

    def code(self, secret: str) -> Code | None:
        row = self._db().execute(
            "SELECT client, user, wiki, wiki_created, scope, challenge, redirect_uri, explicit, resource, expires,"
            " grant_id FROM codes WHERE hash = ?", (_hash(secret),)).fetchone()
        if row is None:
            return None
        return Code(row[0], row[1], WikiName.parse(row[2]), row[3], row[4], row[5], row[6], bool(row[7]), row[8],
                    row[9], row[10])

    def claim(self, secret: str, grant: str) -> bool:
        """Mark the code used by `grant`; False if it was used already (by another exchange)."""
        cur = self._db().execute("UPDATE codes SET grant_id = ? WHERE hash = ? AND grant_id IS NULL",
                                 (grant, _hash(secret)))
        return cur.rowcount == 1


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
