"""Credentials: sensor tokens, user passwords, session tokens, failed-login limits.

- Sensor tokens are ``mts_`` + 32 random bytes (urlsafe base64), shown once and stored as
  sha256: the token has 256 bits of entropy, so a fast hash is enough and lookups are one
  indexed equality.
- User passwords are stored as scrypt (hashlib, N=2**14, r=8, p=1, 16-byte salt).
- ``/login`` gives a session token ``mtu_`` + 32 random bytes, stored as sha256, expiring.
- Failed logins are limited per user name and per client address in a sliding window
  (in process memory: the collector runs as one process; a restart forgets them).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from collector.models import ApiToken, AuditEvent, Sensor, User, utcnow

SENSOR_TOKEN_PREFIX = "mts_"
SESSION_TOKEN_PREFIX = "mtu_"
ROLES = ("viewer", "admin")
MIN_PASSWORD_LENGTH = 12
WEAK_PASSWORDS = frozenset({"changethis", "changeme", "password", "medtap", "admin"})
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MAX_TRACKED_KEYS = 10_000  # the failure tracker forgets the oldest keys past this


class CredentialError(ValueError):
    """A name, role or password the CLI or API must refuse; the message says why."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a sensor (ingest, policy fetch) or a user (viewer / admin)."""

    kind: str  # "sensor" | "user"
    name: str
    role: str  # "sensor" | "viewer" | "admin"
    sensor_id: int | None = None
    user_id: int | None = None
    token_id: int | None = None


def new_token(prefix: str) -> str:
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p, dklen=32
    )


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise CredentialError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if password.lower() in WEAK_PASSWORDS:
        raise CredentialError("that password is a well-known default")


# --- lookups -------------------------------------------------------------------------


def principal_for_token(session: Session, token: str, *, now: datetime) -> Principal | None:
    """The principal a bearer token stands for, or None if unknown, revoked or expired."""
    if not token.startswith((SENSOR_TOKEN_PREFIX, SESSION_TOKEN_PREFIX)) or len(token) > 256:
        return None
    row = session.scalars(
        select(ApiToken).where(
            ApiToken.token_hash == token_hash(token),
            ApiToken.revoked_at.is_(None),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
        )
    ).one_or_none()
    if row is None:
        return None
    if row.kind == "sensor" and row.sensor_id is not None:
        sensor = session.get(Sensor, row.sensor_id)
        if sensor is None or sensor.revoked_at is not None:
            return None
        return Principal("sensor", sensor.name, "sensor", sensor_id=sensor.id, token_id=row.id)
    if row.kind == "session" and row.user_id is not None:
        user = session.get(User, row.user_id)
        if user is None or user.disabled_at is not None:
            return None
        return Principal("user", user.name, user.role, user_id=user.id, token_id=row.id)
    return None


def authenticate_user(session: Session, name: str, password: str) -> User | None:
    """The enabled user with this name and password. An unknown name costs the same scrypt
    as a wrong password, so timing does not tell which names exist."""
    user = session.scalars(select(User).where(User.name == name)).one_or_none()
    if user is None or user.disabled_at is not None:
        verify_password(password, _dummy_hash())
        return None
    return user if verify_password(password, user.password_hash) else None


# --- writes (keyword-only, the caller commits) -----------------------------------------


def create_sensor(session: Session, *, name: str, rotate: bool = False) -> str:
    """Register ``name`` (or re-enable a revoked one) and return its new token, once."""
    sensor = session.scalars(select(Sensor).where(Sensor.name == name)).one_or_none()
    now = utcnow()
    if sensor is None:
        sensor = Sensor(name=name)
        session.add(sensor)
        session.flush()
    elif sensor.revoked_at is None and not rotate:
        raise CredentialError(f"sensor {name!r} exists; use --rotate for a new token")
    else:
        sensor.revoked_at = None
        _revoke_tokens(session, ApiToken.sensor_id == sensor.id, now)
    token = new_token(SENSOR_TOKEN_PREFIX)
    session.add(ApiToken(token_hash=token_hash(token), kind="sensor", sensor_id=sensor.id))
    return token


def revoke_sensor(session: Session, *, name: str) -> bool:
    sensor = session.scalars(select(Sensor).where(Sensor.name == name)).one_or_none()
    if sensor is None:
        return False
    now = utcnow()
    sensor.revoked_at = sensor.revoked_at or now
    _revoke_tokens(session, ApiToken.sensor_id == sensor.id, now)
    return True


def create_user(session: Session, *, name: str, role: str, password: str) -> User:
    if role not in ROLES:
        raise CredentialError(f"role must be one of {', '.join(ROLES)}")
    if not name or len(name) > 128:
        raise CredentialError("user name must have 1 to 128 characters")
    check_password_strength(password)
    if session.scalars(select(User.id).where(User.name == name)).first() is not None:
        raise CredentialError(f"user {name!r} exists")
    user = User(name=name, role=role, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def disable_user(session: Session, *, name: str) -> bool:
    user = session.scalars(select(User).where(User.name == name)).one_or_none()
    if user is None:
        return False
    now = utcnow()
    user.disabled_at = user.disabled_at or now
    _revoke_tokens(session, ApiToken.user_id == user.id, now)
    return True


def create_session(session: Session, *, user: User, hours: float) -> tuple[str, datetime]:
    token = new_token(SESSION_TOKEN_PREFIX)
    expires = utcnow() + timedelta(hours=hours)
    session.add(
        ApiToken(token_hash=token_hash(token), kind="session", user_id=user.id, expires_at=expires)
    )
    return token, expires


def revoke_token(session: Session, *, token_id: int) -> None:
    _revoke_tokens(session, ApiToken.id == token_id, utcnow())


def _revoke_tokens(session: Session, where: object, now: datetime) -> None:
    session.execute(
        update(ApiToken).where(where, ApiToken.revoked_at.is_(None)).values(revoked_at=now)  # type: ignore[arg-type]
    )


def audit(
    session: Session, *, actor: str, action: str, target: str | None, detail: str | None = None
) -> None:
    session.add(AuditEvent(actor=actor, action=action, target=target, detail=detail))


# --- failed-login limiter ---------------------------------------------------------------


class LoginLimiter:
    """Sliding-window count of failed logins per key ("user:NAME", "ip:ADDR")."""

    def __init__(self, *, window_seconds: float) -> None:
        self.window = window_seconds
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str, limit: int) -> int:
        """Seconds until ``key`` may try again (0: it may now)."""
        now = time.monotonic()
        with self._lock:
            fails = self._prune(key, now)
            if len(fails) < limit:
                return 0
            return max(1, int(fails[len(fails) - limit] + self.window - now) + 1)

    def failed(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            fails = self._prune(key, now)
            fails.append(now)
            self._fails[key] = fails
            if len(self._fails) > MAX_TRACKED_KEYS:  # dicts keep insertion order: oldest first
                self._fails.pop(next(iter(self._fails)))

    def reset(self, key: str) -> None:
        with self._lock:
            self._fails.pop(key, None)

    def _prune(self, key: str, now: float) -> deque[float]:
        fails = self._fails.get(key, deque())
        while fails and fails[0] <= now - self.window:
            fails.popleft()
        if not fails:
            self._fails.pop(key, None)
        return fails
