"""Lenient query-string parsing for GET forms: an empty field means "no filter".

A browser submits every field of a filter form, empty ones included, so ``vlan=`` must not
be a 422; a value that is present but invalid is a 400 (the value is never echoed).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException, Request, status

from collector.web.queries import InventoryFilter

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
MAX_TEXT = 128
MAX_PAGE = 1_000_000


def text(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    value = value.strip()
    return value[:MAX_TEXT] or None


def integer(request: Request, name: str, lo: int, hi: int) -> int | None:
    raw = text(request, name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{name} must be a number") from None
    if not lo <= value <= hi:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{name} must be {lo} to {hi}")
    return value


def choice(request: Request, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = text(request, name)
    return value if value in allowed else default


@dataclass(frozen=True)
class Paging:
    page: int
    per: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per

    def pages(self, total: int) -> int:
        return max(1, -(-total // self.per))


def paging(request: Request) -> Paging:
    per = integer(request, "per", 1, max(PAGE_SIZES)) or DEFAULT_PAGE_SIZE
    if per not in PAGE_SIZES:
        per = DEFAULT_PAGE_SIZE
    return Paging(integer(request, "page", 1, MAX_PAGE) or 1, per)


def inventory_filter(request: Request) -> InventoryFilter:
    return InventoryFilter(
        sensor=text(request, "sensor"),
        zone=text(request, "zone"),
        vlan=integer(request, "vlan", 0, 4095),
        category=text(request, "category"),
        days=integer(request, "days", 1, 36500),
        q=text(request, "q"),
    )


def current(request: Request) -> dict[str, str]:
    """The page's non-empty query parameters, for links that change one of them."""
    return {k: v for k, v in request.query_params.items() if v.strip()}
