"""Password hashing, personal access token secrets and the platform secret key."""
from __future__ import annotations

import functools
import hashlib
import os
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

TOKEN_PREFIX = "wbt_"
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Does `password` match the stored hash? A malformed hash matches nothing."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _decoy_hash() -> str:
    """Verified against when the user does not exist, so a sign-in takes as long for a missing user
    (made on first use: hashing costs ~130 ms, which no process should pay at import)."""
    return _hasher.hash(secrets.token_hex(16))


def check_password(password_hash: str | None, password: str) -> bool:
    """`verify_password`, spending the same time when there is no user (`password_hash` None) or the
    account has no password (one that signs in through an identity provider)."""
    if password_hash is None or not password_hash.startswith("$"):
        verify_password(_decoy_hash(), password)
        return False
    return verify_password(password_hash, password)


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
