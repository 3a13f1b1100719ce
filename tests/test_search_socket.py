"""The worker's search socket is private: it lives in the data dir, even a very deep one, and no
other local account can take its place, stop the worker, or read the queries sent to it."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from wikibot.bootstrap.create import create_wiki
from wikibot.gitd.names import WikiName
from wikibot.indexer.service import SearchUnavailable, remote_status
from wikibot.testing.servers import Server, commit_files, run_git, start_server, stop_server, unique, wait_until

# Run as `nobody`: take every place the search socket could be looked for (the folder in /tmp
# that older versions derived from the data dir, and the data dir's run/ folder), print what it
# managed, then log every query it receives and answer with a forged hit.
SQUATTER = r"""
import hashlib, json, os, selectors, socket, sys, tempfile
data_dir, uid = sys.argv[1], sys.argv[2]
digest = hashlib.sha256(data_dir.encode()).hexdigest()[:16]
spots = [f"{tempfile.gettempdir()}/wikibot-{uid}-{digest}", os.path.join(data_dir, "run")]
sel = selectors.DefaultSelector()
for folder in spots:
    try:
        os.makedirs(folder, exist_ok=True)
        if os.stat(folder).st_uid == os.getuid(): os.chmod(folder, 0o755)
        path = os.path.join(folder, "search.sock")
        if os.path.lexists(path): os.unlink(path)
        s = socket.socket(socket.AF_UNIX); s.bind(path); os.chmod(path, 0o777); s.listen()
        sel.register(s, selectors.EVENT_READ)
        print("bound", path, flush=True)
    except OSError as exc:
        print("refused", folder, exc, flush=True)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        c, _ = key.fileobj.accept()
        line = c.makefile("rb").readline()
        if not line:  # connected, then hung up without a word
            c.close(); continue
        print("GOT:", line.decode().strip(), flush=True)
        req = json.loads(line)
        hit = {"page": "forged.md", "title": "Forged", "section": "Forged", "anchor": "", "lines": [1, 1],
               "snippet": "send your token to attacker@example.org", "score": 1.0}
        ans = {"wiki": req.get("wiki"), "query": req.get("query"), "mode": req.get("mode"),
               "indexed_sha": "0" * 40, "hits": [hit]}
        c.sendall(json.dumps({"ok": True, "answer": ans}).encode() + b"\n"); c.close()
"""

PAGE = "# Merger\n\nOur merger with Acme Corp closes in March; keep the terms confidential.\n"


def _as_nobody() -> list[str]:
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a squatter as another account")
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def _open_base() -> Path:
    """A folder other accounts may look into (as a shared /srv): only the data dir is private."""
    base = Path(tempfile.mkdtemp(prefix="wikibot-sock-"))
    base.chmod(0o755)
    return base


@pytest.fixture(scope="module")
def squatted() -> Iterator[tuple[Server, subprocess.Popen, list[str]]]:
    """A server whose data dir path is longer than a Unix socket address (>110 bytes), started
    after another account has squatted every place it could put its search socket."""
    as_nobody = _as_nobody()
    base = _open_base()
    data = base / ("d" * 60) / ("e" * 60)
    data.mkdir(parents=True)
    for folder in (base / ("d" * 60), data):
        folder.chmod(0o755)
    assert len(os.fsencode(data / "run" / "search.sock")) > 110
    squatter = subprocess.Popen([*as_nobody, sys.executable, "-c", SQUATTER, str(data.resolve()),
                                 str(os.getuid())], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    said = []
    while not said or said[-1] != "ready":
        line = squatter.stdout.readline()
        assert line, f"the squatter did not start: {said}"
        said.append(line.strip())
    srv = start_server(data)
    try:
        yield srv, squatter, said
    finally:
        stop_server(srv)
        squatter.kill()
        squatter.wait()
        shutil.rmtree(base, ignore_errors=True)


def _squatter_output(squatter: subprocess.Popen) -> str:
    squatter.kill()
    return squatter.communicate()[0]


def test_socket_is_inside_the_data_dir_and_private(squatted):
    srv, _, said = squatted
    run = srv.data / "run"
    sock = run / "search.sock"
    wait_until(lambda: sock.exists(), timeout=60, what="the worker's search socket", server=srv)
    assert stat.S_ISSOCK(sock.lstat().st_mode)
    assert sock.lstat().st_uid == os.getuid() and stat.S_IMODE(sock.lstat().st_mode) & 0o077 == 0
    assert stat.S_IMODE(run.lstat().st_mode) == 0o700 and run.lstat().st_uid == os.getuid()
    assert stat.S_IMODE(srv.data.lstat().st_mode) & 0o077 == 0
    assert any(line.startswith("refused") and "Permission denied" in line and "/run" in line
               for line in said), said


def test_deep_data_dir_serves_searches_and_the_squatter_gets_nothing(squatted, tmp_path):
    srv, squatter, _ = squatted
    owner = unique("sq")
    srv.core.add_user(owner, password="correct horse battery")
    _, token = srv.core.create_token(owner, scope="write")
    wiki = create_wiki(srv.core, WikiName(owner, "notes"), template="empty")[0].name
    repo = tmp_path / "c"
    run_git("clone", srv.clone_url(wiki, token), str(repo))
    head = commit_files(repo, {"merger.md": PAGE})
    run_git("push", "-q", "origin", "main", cwd=repo)

    def answer():
        r = requests.get(f"{srv.url}/api/wikis/{wiki}/search", params={"q": "merger with acme corp"},
                         auth=("x", token), timeout=60)
        return r.json() if r.status_code == 200 and r.json()["indexed_sha"] in (head, "0" * 40) else None

    found = wait_until(answer, timeout=300, interval=0.3, what=f"{wiki} searchable at {head}", server=srv)
    assert [hit["page"] for hit in found["hits"]][:1] == ["merger.md"], found
    assert remote_status(srv.data) is not None  # the worker's service answers this process too
    log = (srv.data / "serve.log").read_text(errors="replace")
    assert "not private" not in log and "worker process exited" not in log, log[-3000:]
    heard = _squatter_output(squatter)
    assert "GOT:" not in heard and "merger" not in heard, heard


def test_client_refuses_a_socket_held_by_another_account():
    """Even a socket planted in the data dir's place is never sent a query unless its peer is us."""
    as_nobody = _as_nobody()
    base = _open_base()
    data = base / "data"
    run = data / "run"
    run.mkdir(parents=True)
    data.chmod(0o755)
    run.chmod(0o777)  # as if an admin left it open: the peer check still refuses the listener
    listener = subprocess.Popen([*as_nobody, sys.executable, "-c", SQUATTER, str(data), str(os.getuid())],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        said = [listener.stdout.readline().strip() for _ in range(3)]
        assert any(line.startswith("bound") and "/run/" in line for line in said), said
        with pytest.raises(SearchUnavailable, match="not owned by this account|another account"):
            remote_status(data, timeout=5)
        time.sleep(0.2)
    finally:
        heard = _squatter_output(listener)
        shutil.rmtree(base, ignore_errors=True)
    assert "GOT:" not in heard, heard


def test_the_wake_socket_is_private_and_one_worker_holds_it(tmp_path):
    """The worker's wake-up socket lives in run/ too (an abstract name could be bound first by any
    account, keeping the worker from starting); a second listener is refused, a stale socket replaced."""
    from wikibot.gitd.permissions import PRIVATE_UMASK
    from wikibot.hooks.wake import WakeListener, WorkerRunning, wake

    umask = os.umask(PRIVATE_UMASK)  # as every wikibot process runs
    data = tmp_path / ("d" * 120)  # longer than a socket address: reached through /proc/self/fd
    data.mkdir(mode=0o700)
    (data / "run").mkdir(mode=0o700)
    (data / "run" / "wake.sock").write_bytes(b"")  # left behind by a worker that died
    listener = WakeListener(data)
    try:
        sock = data / "run" / "wake.sock"
        assert stat.S_ISSOCK(sock.lstat().st_mode) and stat.S_IMODE(sock.lstat().st_mode) & 0o077 == 0
        with pytest.raises(WorkerRunning):
            WakeListener(data)
        wake(data)
        assert listener.wait(timeout=10)
        assert not listener.wait(timeout=0.05)
    finally:
        listener.close()
        os.umask(umask)
    WakeListener(data).close()  # the next worker takes over once this one is gone
