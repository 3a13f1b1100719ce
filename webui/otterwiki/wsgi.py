"""Small WSGI helpers of the host: request bodies read before any lock, whole answers read under
it, the prefix rewrite of HTML, and the plain answers the host gives itself."""
from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Iterable, Sequence
from html import escape
from typing import IO, Any

from werkzeug.wrappers import Request

from wikibot.config import MB
from wikibot.gitd.http_access import StartResponse

from .save import BASE_FIELD

URL_ATTRIBUTE = re.compile(rb"""(\s(?:href|src|action|formaction|data-[\w-]+)=["'])/(?!/)""")


class TooLarge(Exception):
    """A request body over the cap."""


def buffered_body(environ: dict[str, Any], cap: int) -> IO[bytes]:
    """The request body, read to its end before any lock is taken (a client sending it slowly then
    holds up no one but itself); at most `cap` bytes, in memory up to 1 MB, then in a temp file."""
    stream = environ.get("wsgi.input")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() or environ.get("wsgi.input_terminated")
    if stream is None or (length <= 0 and not chunked):
        return io.BytesIO()
    if length > cap:
        raise TooLarge()
    buffer = tempfile.SpooledTemporaryFile(max_size=MB)
    left = length if length > 0 else cap + 1
    while left > 0:
        chunk = stream.read(min(left, 64 * 1024))
        if not chunk:
            break
        buffer.write(chunk)
        left -= len(chunk)
        if buffer.tell() > cap:
            raise TooLarge()
    buffer.seek(0)
    return buffer


def busy_save(start_response: StartResponse, environ: dict[str, Any]) -> Iterable[bytes]:
    """A save that could not get the wiki's lock in time: the same form again, the text in it."""
    form = Request(environ).form
    hidden = "".join(f'<input type="hidden" name="{escape(key)}" value="{escape(form.get(key, ""))}">'
                     for key in ("csrf_token", BASE_FIELD, "commit") if key in form)
    page = (f'<!doctype html><meta charset="utf-8"><title>Not saved yet</title><h1>Not saved yet</h1>'
            f'<p>The wiki is busy with another write. Nothing was saved; your text is below: save it again.</p>'
            f'<form method="post" action="">{hidden}<textarea name="content" rows="20" cols="90">'
            f'{escape(form.get("content", ""))}</textarea><p><button type="submit">Save</button></p></form>')
    return html_page(start_response, "503 Service Unavailable", page, [("Retry-After", "5")])


def html_page(start_response: StartResponse, status: str, page: str,
              headers: Sequence[tuple[str, str]] = ()) -> Iterable[bytes]:
    """A small page of the platform's own, answered whole."""
    body = page.encode()
    start_response(status, [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))),
                            *headers])
    return [body]


def run(app: Any, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Call a WSGI app and read its whole answer (so the caller can release the lock after)."""
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answer["status"], answer["headers"] = status, list(headers)
        return lambda data: answer.setdefault("early", []).append(data)

    result = app(environ, start_response)
    try:
        body = b"".join([*answer.get("early", []), *result])
    finally:
        close = getattr(result, "close", None)
        if close:
            close()
    return answer["status"], answer["headers"], body


def into_prefix(html: bytes, prefix: bytes) -> bytes:
    """Root-relative URLs in attributes (`href="/Page"`) point into the wiki, unless already there."""
    out = []
    last = 0
    for match in URL_ATTRIBUTE.finditer(html):
        end = match.end()  # just after the URL's leading "/"
        out.append(html[last:end])
        if not html.startswith(prefix, end - 1):
            out.append(prefix[1:])
        last = end
    out.append(html[last:])
    return b"".join(out)


def split(path: str) -> tuple[str, str, str]:
    parts = path.split("/", 3)
    if len(parts) < 3:
        return "", "", ""
    return parts[1], parts[2], ("/" + parts[3]) if len(parts) > 3 else ""


def query(environ: dict[str, Any]) -> str:
    query = environ.get("QUERY_STRING", "")
    return f"?{query}" if query else ""


def redirect(start_response: StartResponse, location: str) -> Iterable[bytes]:
    start_response("303 See Other", [("Location", location), ("Content-Length", "0"), ("Cache-Control", "no-store")])
    return [b""]


def plain(start_response: StartResponse, status: int, text: str) -> Iterable[bytes]:
    from http import HTTPStatus

    body = (text + "\n").encode()
    start_response(f"{status} {HTTPStatus(status).phrase}", [("Content-Type", "text/plain; charset=utf-8"),
                                                             ("Content-Length", str(len(body)))])
    return [body]
