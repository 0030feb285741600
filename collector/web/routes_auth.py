"""Login, logout and the static files of the web inventory.

Logging in uses the collector's users, password check, failed-login limiter and session
tokens (collector/auth.py); the session token goes into an HttpOnly cookie instead of a
bearer header.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import RedirectResponse

from collector.api.deps import SessionDep, SettingsDep
from collector.auth import LoginLimiter, audit, authenticate_user, create_session, revoke_token
from collector.db import begin_write
from collector.web.render import render
from collector.web.routing import WebRoute
from collector.web.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    LoginRequired,
    UserDep,
    check_csrf,
    csrf_refused,
    is_tls,
    new_login_csrf,
    read_form,
    safe_next,
    same_token,
    session_user,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)
log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
MAX_NAME = 128


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    try:
        session_user(request)
        return RedirectResponse(safe_next(next), status.HTTP_303_SEE_OTHER)
    except LoginRequired:
        pass
    return _login_page(request, next=safe_next(next), error=None, status_code=200)


def _login_page(request: Request, *, next: str, error: str | None, status_code: int) -> Response:
    token = new_login_csrf()
    response = render(
        request,
        "login.html",
        user=None,
        status_code=status_code,
        title="Sign in",
        login_csrf=token,
        next=next,
        error=error,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=is_tls(request),
    )
    return response


@router.post("/login")
async def login(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    form = await read_form(request)
    if not same_token(request.cookies.get(LOGIN_CSRF_COOKIE), form.get("csrf")):
        raise csrf_refused()
    name = form.get("username", "").strip()[:MAX_NAME]
    password = form.get("password", "")[:1024]
    target = safe_next(form.get("next"))
    limiter: LoginLimiter = request.app.state.login_limiter
    client = request.client.host if request.client else "unknown"
    keys = (
        (f"user:{name}", settings.login_max_failures),
        (f"ip:{client}", settings.login_max_failures_per_ip),
    )
    wait = max(limiter.retry_after(key, limit) for key, limit in keys)
    if wait:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="too many failed logins; try again later",
            headers={"Retry-After": str(wait)},
        )
    begin_write(session)
    user = authenticate_user(session, name, password) if name and password else None
    if user is None:
        for key, _ in keys:
            limiter.failed(key)
        audit(session, actor=name or "-", action="login.failed", target="web", detail=client)
        session.commit()
        return _login_page(
            request, next=target, error="Wrong user name or password.", status_code=401
        )
    limiter.reset(f"user:{name}")
    token, _expires = create_session(session, user=user, hours=settings.session_hours)
    audit(session, actor=user.name, action="login", target="web", detail=client)
    session.commit()
    response = RedirectResponse(target, status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(settings.session_hours * 3600),
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_tls(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, user: UserDep, session: SessionDep) -> Response:
    form = await read_form(request)
    check_csrf(user, form)
    begin_write(session)
    if user.principal.token_id is not None:
        revoke_token(session, token_id=user.principal.token_id)
    audit(session, actor=user.name, action="logout", target="web")
    session.commit()
    response = RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=is_tls(request), httponly=True)
    return response


def _static_files() -> dict[str, tuple[bytes, str]]:
    return {
        p.name: (p.read_bytes(), STATIC_TYPES[p.suffix])
        for p in STATIC_DIR.iterdir()
        if p.suffix in STATIC_TYPES
    }


_STATIC = _static_files()  # a fixed set read once: no path from the URL touches the disk


@router.get("/static/{name}")
def static(name: str) -> Response:
    found = _STATIC.get(name)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such file")
    body, media_type = found
    return Response(body, media_type=media_type, headers={"Cache-Control": "max-age=300"})
