"""``POST /login`` (user name + password -> expiring bearer session), ``/logout``, ``/me``.

Failed logins are limited per user name and per client address; past the limit the answer
is 429 with ``Retry-After`` and the password is not even checked, so guessing stops there.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, Response, status

from collector.api.deps import PrincipalDep, SessionDep, SettingsDep
from collector.api.schemas import LoginIn, MePublic, TokenPublic
from collector.auth import (
    LoginLimiter,
    audit,
    authenticate_user,
    create_session,
    revoke_token,
)
from collector.db import begin_write

router = APIRouter(tags=["auth"])
log = logging.getLogger(__name__)


@router.post(
    "/login",
    response_model=TokenPublic,
    responses={401: {"description": "wrong user or password"}, 429: {"description": "too many"}},
)
def login(
    body: LoginIn, request: Request, session: SessionDep, settings: SettingsDep
) -> TokenPublic:
    """Exchange a user name and password for a bearer session token."""
    limiter: LoginLimiter = request.app.state.login_limiter
    client = request.client.host if request.client else "unknown"
    keys = (
        (f"user:{body.username}", settings.login_max_failures),
        (f"ip:{client}", settings.login_max_failures_per_ip),
    )
    wait = max(limiter.retry_after(key, limit) for key, limit in keys)
    if wait:
        log.warning("login refused: too many failures (retry in %ds)", wait)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="too many failed logins; try again later",
            headers={"Retry-After": str(wait)},
        )
    begin_write(session)
    user = authenticate_user(session, body.username, body.password)
    if user is None:
        for key, _ in keys:
            limiter.failed(key)
        audit(session, actor=body.username, action="login.failed", target=None, detail=client)
        session.commit()
        log.info("login failed (client %s)", client)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="wrong user name or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    limiter.reset(f"user:{body.username}")
    token, expires = create_session(session, user=user, hours=settings.session_hours)
    audit(session, actor=user.name, action="login", target=None, detail=client)
    session.commit()
    return TokenPublic(access_token=token, expires_at=expires, role=user.role)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(principal: PrincipalDep, session: SessionDep) -> Response:
    """Revoke the session token this request carries (sensor tokens: see /sensors)."""
    if principal.kind != "user" or principal.token_id is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only user sessions log out")
    begin_write(session)
    revoke_token(session, token_id=principal.token_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=MePublic)
def me(principal: PrincipalDep) -> MePublic:
    """Who the bearer token belongs to (any valid token)."""
    return MePublic(kind=principal.kind, name=principal.name, role=principal.role)
