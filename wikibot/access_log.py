"""gunicorn's logger for `wikibot serve`: request lines and error logs that cannot carry secrets.

A token is accepted as the Basic-auth user name and in a URL's user info, so gunicorn's default
access log (the `%(u)s` user name, the raw request line with its query) would record it. This
logger empties the user name and secret headers whatever format is configured, and every line it
writes passes `redact` last.
"""
from __future__ import annotations

import logging
import sys
from typing import Any

from gunicorn.glogging import Logger

from wikibot.redaction import HIDDEN, SECRET_HEADERS, redact_handlers

# no user name (%(u)s), referer (%(f)s) or headers; the request line is redacted on output
ACCESS_FORMAT = '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'


def _is_secret_header(atom: str) -> bool:
    """`{authorization}i`, `{http_cookie}e`, ...: a header that carries credentials."""
    name = atom[1:atom.rindex("}")].lower().removeprefix("http_").replace("_", "-")
    return name in SECRET_HEADERS


class GunicornLogger(Logger):
    """gunicorn's logger with the secret-bearing atoms emptied and every handler redacting.

    The platform's own loggers (and any library's that propagate) get a handler on the root
    logger, so their warnings are formatted and redacted too instead of going to Python's bare
    fallback handler."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        root = logging.getLogger()
        if not root.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter(self.error_fmt, self.datefmt))
            root.addHandler(handler)
        for logger in (self.error_log, self.access_log, root):
            redact_handlers(logger)

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["u"] = "-"  # the Basic-auth user name, where clients may put a token
        for key in atoms:
            if key.startswith("{") and _is_secret_header(key):
                atoms[key] = HIDDEN
        return atoms
