"""Collector settings, read from the environment (``MEDTAP_*``) with safe defaults.

Nothing secret has a default: sensor tokens and user passwords are created by the CLI and
stored hashed. A database URL that carries a well-known default password is refused, so a
copied example configuration cannot reach production unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

DEFAULT_DATABASE_URL = "sqlite:///medtap-collector.db"
# Passwords that example files and tutorials use; never acceptable for a real database.
DEFAULT_SECRETS = frozenset({"changethis", "changeme", "password", "secret", "postgres", "medtap"})


class SettingsError(ValueError):
    """A setting is missing, malformed or insecure; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    # Request bodies: bytes on the wire, and after gzip decoding (zip bombs stop here).
    max_body_bytes: int = 16 * 1024 * 1024
    max_decompressed_bytes: int = 64 * 1024 * 1024
    session_hours: float = 8.0
    # Failed logins allowed per window, per user name and per client address.
    login_max_failures: int = 5
    login_max_failures_per_ip: int = 50
    login_window_seconds: int = 900
    # Failed bearer tokens (and session cookies) allowed per client address per window.
    auth_max_failures_per_ip: int = 100
    # A sensor is "late" after this long without a heartbeat, "silent" after the second.
    sensor_late_seconds: int = 300
    sensor_silent_seconds: int = 1800
    # Collector-side cap on stored evidence rows per device (a sensor may send new
    # (kind, value, source) triples for months; the first ones are kept and counted).
    max_evidence_per_device: int = 2000
    # Where new violations are sent (collector/sinks.py specs: syslog+udp://, syslog+tcp://,
    # http(s)://, jsonl:); from MEDTAP_ALERT_SINKS, separated by whitespace, or --alert.
    alert_sinks: tuple[str, ...] = ()

    def with_database(self, url: str | None) -> Settings:
        return self if not url else replace(self, database_url=url)

    def validate(self) -> Settings:
        check_database_url(self.database_url)
        for name in (
            "max_body_bytes",
            "max_decompressed_bytes",
            "login_max_failures",
            "auth_max_failures_per_ip",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")
        if self.sensor_silent_seconds < self.sensor_late_seconds:
            raise SettingsError("sensor_silent_seconds must not be below sensor_late_seconds")
        return self


_ENV: dict[str, tuple[str, type]] = {
    "database_url": ("MEDTAP_DATABASE_URL", str),
    "max_body_bytes": ("MEDTAP_MAX_BODY_BYTES", int),
    "max_decompressed_bytes": ("MEDTAP_MAX_DECOMPRESSED_BYTES", int),
    "session_hours": ("MEDTAP_SESSION_HOURS", float),
    "login_max_failures": ("MEDTAP_LOGIN_MAX_FAILURES", int),
    "login_max_failures_per_ip": ("MEDTAP_LOGIN_MAX_FAILURES_PER_IP", int),
    "login_window_seconds": ("MEDTAP_LOGIN_WINDOW_SECONDS", int),
    "auth_max_failures_per_ip": ("MEDTAP_AUTH_MAX_FAILURES_PER_IP", int),
    "sensor_late_seconds": ("MEDTAP_SENSOR_LATE_SECONDS", int),
    "sensor_silent_seconds": ("MEDTAP_SENSOR_SILENT_SECONDS", int),
    "max_evidence_per_device": ("MEDTAP_MAX_EVIDENCE_PER_DEVICE", int),
    "alert_sinks": ("MEDTAP_ALERT_SINKS", tuple),
}


def settings_from_env(environ: dict[str, str] | None = None) -> Settings:
    """Settings from ``MEDTAP_*`` variables; unset ones keep their defaults."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for field, (var, kind) in _ENV.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        if kind is tuple:
            values[field] = tuple(raw.split())
            continue
        try:
            values[field] = kind(raw)
        except ValueError:
            raise SettingsError(f"{var}: not a valid {kind.__name__}") from None
    return Settings(**values).validate()  # type: ignore[arg-type]


def check_database_url(url: str) -> None:
    """Refuse unknown schemes and default passwords (the URL itself is never echoed)."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("sqlite", "postgresql", "postgres"):
        raise SettingsError(f"database URL scheme {scheme!r} is not supported")
    if parts.password is not None and parts.password.lower() in DEFAULT_SECRETS:
        raise SettingsError("the database URL uses a default password; set a real one")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")
