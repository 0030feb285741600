"""All web pages as one router; the app includes it with ``app.include_router(router)``."""

from __future__ import annotations

from fastapi import APIRouter

from collector.web import (
    exports,
    routes_auth,
    routes_inventory,
    routes_segmentation,
    routes_sensors,
)

router = APIRouter(include_in_schema=False)
for _module in (routes_auth, routes_inventory, routes_segmentation, routes_sensors, exports):
    router.include_router(_module.router)
