"""A template fetched from any Git URL: its files at the tip of the default branch, history stripped.

The URL comes from a user, so the fetch is fenced in: http/https only; the host's addresses are
checked (no loopback, private, link-local or reserved ones, also when embedded in IPv6, unless
the admin allows them) and then pinned for git, so a DNS answer cannot change between check and
fetch; no redirects, no credential helpers, user config or proxies; a shallow fetch into a bare
repository (nothing from the template is written as a file); time, memory and size limits on
every git process (the whole process group is killed on timeout); symlinks, submodules and unsafe
paths refused like in a push. Credentials, from the URL or configured for its host and path, reach
git through its environment (never its command line, which `ps` shows) and never a message (git's
own messages are redacted). A path that could name another place than it spells (dot segments,
encoded slashes) is refused; a URL that carries a credential must moreover spell its path plainly
(no '%', ';', query, fragment or non-ASCII), so a credential configured for a prefix never leaves it.
"""
from __future__ import annotations

import base64
import ipaddress
import socket
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from wikibot.config import MB, Config
from wikibot.gitd.names import path_problem
from wikibot.gitd.remote import FencedFetch, FetchError

from .templates import MANIFEST, MAX_FILES, Template, TemplateError, manifest_files

NAT64 = ipaddress.ip_network("64:ff9b::/96")
GIT_CONFIG = {
    "protocol.allow": "never", "protocol.http.allow": "always", "protocol.https.allow": "always",
    "http.followRedirects": "false", "credential.helper": "", "core.hooksPath": "/dev/null",
    "core.askPass": "/bin/false", "init.templateDir": "",
    "fetch.unpackLimit": "1",  # always one pack file: the size limit then cuts it off as it grows
    "http.lowSpeedLimit": "1000", "http.lowSpeedTime": "30",  # a trickling server is dropped
    "pack.threads": "1", "core.packedGitLimit": "256m", "core.deltaBaseCacheLimit": "64m",
}


@dataclass(frozen=True)
class Source:
    """A checked template URL: where to fetch it, how to show it, what to send and to pin."""
    url: str  # without user info
    shown: str  # without user info, query or fragment: safe for messages and the commit message
    host: str
    port: int
    authorization: str | None


def is_url(template: str) -> bool:
    """A template given as a URL (any scheme: the non-http ones are refused with a reason)."""
    return "://" in template


def fetch(url: str, config: Config, max_file_bytes: int, max_bytes: int) -> Template:
    """The files of the repository at `url` as a template (substitution only where its manifest says).
    `max_bytes` caps the whole download (the smaller of the admin's and the owner's limits)."""
    source = check_url(url, config)
    addresses = _addresses(source)
    if not config.allow_private_urls:
        refuse_private(addresses, source)
    pinned = ",".join(f"[{a}]" if ":" in a else a for a in addresses)
    settings = {**GIT_CONFIG, "http.curloptResolve": f"{source.host}:{source.port}:{pinned}"}
    if source.authorization:
        settings["http.extraHeader"] = f"Authorization: {source.authorization}"
    with tempfile.TemporaryDirectory(prefix="wikibot-template-") as tmp:
        fetched = FencedFetch(Path(tmp) / "repo.git", settings, max_bytes, config.clone_timeout,
                              f"template {source.shown}")
        try:
            fetched.fetch(source.url)
            return _read(fetched, max_bytes, max_file_bytes, source.shown)
        except FetchError as exc:
            raise TemplateError(str(exc)) from None


def check_url(url: str, config: Config) -> Source:
    """Refuse what may not be fetched; credentials move from the URL into a header."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise TemplateError("template URL is not a valid URL") from None
    shown = urllib.parse.urlunsplit((parts.scheme, _netloc(parts.hostname or "", port), parts.path, "", ""))
    if parts.scheme not in ("http", "https"):
        raise TemplateError(f"template URL {shown} is refused: only http and https URLs can be cloned")
    if not parts.hostname or any(c in url for c in "\r\n\t\0 "):
        raise TemplateError(f"template URL {shown} has no host or contains spaces or control characters")
    if _climbs(parts.path):
        raise TemplateError(f"template URL {shown} is refused: its path has '.' or '..' segments or an encoded "
                            "'/' or '\\' (git would resolve them after credentials were chosen); write the path "
                            "without them")
    port = port or (443 if parts.scheme == "https" else 80)
    plain = urllib.parse.urlunsplit((parts.scheme, _netloc(parts.hostname, parts.port), parts.path, parts.query, ""))
    if parts.username is not None or parts.password is not None:
        user = urllib.parse.unquote(parts.username or "")
        secret = urllib.parse.unquote(parts.password or "")
        authorization = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
    else:
        token = _configured_token(parts, port, config)
        authorization = "Basic " + base64.b64encode(f"wikibot:{token}".encode()).decode() if token else None
    problem = authorization and _unplain(url, parts)
    if problem:
        raise TemplateError(f"template URL {shown} is refused: it carries a credential, so its path must be "
                            f"spelled plainly, without {problem}")
    return Source(plain, shown, parts.hostname, port, authorization)


def _unplain(url: str, parts: urllib.parse.SplitResult) -> str | None:
    """What in a credential-carrying URL a server or proxy might read as another path than the one
    the credential was chosen for (what `_climbs` leaves to plain URLs); None when nothing."""
    if "?" in url or "#" in url:  # userinfo cannot hold them raw: they end the host part
        return "a query ('?') or fragment ('#')"
    if "%" in parts.path:
        return "percent-escapes ('%')"
    if ";" in parts.path:
        return "';'"
    if not (parts.path.isascii() and (parts.hostname or "").isascii()):
        return "non-ASCII characters"
    return None  # dot segments are refused for every URL (`_climbs`), before this is asked


def _climbs(path: str) -> bool:
    """Could the path name another place than it spells? curl removes dot segments (and servers
    decode `%2e`, `%2f`, `%5c`, or treat `..;` as `..`) after credentials were matched on the
    spelled path, so a credential for /templates would be sent for /templates/../private."""
    lowered = path.lower()
    if "%2f" in lowered or "%5c" in lowered or "\\" in path:
        return True
    return any(segment.split(";")[0] in (".", "..") for segment in lowered.replace("%2e", ".").split("/"))


def _netloc(host: str, port: int | None) -> str:
    netloc = f"[{host}]" if ":" in host else host
    return f"{netloc}:{port}" if port else netloc


def _addresses(source: Source) -> list[str]:
    try:
        infos = socket.getaddrinfo(source.host, source.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TemplateError(f"template URL {source.shown}: cannot resolve {source.host} "
                            f"({exc.strerror or exc})") from None
    return sorted({info[4][0] for info in infos})


def refuse_private(addresses: list[str], source: Source) -> None:
    """Refuse unless every address the host resolves to is public."""
    for address in addresses:
        if not _is_public(ipaddress.ip_address(address.split("%")[0])):
            raise TemplateError(f"template URL {source.shown} is refused: {source.host} is a loopback, private or "
                                "reserved address (an admin can allow these with allow_private_urls)")


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Global, and so is any IPv4 address embedded in it (mapped, 6to4, NAT64, IPv4-compatible)."""
    if not ip.is_global:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = [ip.ipv4_mapped, ip.sixtofour]
        if ip in NAT64 or int(ip) >> 32 == 0:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        return all(v4 is None or v4.is_global for v4 in embedded)
    return True


def _configured_token(parts: urllib.parse.SplitResult, port: int, config: Config) -> str | None:
    """The token configured for this scheme, host, port and path (prefix at a '/' boundary)."""
    best, best_len = None, -1
    for prefix, token in config.template_credentials.items():
        p = urllib.parse.urlsplit(prefix)
        p_port = p.port or (443 if p.scheme == "https" else 80)
        if (p.scheme, (p.hostname or "").lower(), p_port) != (parts.scheme, parts.hostname.lower(), port):
            continue
        path = p.path.rstrip("/")
        if (parts.path == path or parts.path.startswith(path + "/")) and len(path) > best_len:
            best, best_len = token, len(path)
    return best


def _read(fetched: FencedFetch, limit: int, max_file_bytes: int, shown: str) -> Template:
    """The tree at the fetched tip, checked like a push, read from the object store."""
    entries, total = [], 0
    for entry in fetched.tree():
        path = entry.path.decode("utf-8", "replace")
        if entry.mode == b"120000":
            raise TemplateError(f"template {shown} has a symlink ({path}); wikis hold plain files only")
        if entry.kind != b"blob":
            raise TemplateError(f"template {shown} has a submodule ({path}); wikis hold plain files only")
        problem = path_problem(entry.path)
        if problem:
            raise TemplateError(f"template {shown}: path {path!r} {problem}")
        if entry.size > max_file_bytes:
            raise TemplateError(f"template {shown}: {path} is {entry.size} bytes, over the "
                                f"{max_file_bytes / MB:g} MB limit for one file")
        total += entry.size
        if total > limit:
            raise TemplateError(f"template {shown} is larger than {limit / MB:g} MB; nothing was created")
        entries.append((path, entry.blob))
        if len(entries) > MAX_FILES:
            raise TemplateError(f"template {shown} has more than {MAX_FILES} files")
    contents = fetched.blobs([blob for _, blob in entries])
    files = {path: contents[blob] for path, blob in entries}
    substitute = manifest_files(files.pop(MANIFEST).decode("utf-8", "replace")) if MANIFEST in files else frozenset()
    return Template(shown, files, substitute & set(files))
