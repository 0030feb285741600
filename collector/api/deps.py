"""Request dependencies: the database session, settings and the caller's role.

401 means "who are you?" (no token, unknown, revoked or expired; with
``WWW-Authenticate: Bearer``); 403 means "known, but not allowed" (a sensor token on a
read endpoint, a viewer on an admin endpoint, a sensor posting as another sensor).
The token lookup uses its own short session, so the request's session starts clean and a
write path can open its transaction as a write transaction (collector.db.begin_write).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from collector.auth import Principal, principal_for_token
from collector.models import utcnow
from collector.settings import Settings

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
    maker: sessionmaker[Session] = request.app.state.sessionmaker
    with maker() as session:
        principal = principal_for_token(session, credentials.credentials, now=utcnow())
    if principal is None:
        raise _unauthorized("invalid, revoked or expired token")
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
