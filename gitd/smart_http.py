"""The Git smart-HTTP endpoints: `/{user}/{wiki}.git/info/refs`, `git-upload-pack`, `git-receive-pack`.

Routing, authentication and the response codes are ours (dulwich's `FileSystemBackend` cannot
resolve paths under a WSGI mount, and its app knows no ACL); the protocol is dulwich's. Bodies are
streamed both ways: the request through a reader (gunzipped when git compresses it), the response
through the WSGI `write` callable as dulwich produces it.
"""
from __future__ import annotations

import gzip
import io
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from dulwich.errors import GitProtocolError
from dulwich.protocol import ReceivableProtocol
from dulwich.repo import Repo
from dulwich.server import Backend

from wikibot.config import MB
from wikibot.errors import WikibotError

from .acl import Action
from .core import Core
from .http_access import Answer, Caller, Refusal, StartResponse, access
from .names import NAME_PATTERN, WikiName
from .receive import WikiReceivePackHandler
from .upload import PackCache, WikiUploadPackHandler, native_upload_pack, needs_native

log = logging.getLogger(__name__)

ROUTE = re.compile(rf"/(?P<owner>{NAME_PATTERN})/(?P<slug>{NAME_PATTERN})\.git/"
                   r"(?P<endpoint>info/refs|git-upload-pack|git-receive-pack)")
SERVICES = ("git-upload-pack", "git-receive-pack")
NO_CACHE = [
    ("Expires", "Fri, 01 Jan 1980 00:00:00 GMT"),
    ("Pragma", "no-cache"),
    ("Cache-Control", "no-cache, max-age=0, must-revalidate"),
]
MAX_NEGOTIATION = 10 * MB


class _OneRepoBackend(Backend):
    """dulwich handlers open their repo through a backend; ours hands over the one already open."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def open_repository(self, path: str) -> Repo:
        return self.repo


def _text(start_response: StartResponse, status: int, message: str,
          headers: Iterable[tuple[str, str]] = ()) -> list[bytes]:
    return Answer.text(status, message, headers).send(start_response)


def _refuse(start_response: StartResponse, refusal: Refusal) -> list[bytes]:
    if refusal.status == 401:
        reason = f"{refusal.reason}; use a personal access token as the password"
    else:  # a wiki the caller may not see is simply not there
        reason = refusal.reason if refusal.status == 403 else "repository not found"
    return Answer.refusal("text", refusal.status, reason, refusal.headers).send(start_response)


class RequestTooLarge(WikibotError):
    """An upload-pack request (wants and haves, after gunzip) over MAX_NEGOTIATION bytes."""

    status = 413


def _is_gzip(environ: dict[str, Any]) -> bool:
    return environ.get("HTTP_CONTENT_ENCODING", "").lower() in ("gzip", "x-gzip")


def _read_negotiation(environ: dict[str, Any]) -> bytes:
    """The whole upload-pack request, gunzipped, refusing more than MAX_NEGOTIATION bytes: a tiny
    gzip body can inflate to gigabytes, and negotiations are small (git itself caps them at 10 MB)."""
    body = environ["wsgi.input"]  # gunicorn has already de-chunked it (see DESIGN pitfalls)
    if _is_gzip(environ):
        body = gzip.GzipFile(fileobj=body, mode="rb")
    data = body.read(MAX_NEGOTIATION + 1)
    if len(data) > MAX_NEGOTIATION:
        raise RequestTooLarge(f"fetch negotiation over {MAX_NEGOTIATION // MB} MB")
    return data


class GitHTTP:
    """WSGI app for the smart-HTTP protocol; `None` from `match` lets a parent app route elsewhere."""

    def __init__(self, core: Core) -> None:
        self.core = core

    @staticmethod
    def match(path: str) -> re.Match[str] | None:
        return ROUTE.fullmatch(path)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        m = self.match(environ.get("PATH_INFO", ""))
        if m is None:
            return _text(start_response, 404, "wikibot: repository not found")
        name = WikiName(m["owner"], m["slug"])
        advertise = m["endpoint"] == "info/refs"
        method = environ.get("REQUEST_METHOD", "GET")
        if advertise:
            service = _query_service(environ.get("QUERY_STRING", ""))
            if method not in ("GET", "HEAD"):
                return _text(start_response, 405, "use GET", [("Allow", "GET")])
            if service is None:
                return _text(start_response, 403, "wikibot serves the smart HTTP protocol only; upgrade git")
        else:
            service = m["endpoint"]
            if method != "POST":
                return _text(start_response, 405, "use POST", [("Allow", "POST")])
            if environ.get("CONTENT_TYPE") != f"application/x-{service}-request":
                return _text(start_response, 415, f"expected application/x-{service}-request")
            if service == "git-receive-pack" and _is_gzip(environ):
                return _text(start_response, 415, "compressed pushes are not accepted")
        action = Action.WRITE if service == "git-receive-pack" else Action.READ
        caller = access(self.core.store, environ, name, action, scheme="Basic")
        if isinstance(caller, Refusal):
            return _refuse(start_response, caller)
        if service == "git-receive-pack" and not advertise:
            limits = self.core.limits_of(name.owner)
            if _content_length(environ) > limits.max_repo_bytes:
                return _text(start_response, 413,
                             f"wikibot: push too large: over the {limits.max_repo_mb} MB repository size limit")
        if not self.core.repos.exists(name):
            log.error("wiki %s has a record but no repository", name)
            return _text(start_response, 404, "wikibot: repository not found")
        return self._serve(environ, start_response, caller, service, advertise)

    def _serve(self, environ: dict[str, Any], start_response: StartResponse, caller: Caller,
               service: str, advertise: bool) -> Iterable[bytes]:
        kind = "advertisement" if advertise else "result"
        headers = [("Content-Type", f"application/x-{service}-{kind}"), *NO_CACHE]
        write: Callable[[bytes], Any] | None = None

        def write_fn(data: bytes) -> int:
            nonlocal write
            if write is None:  # headers go out with the first byte, so errors before it get a 400
                write = start_response("200 OK", headers)
            write(data)
            return len(data)

        name = caller.name
        try:
            if service == "git-upload-pack" and not advertise:
                request = _read_negotiation(environ)
                if needs_native(request):
                    for chunk in native_upload_pack(self.core.repos.path(name), request):
                        write_fn(chunk)
                    return self._finish(write, start_response, headers)
                read = io.BytesIO(request).read
            else:
                read = environ["wsgi.input"].read if not advertise else (lambda n: b"")
            self._handle(caller, service, advertise, ReceivableProtocol(read, write_fn))
        except RequestTooLarge as exc:
            return _text(start_response, exc.status, f"wikibot: {exc}")
        except (GitProtocolError, OSError, EOFError, WikibotError) as exc:
            if isinstance(exc, WikibotError) and exc.status >= 500:
                log.exception("%s %s failed", service, name)
                if write is None:
                    return _text(start_response, exc.status, "wikibot: internal error; see the server log")
                raise
            log.warning("%s %s: %s", service, name, exc)
            if write is None:
                return _text(start_response, 400, f"wikibot: bad {service} request: {exc}")
            raise
        except Exception:
            log.exception("%s %s failed", service, name)
            if write is None:
                return _text(start_response, 500, "wikibot: internal error; see the server log")
            raise
        return self._finish(write, start_response, headers)

    @staticmethod
    def _finish(write, start_response: StartResponse, headers: list[tuple[str, str]]) -> list[bytes]:
        if write is None:  # nothing to say (e.g. a fetch of nothing): still a valid empty answer
            start_response("200 OK", headers)
        return []

    def _handle(self, caller: Caller, service: str, advertise: bool, proto: ReceivableProtocol) -> None:
        repo = Repo(str(self.core.repos.path(caller.name)))
        try:
            if advertise:
                proto.write_pkt_line(f"# service={service}\n".encode())
                proto.write_pkt_line(None)
            backend = _OneRepoBackend(repo)
            if service == "git-upload-pack":
                cache = PackCache(self.core.pack_cache_dir(caller.name))
                handler = WikiUploadPackHandler(backend, [""], proto, repo_path=Path(repo.path), cache=cache,
                                                stateless_rpc=True, advertise_refs=advertise)
            else:
                session = self.core.receive_session(caller.name, caller.actor)
                handler = WikiReceivePackHandler(backend, [""], proto, session=session,
                                                 stateless_rpc=True, advertise_refs=advertise)
            handler.handle()
        finally:
            repo.close()


def _content_length(environ: dict[str, Any]) -> int:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _query_service(query: str) -> str | None:
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "service" and value in SERVICES:
            return value
    return None
