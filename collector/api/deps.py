"""Request dependencies: the database session, settings and the caller's role.

401 means "who are you?" (no token, unknown, revoked or expired; with
``WWW-Authenticate: Bearer``); 403 means "known, but not allowed" (a sensor token on a
read endpoint, a viewer on an admin endpoint, a sensor posting as another sensor); 429
means too many failed tokens from this client address (``token_principal``).
The token lookup uses its own short session, so the request's session starts clean and a
write path can open its transaction as a write transaction (collector.db.begin_write).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from collector.auth import LoginLimiter, Principal, principal_for_token
from collector.models import utcnow
from collector.settings import Settings

log = logging.getLogger(__name__)
bearer = HTTPBearer(auto_error=False, description="sensor token (mts_…) or session (mtu_…)")


def get_db(request: Request) -> Iterator[Session]:
    maker: sessionmaker[Session] = request.app.state.sessionmaker
    with maker() as session:
        yield session


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing bearer token")
    return token_principal(request, credentials.credentials, unauthorized=_unauthorized)


def token_principal(
    request: Request, token: str, *, unauthorized: Callable[[str], Exception]
) -> Principal:
    """The principal of a presented token (bearer header or session cookie), with failed
    tokens limited per client address: past ``auth_max_failures_per_ip`` in the window the
    answer is 429 with Retry-After and the token is not looked up at all, so a guesser
    learns nothing more (a right token waits too, until the window has passed)."""
    limiter: LoginLimiter = request.app.state.login_limiter
    settings: Settings = request.app.state.settings
    key = "token-ip:" + (request.client.host if request.client else "unknown")
    wait = limiter.retry_after(key, settings.auth_max_failures_per_ip)
    if wait:
        log.warning("token refused: too many failed bearer tokens (retry in %ds)", wait)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="too many failed tokens from this address; try again later",
            headers={"Retry-After": str(wait)},
        )
    maker: sessionmaker[Session] = request.app.state.sessionmaker
    with maker() as session:
        principal = principal_for_token(session, token, now=utcnow())
    if principal is None:
        limiter.failed(key)
        raise unauthorized("invalid, revoked or expired token")
    return principal


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def _forbidden(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail=detail)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_reader(principal: PrincipalDep) -> Principal:
    if principal.kind != "user":
        raise _forbidden("sensor tokens may only ingest and fetch the policy")
    return principal


def require_admin(principal: PrincipalDep) -> Principal:
    if principal.kind != "user" or principal.role != "admin":
        raise _forbidden("admin role required")
    return principal


def require_sensor(principal: PrincipalDep) -> Principal:
    if principal.kind != "sensor":
        raise _forbidden("only sensor tokens may ingest")
    return principal


ReaderDep = Annotated[Principal, Depends(require_reader)]
AdminDep = Annotated[Principal, Depends(require_admin)]
SensorDep = Annotated[Principal, Depends(require_sensor)]
