"""Web sessions, CSRF and security headers for the server-rendered inventory.

- The session cookie carries a collector session token (``mtu_…``, the same kind ``POST
  /api/v1/login`` issues, stored hashed and expiring): HttpOnly, SameSite=Strict, Path=/,
  Secure when the request came over TLS. Logging out revokes the token server-side.
- CSRF: every state-changing form carries a per-session token in a hidden field,
  ``HMAC-SHA256(session token, purpose)`` (OWASP's HMAC token pattern): only a holder of the
  HttpOnly cookie can know it, and it dies with the session. The login form, which has no
  session yet, uses a random double-submit cookie instead. Both are compared in constant time.
- Every web response gets CSP without inline script or style, frame-ancestors 'none' and
  X-Frame-Options DENY, nosniff, a strict Referrer-Policy and no caching (pages show the
  inventory of a hospital network: nothing of it belongs in a shared browser cache).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import Depends, HTTPException, Request, status

from collector.api.deps import token_principal
from collector.auth import SESSION_TOKEN_PREFIX, Principal

SESSION_COOKIE = "medtap_session"
LOGIN_CSRF_COOKIE = "medtap_login_csrf"
CSRF_FIELD = "csrf"
_CSRF_PURPOSE = b"medtap-web-csrf-v1"
MAX_FORM_BYTES = 64 * 1024  # a comment and a few fields; nothing larger is a real form
MAX_FORM_FIELDS = 20

SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}


class LoginRequired(Exception):
    """No valid session cookie: the page answers with a redirect to the login form."""


@dataclass(frozen=True)
class WebUser:
    principal: Principal
    token: str

    @property
    def name(self) -> str:
        return self.principal.name

    @property
    def is_admin(self) -> bool:
        return self.principal.role == "admin"

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), _CSRF_PURPOSE, hashlib.sha256).hexdigest()


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)


def same_token(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def csrf_refused() -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail="missing or wrong CSRF token")


def check_csrf(user: WebUser, form: Mapping[str, str]) -> None:
    if not same_token(user.csrf, form.get(CSRF_FIELD)):
        raise csrf_refused()


def is_tls(request: Request) -> bool:
    return request.url.scheme == "https"


def safe_next(target: str | None) -> str:
    """A local path to return to after login; anything else (``//host``, ``https:``,
    backslashes a browser would normalise) becomes ``/``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def login_url(request: Request) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login" if here == "/" else f"/login?next={quote(here, safe='')}"


def session_user(request: Request) -> WebUser:
    """The logged-in user of this request, from the session cookie (raises LoginRequired)."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token.startswith(SESSION_TOKEN_PREFIX):
        raise LoginRequired
    # the same per-address limit on failed tokens as the API's bearer header (429 past it)
    principal = token_principal(request, token, unauthorized=lambda _: LoginRequired())
    if principal.kind != "user":
        raise LoginRequired
    return WebUser(principal, token)


UserDep = Annotated[WebUser, Depends(session_user)]


def require_admin(user: WebUser) -> None:
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="admin role required")


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as {field: first value}, bounded."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail="expected a form")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, detail="form too large")
    if b"\x00" in body or b"%00" in body:  # no field takes one; PostgreSQL cannot compare it
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="malformed form")
    try:
        parsed = parse_qs(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="malformed form") from None
    return {k: v[0] for k, v in parsed.items()}
