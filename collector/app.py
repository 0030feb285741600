"""The collector's FastAPI application: ``create_app(settings)``.

Every route under ``/api/v1`` needs a bearer token except ``POST /api/v1/login``; public are
only ``/healthz`` and the OpenAPI pages (``/docs``, ``/openapi.json``). Request bodies are
bounded on the wire for every route (413); validation errors never echo the input; a
database busy or deadlocked answers 503 with ``Retry-After`` (sensors retry, and ingest is
idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collector.alerts import AlertDispatcher
from collector.api import (
    audit,
    devices,
    flows,
    ingest,
    inventory,
    login,
    policy,
    sensors,
    users,
    violations,
)
from collector.auth import LoginLimiter
from collector.db import make_engine, make_sessionmaker
from collector.migrate import check_schema
from collector.schema import Batch
from collector.settings import Settings, SettingsError
from collector.web.routes import router as web_router

log = logging.getLogger(__name__)
API_PREFIX = "/api/v1"
DOC_PATHS = ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
API_ONLY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
]


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuses request bodies over ``limit`` bytes with 413: at once when Content-Length
    says so, else as soon as the streamed body passes the limit (chunked uploads)."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _send_json(send, 413, {"detail": f"body larger than {self.limit} bytes"})
            return
        received = 0
        started = False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except BodyTooLarge:
            if started:
                raise
            log.info("request refused: body over %d bytes", self.limit)
            await _send_json(send, 413, {"detail": f"body larger than {self.limit} bytes"})


class UrlGuardMiddleware:
    """Refuses a NUL character in the path or query string before any route sees it:
    PostgreSQL cannot compare text with NUL (the query would fail with a 500), and no
    name, address or filter value of the inventory contains one. 422 on the API (in the
    shape of a validation error), 400 on the web pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            where = None
            if "\x00" in scope["path"]:
                where = "path"
            elif b"%00" in scope.get("query_string", b"") or b"\x00" in scope.get(
                "query_string", b""
            ):
                where = "query"
            if where is not None:
                log.info("request refused: NUL character in the %s", where)
                if scope["path"].startswith(API_PREFIX + "/"):
                    detail: Any = [
                        {"loc": [where], "msg": "NUL character", "type": "string_pattern_mismatch"}
                    ]
                    await _send_json(send, 422, {"detail": detail})
                else:
                    await _send_json(send, 400, {"detail": "NUL character in the URL"})
                return
        await self.app(scope, receive, send)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(SECURITY_HEADERS)
        if not scope["path"].startswith(DOC_PATHS):  # Swagger UI needs its scripts
            extra += API_ONLY_HEADERS
        if scope.get("scheme") == "https":
            extra.append((b"strict-transport-security", b"max-age=31536000"))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in extra if k not in have
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    response = JSONResponse(body, status_code=status)
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def create_app(settings: Settings, *, engine: Engine | None = None) -> FastAPI:
    """The collector app on ``settings.database_url`` (or ``engine``). Raises
    ``collector.migrate.SchemaError`` when the database is not at this medtap's schema."""
    settings.validate()
    engine = engine or make_engine(settings.database_url)
    check_schema(engine)

    try:
        alerts = AlertDispatcher(settings.alert_sinks)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        alerts.close()
        engine.dispose()

    app = FastAPI(
        title="medtap collector",
        summary="Merged inventory of hospital medical devices and segmentation violations",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.alerts = alerts
    app.state.login_limiter = LoginLimiter(window_seconds=settings.login_window_seconds)
    for module in (login, ingest, devices, inventory, flows, violations, sensors, users, policy):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(audit.router, prefix=API_PREFIX)
    app.include_router(web_router)  # the web inventory at / (collector/web)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _database_busy)
    app.add_exception_handler(DataError, _unstorable)
    # The last added runs first: the headers go on every answer, the guards' own included.
    app.add_middleware(UrlGuardMiddleware)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness, without authentication and without data."""
        return {"status": "ok"}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            # /ingest reads its body itself (auth before parsing, gzip); document it here.
            batch = Batch.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(batch.pop("$defs", {}))
            components["Batch"] = batch
            _document_common_answers(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


COMMON_ANSWERS = {
    "413": "request body larger than MEDTAP_MAX_BODY_BYTES",
    "503": "database busy; retry after Retry-After seconds",
}
AUTH_ANSWERS = {
    "401": "no valid bearer token (missing, unknown, revoked or expired); WWW-Authenticate",
    "403": "a valid token whose role may not do this",
    "429": "too many failed bearer tokens from this address; retry after Retry-After seconds",
}


def _document_common_answers(schema: dict[str, Any]) -> None:
    """Every operation can answer 413 and 503; every one behind a token 401, 403, 429."""
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            answers = dict(COMMON_ANSWERS)
            if operation.get("security"):
                answers.update(AUTH_ANSWERS)
            if path.startswith(API_PREFIX + "/"):
                answers["422"] = "invalid parameters or body (locations and types, no values)"
            for code, description in answers.items():
                responses.setdefault(code, {"description": description})


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in list(exc.errors())[: ingest.MAX_REPORTED_ERRORS]
    ]
    return JSONResponse({"detail": detail}, status_code=422)


async def _unstorable(_: Request, exc: Exception) -> JSONResponse:
    """The database refused a value (a number out of its range, a character it cannot
    store): the request is at fault, not the server, and retrying will not help."""
    log.warning("value refused by the database: %s", type(getattr(exc, "orig", exc)).__name__)
    return JSONResponse(
        {"detail": "a value is out of range or has a character the database cannot store"},
        status_code=422,
    )


async def _database_busy(_: Request, exc: Exception) -> JSONResponse:
    log.warning("database busy: %s", type(getattr(exc, "orig", exc)).__name__)
    return JSONResponse(
        {"detail": "database busy, retry"}, status_code=503, headers={"Retry-After": "2"}
    )
