"""Password hashing, personal access token secrets and the platform secret key."""
from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from argon2 import PasswordHasher

TOKEN_PREFIX = "wbt_"
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def new_token_secret() -> str:
    """`wbt_` + 32 random bytes, URL-safe: usable as an HTTP password and a bearer token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(secret: str) -> str:
    """Tokens are random and long, so a plain SHA-256 suffices (no slow hash needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def ensure_secret_key(path: Path) -> bytes:
    """Read the platform secret key, creating it (mode 0600) on first use."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key
