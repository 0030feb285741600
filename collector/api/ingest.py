"""``POST /ingest``: a sensor's batch (collector/schema.py ``Batch``), gzip allowed.

Order of checks: the token (401/403) before the body is even read, then size (413: the
app-wide limit on the wire, and here the decompressed size of a gzip body, so a zip bomb
stops at the limit), then the schema (422, with locations and messages but never the
offending values: a broken sensor must not make the collector echo or log payload), then
the sensor name (403 when the batch names another sensor than its token's).
"""

from __future__ import annotations

import logging
import zlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import ValidationError

from collector.alerts import AlertDispatcher
from collector.api.deps import SensorDep, SessionDep, SettingsDep
from collector.schema import Batch, IngestResult, ViolationReport
from collector.store import ingest_batch

router = APIRouter(tags=["ingest"])
log = logging.getLogger(__name__)
MAX_REPORTED_ERRORS = 50


class PayloadTooLarge(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, detail=detail)


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """Decode a gzip body (several members allowed), refusing output past ``limit``."""
    out = bytearray()
    rest = data
    while rest:
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        buf = rest
        while buf:
            try:
                out += d.decompress(buf, limit + 1 - len(out))
            except zlib.error:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, "body is not valid gzip") from None
            if len(out) > limit:
                raise PayloadTooLarge(f"decompressed body larger than {limit} bytes")
            buf = d.unconsumed_tail
            if d.eof:
                break
        if not d.eof:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "gzip body is truncated")
        rest = d.unused_data
    return bytes(out)


async def batch_body(request: Request, settings: SettingsDep) -> bytes:
    """The request body, gzip-decoded when ``Content-Encoding: gzip`` (bounded)."""
    raw = await request.body()  # the app-wide middleware bounds this
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        body = raw
    elif encoding == "gzip":
        body = gunzip_bounded(raw, settings.max_decompressed_bytes)
    else:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "only gzip encoding")
    request.state.body_sizes = (len(raw), len(body))
    return body


def validation_detail(exc: ValidationError) -> list[dict[str, Any]]:
    """Where and what, never the value (it may be patient data from a broken sensor)."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in errors[:MAX_REPORTED_ERRORS]
    ]


@router.post(
    "/ingest",
    response_model=IngestResult,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}},
        }
    },
    responses={
        401: {"description": "no valid token"},
        403: {"description": "not a sensor token, or the batch names another sensor"},
        413: {"description": "body (or decompressed body) too large"},
        422: {"description": "schema error (locations and messages, no values)"},
    },
)
def ingest(
    principal: SensorDep,
    body: Annotated[bytes, Depends(batch_body)],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> IngestResult:
    """Store a sensor's batch of devices, flows, violations and heartbeat, idempotently by
    batch id: a retried batch answers ``duplicate`` and changes nothing."""
    try:
        batch = Batch.model_validate_json(body)
    except ValidationError as exc:
        log.info("batch refused: %d schema errors (%d bytes)", exc.error_count(), len(body))
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, validation_detail(exc)) from None
    if batch.sensor != principal.name:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="batch sensor does not match the token's sensor"
        )
    assert principal.sensor_id is not None  # require_sensor guarantees it
    wire, decoded = request.state.body_sizes
    log.info("batch received: %d bytes on the wire, %d decoded", wire, decoded)
    fresh: list[ViolationReport] = []
    result = ingest_batch(
        session,
        sensor_id=principal.sensor_id,
        batch=batch,
        max_evidence_per_device=settings.max_evidence_per_device,
        new_violations=fresh,
    )
    if fresh:
        alerts: AlertDispatcher = request.app.state.alerts
        alerts.submit([v.model_dump(mode="json") for v in fresh])
    return result
