"""A template fetched from any Git URL: its files at the tip of the default branch, history stripped.

The URL comes from a user, so the fetch is fenced in: http/https only; the host's addresses are
checked (no loopback, private, link-local or reserved ones unless the admin allows them) and then
pinned for git, so a DNS answer cannot change between check and clone; no redirects, no credential
helpers or user config, a shallow clone without checkout (nothing from the template is written as
a file), a time limit, and a size limit enforced while it downloads (no file git writes may grow
past it). Symlinks, submodules and unsafe paths are refused like in a push. Credentials given in
the URL or configured for its prefix are used but never appear in an error message.
"""
from __future__ import annotations

import base64
import ipaddress
import os
import resource
import socket
import subprocess
import tempfile
import urllib.parse
from pathlib import Path

from wikibot.config import MB, Config
from wikibot.gitd.names import path_problem
from wikibot.gitd.repos import SAFE_ENV

from .templates import MANIFEST, MAX_FILES, Template, TemplateError, manifest_files

TEMPLATE_REF = "refs/heads/template"
SAFE_GIT_CONFIG = (
    "-c", "protocol.allow=never", "-c", "protocol.http.allow=always", "-c", "protocol.https.allow=always",
    "-c", "http.followRedirects=false", "-c", "credential.helper=", "-c", "core.hooksPath=/dev/null",
    "-c", "core.askPass=/bin/false", "-c", "init.templateDir=",
    "-c", "fetch.unpackLimit=1",  # always one pack file: the size limit then cuts it off as it grows
)


def is_url(template: str) -> bool:
    return template.startswith(("http://", "https://")) or "://" in template


def fetch(url: str, config: Config, max_file_bytes: int) -> Template:
    """The files of the repository at `url` as a template (substitution only where its manifest says)."""
    parts = urllib.parse.urlsplit(url)
    shown = redact(url)
    if parts.scheme not in ("http", "https"):
        raise TemplateError(f"template URL {shown} is refused: only http and https URLs can be cloned")
    if not parts.hostname:
        raise TemplateError(f"template URL {shown} has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _addresses(parts.hostname, port, shown)
    if not config.allow_private_urls:
        for address in addresses:
            if not ipaddress.ip_address(address).is_global:
                raise TemplateError(f"template URL {shown} is refused: {parts.hostname} is a loopback, private or "
                                    "reserved address (an admin can allow these with allow_private_urls)")
    pinned = ",".join(f"[{a}]" if ":" in a else a for a in addresses)
    args = [*SAFE_GIT_CONFIG, "-c", f"http.curloptResolve={parts.hostname}:{port}:{pinned}"]
    token = _configured_token(url, config)
    if token and not parts.password:
        basic = base64.b64encode(f"wikibot:{token}".encode()).decode()
        args += ["-c", f"http.extraHeader=Authorization: Basic {basic}"]
    limit = config.max_template_mb * MB
    with tempfile.TemporaryDirectory(prefix="wikibot-template-") as tmp:
        target = Path(tmp) / "repo.git"
        _clone(args, url, target, limit, config.clone_timeout, shown)
        return _read(target, limit, max_file_bytes, shown)


def redact(url: str) -> str:
    """`url` without user name or password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _addresses(host: str, port: int, shown: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TemplateError(f"template URL {shown}: cannot resolve {host} ({exc.strerror or exc})") from None
    return sorted({info[4][0] for info in infos})


def _configured_token(url: str, config: Config) -> str | None:
    matches = [prefix for prefix in config.template_credentials if url.startswith(prefix)]
    return config.template_credentials[max(matches, key=len)] if matches else None


def _clone(args: list[str], url: str, target: Path, limit: int, timeout: int, shown: str) -> None:
    def cap_file_size() -> None:  # in the child: a pack larger than the limit kills git (SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    # init + fetch rather than clone: a failed clone deletes its folder, and with it the evidence
    # (a pack cut off at the limit) that tells "too large" from other failures
    subprocess.run(["git", "init", "--quiet", "--bare", str(target)], check=True, capture_output=True, env=_env())
    command = ["git", "-C", str(target), *args, "fetch", "--quiet", "--depth=1", "--no-tags", "--", url,
               f"+HEAD:{TEMPLATE_REF}"]
    try:
        proc = subprocess.run(command, capture_output=True, timeout=timeout, preexec_fn=cap_file_size,
                              env=_env(HOME=str(target.parent)))
    except subprocess.TimeoutExpired:
        raise TemplateError(f"cloning {shown} took longer than {timeout} s; nothing was created") from None
    if proc.returncode != 0:
        if any(f.stat().st_size >= limit for f in target.rglob("*") if f.is_file()):  # the pack hit the limit
            raise TemplateError(f"template {shown} is larger than {limit // MB} MB; nothing was created")
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        if reason and "couldn't find remote ref" in reason[-1]:
            raise TemplateError(f"template {shown} has no commits (or there is no repository there)")
        detail = redact_text(reason[-1] if reason else f"git exited with {proc.returncode}", url)
        raise TemplateError(f"cannot clone {shown}: {detail}")


def _env(**extra: str) -> dict[str, str]:
    """Nothing of the server's environment but PATH: no user config, proxies or credentials."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **SAFE_ENV, **extra}


def redact_text(text: str, url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    for secret in (parts.password, parts.username):
        if secret:
            text = text.replace(secret, "***")
    return text


def _read(repo: Path, limit: int, max_file_bytes: int, shown: str) -> Template:
    """The tree at the clone's HEAD, checked like a push, read from the object store."""
    def git(*args: str, data: bytes | None = None) -> bytes:
        return subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True, check=True,
                              env=_env()).stdout

    try:
        listing = git("ls-tree", "-r", "-l", "-z", "--full-tree", TEMPLATE_REF).split(b"\0")
    except subprocess.CalledProcessError:
        raise TemplateError(f"template {shown} has no commits") from None
    entries, total = [], 0
    for line in filter(None, listing):
        meta, _, raw_path = line.partition(b"\t")
        mode, kind, blob, size = meta.split()
        path = raw_path.decode("utf-8", "replace")
        if mode == b"120000":
            raise TemplateError(f"template {shown} has a symlink ({path}); wikis hold plain files only")
        if kind != b"blob":
            raise TemplateError(f"template {shown} has a submodule ({path}); wikis hold plain files only")
        problem = path_problem(raw_path)
        if problem:
            raise TemplateError(f"template {shown}: path {path!r} {problem}")
        if int(size) > max_file_bytes:
            raise TemplateError(f"template {shown}: {path} is {int(size)} bytes, over the "
                                f"{max_file_bytes // MB} MB limit for one file")
        total += int(size)
        if total > limit:
            raise TemplateError(f"template {shown} is larger than {limit // MB} MB; nothing was created")
        entries.append((path, blob.decode()))
    if len(entries) > MAX_FILES:
        raise TemplateError(f"template {shown} has more than {MAX_FILES} files")
    out = git("cat-file", "--batch", data="".join(f"{blob}\n" for _, blob in entries).encode())
    files, pos = {}, 0
    for path, _ in entries:
        end = out.index(b"\n", pos)
        size = int(out[pos:end].split()[2])
        files[path] = out[end + 1:end + 1 + size]
        pos = end + 2 + size
    substitute = manifest_files(files.pop(MANIFEST).decode("utf-8", "replace")) if MANIFEST in files else frozenset()
    return Template(shown, files, substitute & set(files))
