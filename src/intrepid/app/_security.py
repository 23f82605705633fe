"""Security of the review application: password hashes, signed session cookies, CSRF tokens, signatures.

- Passwords are stored as scrypt hashes (RFC 7914; n = 2**14, r = 8, p = 1, 16-byte salt) from the standard
  library, compared in constant time.
- The server keeps a random 32-byte secret in ``secret.key`` of the data folder (mode 0600). Session ids,
  logins, CSRF tokens and approval signatures are HMAC-SHA256 under that secret.
- CSRF: every state-changing request carries a token bound to the browser's session id (synchroniser token,
  OWASP CSRF cheat sheet); cookies are HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import secrets
import time
from pathlib import Path

__all__ = [
    "csrf_token",
    "hash_password",
    "is_loopback",
    "load_secret",
    "login_cookie",
    "read_login_cookie",
    "sign",
    "verify_password",
]

_N, _R, _P = 2**14, 8, 1
#: Lifetime of a login, s.
LOGIN_TTL_S = 12 * 3600


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64) of ``password``."""
    if not password:
        raise ValueError("password must not be empty")
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the ``stored`` hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def load_secret(data_dir: Path) -> bytes:
    """The server secret (created, mode 0600, on first use)."""
    path = Path(data_dir) / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
    return path.read_bytes()


def sign(secret: bytes, message: str) -> str:
    """HMAC-SHA256 of ``message`` under ``secret``, hex."""
    return hmac.new(secret, message.encode("utf-8"), hashlib.sha256).hexdigest()


def csrf_token(secret: bytes, session_id: str) -> str:
    """The CSRF token of a session."""
    return sign(secret, f"csrf|{session_id}")


def login_cookie(secret: bytes, session_id: str, username: str, now: float | None = None) -> str:
    """``user|issued|signature`` bound to the session id."""
    issued = int(time.time() if now is None else now)
    return f"{username}|{issued}|{sign(secret, f'login|{session_id}|{username}|{issued}')}"


def read_login_cookie(
    secret: bytes, session_id: str, value: str | None, now: float | None = None
) -> str | None:
    """The user name of a valid, unexpired login cookie, else None."""
    if not value:
        return None
    try:
        username, issued, sig = value.rsplit("|", 2)
        issued_s = int(issued)
    except ValueError:
        return None
    if not hmac.compare_digest(sig, sign(secret, f"login|{session_id}|{username}|{issued_s}")):
        return None
    if (time.time() if now is None else now) - issued_s > LOGIN_TTL_S:
        return None
    return username


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
