"""The query service: the worker, which holds the model, answers searches for other processes.

Web workers and CLI calls stay light (no torch, no 440 MB model each): they send one JSON line
over a Unix socket in a private (0700) folder and read one JSON line back. Access control is
the caller's job; the socket's folder keeps other local users out.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from .search import Searcher, SearchError

log = logging.getLogger(__name__)


class SearchUnavailable(Exception):
    """No worker answers for this data dir (not started yet, or restarting)."""


def socket_path(data_dir: Path) -> Path:
    """Short and private: Unix socket paths are limited to ~107 bytes, data dirs can be deep."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"wikibot-{os.getuid()}-{digest}" / "search.sock"


MAX_REQUEST = 65536  # bytes: a query is capped at 1,000 characters anyway


class _Handler(socketserver.StreamRequestHandler):
    timeout = 30  # a client that connects and says nothing does not hold a thread for ever

    def handle(self) -> None:
        searcher: Searcher = self.server.searcher  # type: ignore[attr-defined]
        try:
            line = self.rfile.readline(MAX_REQUEST)
            if not line.endswith(b"\n"):
                raise ValueError("request too long or cut short")
            request = json.loads(line)
            if request.get("status"):
                status = self.server.status()  # type: ignore[attr-defined]
                self.wfile.write(json.dumps({"ok": True, "status": status}).encode() + b"\n")
                return
            answer = searcher.search(request["wiki"], request["query"], request.get("mode", "hybrid"),
                                     int(request.get("limit", 10)))
            reply = {"ok": True, "answer": answer.to_dict()}
        except (SearchError, KeyError, ValueError, TypeError) as exc:
            reply = {"ok": False, "error": str(exc)}
        except Exception as exc:  # the service's fault (e.g. the model failed to load): keep serving
            log.exception("search failed")
            reply = {"ok": False, "unavailable": True, "error": f"search failed: {exc}"}
        self.wfile.write(json.dumps(reply).encode() + b"\n")


class SearchServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, data_dir: Path, searcher: Searcher, status: Callable[[], dict] = dict) -> None:
        path = socket_path(data_dir)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        if path.parent.stat().st_uid != os.getuid() or path.parent.stat().st_mode & 0o077:
            raise OSError(f"{path.parent} is not private to this user")
        path.unlink(missing_ok=True)
        self.searcher = searcher
        self.status = status  # what the worker is busy with, for `remote_status`
        super().__init__(str(path), _Handler)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="search-service", daemon=True)
        thread.start()
        return thread


def remote_search(data_dir: Path, wiki: str, query: str, mode: str = "hybrid", limit: int = 10,
                  timeout: float = 30.0) -> dict:
    """Ask the worker; returns the answer dict, raises SearchError or SearchUnavailable."""
    return _ask(data_dir, {"wiki": wiki, "query": query, "mode": mode, "limit": limit}, timeout)["answer"]


def remote_status(data_dir: Path, timeout: float = 10.0) -> dict:
    """What the worker's indexing is busy with (running, waiting, retrying wikis)."""
    return _ask(data_dir, {"status": True}, timeout)["status"]


def _ask(data_dir: Path, message: dict, timeout: float) -> dict:
    request = json.dumps(message).encode() + b"\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(socket_path(data_dir)))
            s.sendall(request)
            reply = json.loads(s.makefile("rb").readline() or b"null")
    except (OSError, ValueError) as exc:
        raise SearchUnavailable(f"the search service is not answering ({exc})") from None
    if not reply:
        raise SearchUnavailable("the search service closed the connection")
    if not reply["ok"]:
        raise (SearchUnavailable if reply.get("unavailable") else SearchError)(reply["error"])
    return reply
