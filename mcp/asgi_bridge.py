"""Serve an ASGI app (FastMCP) from the platform's WSGI workers.

Git and the web wiki run in gunicorn's threaded WSGI workers; wrapping them in an ASGI server
instead costs every push ~20 ms (measured with a2wsgi). The MCP endpoint is stateless and answers
JSON, so each request is one body in and one body out: this bridge reads the body in the WSGI
thread, runs the ASGI app on one event loop per process and returns its answer. The loop and the
app's lifespan start on the first request, after gunicorn has forked (threads do not survive a fork).
A request that takes too long is answered 504 and cancelled; its `Deadline` (in the request state)
stops the tool's thread at its next checkpoint.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterable
from typing import Any

from starlette.applications import Starlette

from wikibot.gitd.http_access import Answer, StartResponse, status_line

from .deadline import Deadline

DRAIN_BYTES = 64 * 2**20


class BodyTooLarge(Exception):
    """The request body is over the bridge's limit (it is read whole into memory)."""


class AsgiBridge:
    """A WSGI app running one ASGI app per process on its own event loop thread."""

    def __init__(self, factory: Callable[[], Starlette], max_body: int, too_large: Answer,
                 timeout: float) -> None:
        self.factory = factory
        self.timeout = timeout
        self.max_body = max_body
        self.too_large = too_large
        self._lock = threading.Lock()
        self._running: tuple[asyncio.AbstractEventLoop, Starlette] | None = None

    def _started(self) -> tuple[asyncio.AbstractEventLoop, Starlette]:
        with self._lock:
            if self._running is None:
                app = self.factory()
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="asgi-bridge", daemon=True).start()
                started = threading.Event()

                async def lifespan() -> None:
                    async with app.router.lifespan_context(app):
                        started.set()
                        await asyncio.Event().wait()  # held open for the life of the process

                future = asyncio.run_coroutine_threadsafe(lifespan(), loop)
                while not started.wait(0.05):
                    if future.done():
                        future.result()  # raises the startup error
                self._running = (loop, app)
            return self._running

    def __call__(self, environ: dict[str, Any], start_response: StartResponse,
                 state: dict[str, Any]) -> Iterable[bytes]:
        """Run one request; `state` reaches the app as `request.state` (never from the client), with
        the request's `deadline` added."""
        try:
            body = _read_body(environ, self.max_body)
        except BodyTooLarge:
            return self.too_large.send(start_response)
        loop, app = self._started()
        deadline = Deadline.after(self.timeout, f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}")
        scope = _scope(environ, {**state, "deadline": deadline})
        future = asyncio.run_coroutine_threadsafe(_call(app, scope, body), loop)
        try:
            status, headers, chunks = future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()  # the task; a tool's thread stops at its next checkpoint (the deadline is past)
            answer = Answer.rpc_error(504, f"the request timed out after {self.timeout:.0f} s; a write may still have "
                                    "landed: read the page (or retry with the same base revision) to know. "
                                    "For reads, try a smaller request (one page, fewer results)")
            status, headers, chunks = answer.status_line, answer.header_list, [answer.body]
        start_response(status, headers)
        return chunks


def _read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The whole body, or BodyTooLarge once it is over `limit`. The rest of a too-large body is
    read and dropped (up to a bound): a client still sending would miss the answer explaining why."""
    stream = environ["wsgi.input"]
    body = stream.read(limit + 1)
    if len(body) <= limit:
        return body
    dropped = len(body)
    while dropped < DRAIN_BYTES and (chunk := stream.read(1 << 20)):
        dropped += len(chunk)
    raise BodyTooLarge


def _scope(environ: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    headers = [(key[5:].lower().replace("_", "-").encode("latin-1"), value.encode("latin-1"))
               for key, value in environ.items() if key.startswith("HTTP_")]
    for key, name in (("CONTENT_TYPE", b"content-type"), ("CONTENT_LENGTH", b"content-length")):
        if environ.get(key):
            headers.append((name, environ[key].encode("latin-1")))
    script = environ.get("SCRIPT_NAME", "")
    path = (script + environ.get("PATH_INFO", "")).encode("latin-1").decode("utf-8", "replace")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": environ.get("SERVER_PROTOCOL", "HTTP/1.1").partition("/")[2] or "1.1",
        "method": environ["REQUEST_METHOD"],
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "path": path,
        "raw_path": path.encode(),
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "root_path": "",
        "headers": headers,
        "server": (environ.get("SERVER_NAME", ""), int(environ.get("SERVER_PORT") or 0)),
        "state": dict(state),
    }
    if environ.get("REMOTE_ADDR"):
        scope["client"] = (environ["REMOTE_ADDR"], int(environ.get("REMOTE_PORT") or 0))
    return scope


async def _call(app: Starlette, scope: dict[str, Any], body: bytes) -> tuple[str, list[tuple[str, str]], list[bytes]]:
    """Run the app to completion, collecting its response."""
    sent_body = False
    response: dict[str, Any] = {"status": 500, "headers": []}
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client stays connected until the app is done
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response["status"] = message["status"]
            response["headers"] = message.get("headers", [])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response["headers"]]
    return status_line(response["status"]), headers, chunks
