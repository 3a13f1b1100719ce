"""Keep secrets out of every line the platform logs and every message built from other programs'
output: tokens, passwords, cookies, Authorization headers, and user info or query values in URLs.

Applied last, to the whole formatted text (traceback included), so it holds whatever a format,
an exception message or a child process put there.
"""
from __future__ import annotations

import logging
import re

HIDDEN = "[redacted]"
SAFE_PARAMS = frozenset({"service", "mode", "limit"})  # query values worth keeping in a log

# headers whose value is a credential (also as WSGI environ keys: `HTTP_X_API_KEY`)
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "private-token",
                            "job-token", "x-api-key", "api-key", "x-auth-token", "x-access-token"})
_SECRET_KEYS = "(?:http_)?(?:" + "|".join(name.replace("-", "[-_]")
                                         for name in sorted(SECRET_HEADERS, key=len, reverse=True)) + ")"
_REPLACEMENTS = (
    (re.compile(r"wbt_[A-Za-z0-9_-]+"), f"wbt_{HIDDEN}"),  # a token anywhere, even in a path
    # URL user info: everything up to the last '@' before the first '/' (on one line), as libpq reads it:
    # a password may hold '@', quotes, '#', '?' or spaces
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\r\n]*@"), rf"\1{HIDDEN}@"),
    # `Cookie: v`, `cookie=v`, and quoted keys as dicts and header pairs print: `'Cookie': 'v'`, `(b'cookie', b'v')`;
    # the rest of the line goes with the value (a query parameter of that name is left to `_QUERY`)
    (re.compile(rf"(?i)(?<![?&])\b({_SECRET_KEYS})(['\"]\s*[:,]\s*|\s*[:=]\s*)[^\r\n]+"), rf"\1\2{HIDDEN}"),
    (re.compile(r"(?i)\b(basic|bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {HIDDEN}"),
)
_QUERY = re.compile(r"(?<=[\w/.~%-])\?([^\s'\"#<>]+)")  # a query string after a path or host


def _query(match: re.Match[str]) -> str:
    """Parameter names stay (they tell what a request was); values go unless known harmless."""
    kept = []
    for item in match[1].split("&"):
        name, eq, _ = item.partition("=")
        kept.append(item if name in SAFE_PARAMS else f"{name}={HIDDEN}" if eq else HIDDEN if item else "")
    return "?" + "&".join(kept)


def redact(text: str) -> str:
    """`text` with anything that may be a secret replaced by "[redacted]"."""
    for pattern, replacement in _REPLACEMENTS:
        text = pattern.sub(replacement, text)
    return _QUERY.sub(_query, text)


class RedactingFormatter(logging.Formatter):
    """Formats a record like `inner` does, then redacts the whole text."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def redact_handlers(logger: logging.Logger) -> None:
    """Make every handler of `logger` redact what it writes (idempotent)."""
    for handler in logger.handlers:
        if not isinstance(handler.formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(handler.formatter))
        if getattr(handler, "rich_tracebacks", False):
            handler.rich_tracebacks = False  # rich draws those from the exception, past any formatter


def redact_every_logger() -> None:
    """Make every handler of every logger that exists now redact. Libraries install their own at
    import (fastmcp: rich handlers on `fastmcp`, which does not propagate to the root logger),
    so call this once the application is imported."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        if isinstance(logger, logging.Logger):  # not the manager's placeholders
            redact_handlers(logger)
