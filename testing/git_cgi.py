"""WSGI app running `git http-backend` as a CGI: the reference Git server of the benchmark.

Served by gunicorn (see bench_servers.git_http_backend). GIT_PROJECT_ROOT comes from the
process environment. The request body is streamed to the CGI's stdin from a thread
and its stdout streamed back, so neither side buffers a whole pack in memory.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import IO

CHUNK = 64 * 1024
# Request variables passed through to the CGI; HTTP_* headers are passed as well, except
# Transfer-Encoding: gunicorn has already de-chunked the body.
CGI_VARS = ("REQUEST_METHOD", "QUERY_STRING", "PATH_INFO", "CONTENT_TYPE", "CONTENT_LENGTH",
            "REMOTE_USER", "REMOTE_ADDR", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL")
COMMAND = ["git", "-c", "http.receivepack=true", "http-backend"]


def _cgi_env(environ: dict) -> dict[str, str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/"),
        "GIT_PROJECT_ROOT": os.environ["GIT_PROJECT_ROOT"],
        "GIT_HTTP_EXPORT_ALL": "1",
        "GATEWAY_INTERFACE": "CGI/1.1",
    }
    env.update({k: environ[k] for k in CGI_VARS if environ.get(k)})
    env.update({k: v for k, v in environ.items()
                if k.startswith("HTTP_") and k != "HTTP_TRANSFER_ENCODING"})
    return env


def _feed(body: IO[bytes], stdin: IO[bytes]) -> None:
    """Copy the request body to the CGI; the CGI may stop reading early (errors)."""
    try:
        while chunk := body.read(CHUNK):
            stdin.write(chunk)
    except BrokenPipeError:
        pass
    finally:
        try:
            stdin.close()
        except BrokenPipeError:
            pass


def _read_headers(stdout: IO[bytes]) -> tuple[str, list[tuple[str, str]]]:
    """Parse the CGI header block into a WSGI status line and header list."""
    status, headers = "200 OK", []
    while (line := stdout.readline().rstrip(b"\r\n")):
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "status":
            status = value.strip()
        else:
            headers.append((name.strip(), value.strip()))
    return status, headers


class _CgiResponse:
    """Response iterable streaming the CGI's stdout; close() reaps the process."""

    def __init__(self, proc: subprocess.Popen, feeder: threading.Thread | None) -> None:
        self.proc, self.feeder = proc, feeder

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.proc.stdout.read1(CHUNK):
            yield chunk

    def close(self) -> None:
        self.proc.stdout.close()  # a client gone mid-response makes the CGI exit on EPIPE
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.feeder:
            self.feeder.join()


def app(environ: dict, start_response: Callable) -> _CgiResponse:
    has_body = environ["REQUEST_METHOD"] == "POST"
    proc = subprocess.Popen(COMMAND, env=_cgi_env(environ), stdout=subprocess.PIPE,
                            stdin=subprocess.PIPE if has_body else subprocess.DEVNULL)
    feeder = None
    if has_body:
        feeder = threading.Thread(target=_feed, args=(environ["wsgi.input"], proc.stdin), daemon=True)
        feeder.start()
    response = _CgiResponse(proc, feeder)
    try:
        status, headers = _read_headers(proc.stdout)
    except BaseException:
        response.close()
        raise
    start_response(status, headers)
    return response
