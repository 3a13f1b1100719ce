"""The one error base: every refusal or failure the platform reports carries a message meant for the
person or agent who asked, and the HTTP status that answers it.

Each surface maps `WikibotError` in one place: the CLI prints the message (`wikibot: error: ...`), the
HTTP access layer answers `status` with it, the MCP server turns it into a tool error. Anything else
is a bug: logged in full, answered as an internal error.
"""
from __future__ import annotations


class WikibotError(Exception):
    """A refusal or failure to report as is; subclasses set `status` (400 unless said otherwise)."""

    status: int = 400

    @property
    def message(self) -> str:
        return str(self)


class NotFound(WikibotError):
    status = 404


class Conflict(WikibotError):
    status = 409


class Refused(WikibotError):
    """The platform's rules (limits, permissions) refuse what was asked; nothing changed."""

    status = 403


class Unavailable(WikibotError):
    """A part of the platform is not answering now (worker restarting, lock held); try again."""

    status = 503


class InternalError(WikibotError):
    """Something on the server failed (git, the disk); the message is for the log and the admin."""

    status = 500
