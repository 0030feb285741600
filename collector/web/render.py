"""Jinja2 rendering: one autoescaping environment, display filters, the page helper.

Autoescape is on for every template (not only ``.html``): device names, hostnames and
vendors come off the network and are attacker-controlled text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from collector.web.security import CSRF_FIELD, WebUser
from parsers.vocabulary import device_type_name

CATEGORY_NAMES = {
    "medical": "Medical",
    "clinical-it": "Clinical IT",
    "infrastructure": "Infrastructure",
    "other": "Other",
}


def fmt_time(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_num(value: int | float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}".replace(",", "\u202f")  # narrow no-break space: 10 000


def fmt_pct(value: float | None) -> str:
    return "—" if value is None else f"{round(value * 100)} %"


def fmt_bytes(value: int | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{value} B"  # unreachable; keeps mypy sure of a return


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h"
    return f"{s // 86400} d"


def type_name(device_type: str, count: int = 1) -> str:
    return device_type_name(device_type, count)


def category_name(category: str | None) -> str:
    return CATEGORY_NAMES.get(category or "", "Unclassified")


def query_string(params: Mapping[str, Any], **changes: Any) -> str:
    """``?a=1&b=2`` from the current parameters with ``changes`` applied (None drops);
    empty when nothing is left."""
    merged = {**params, **changes}
    items = [(k, str(v)) for k, v in merged.items() if v is not None and v != ""]
    return "?" + urlencode(items) if items else ""


def make_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("collector.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,  # a misspelt variable is an error, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        dt=fmt_time,
        num=fmt_num,
        pct=fmt_pct,
        bytes=fmt_bytes,
        duration=fmt_duration,
        type_name=type_name,
        category_name=category_name,
    )
    env.globals.update(qs=query_string, csrf_field=CSRF_FIELD, ceil=math.ceil)
    return env


ENV = make_environment()


def render(
    request: Request,
    template: str,
    *,
    user: WebUser | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    html = ENV.get_template(template).render(
        request=request, user=user, path=request.url.path, **context
    )
    return HTMLResponse(html, status_code=status_code)
