"""The route class of every web page: security headers, login redirects, HTML error pages.

A FastAPI route class wraps the handler (dependencies included), so these apply to the web
pages only and leave the JSON API's behaviour alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from collector.web.render import render
from collector.web.security import SECURITY_HEADERS, LoginRequired, login_url

log = logging.getLogger(__name__)
TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    413: "Too large",
    415: "Unsupported form",
    429: "Too many attempts",
}


class WebRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await original(request)
            except LoginRequired:
                response = RedirectResponse(login_url(request), status.HTTP_303_SEE_OTHER)
            except HTTPException as exc:
                response = error_page(request, exc.status_code, str(exc.detail), exc.headers)
            except RequestValidationError:
                # Never echo the offending values: they may be anything a client sent.
                response = error_page(request, 400, "a parameter has an invalid value", None)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return handler


def error_page(
    request: Request, code: int, detail: str, headers: Mapping[str, str] | None
) -> Response:
    if code >= 500:
        log.error("web page %s failed with %d", request.url.path, code)
    response = render(
        request,
        "error.html",
        user=None,
        status_code=code,
        title=TITLES.get(code, "Error"),
        detail=detail,
        code=code,
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
