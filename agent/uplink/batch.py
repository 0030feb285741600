"""A ``medtap analyze`` report (docs/report-format.md) -> wire ``Batch`` documents.

Implements the batching part of docs/uplink.md. Reads the report's ``devices``,
``flows.items``, ``violations`` and ``stats``; copies only the keys that
``collector/schema.py`` names (an allow-list per model, so a key added to the report later,
or anything patient-shaped, never travels). Never reads ``groups``, ``hearsay`` or
``inputs``: file paths stay on the sensor.

Batch ids are content hashes: the same analysis uploaded twice gives the same ids and the
collector answers ``duplicate`` (it must not count the same traffic twice). The heartbeat
is left out of the hash so that a later run's fresh ``at`` does not change the id.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from collector.schema import (
    MAX_DEVICES,
    MAX_EVIDENCE,
    MAX_FLOWS,
    MAX_VIOLATIONS,
    NO_NUL,
    Batch,
    ClassifiedField,
    DeviceReport,
    EvidenceItem,
    FlowReport,
    Heartbeat,
    ViolationEndpoint,
    ViolationReport,
)

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

# ClassifiedField.evidence is a free dict on the wire; these are the keys the classifier
# writes (agent/classify.py) and the only ones we copy.
CLASSIFIED_EVIDENCE_KEYS = ("kind", "value", "source", "count", "confidence", "weight")
MAX_REPAIRS = 4  # validate -> clip -> validate rounds per item before it is rejected
ENVELOPE_BYTES = 1024  # batch keys, times, heartbeat: reserved out of the byte budget
GZIP_LEVEL = 6
PLACEHOLDER_ID = "pending-id"


@dataclass(frozen=True)
class BatchLimits:
    """Per-batch caps, far below the schema's MAX_* so one batch stays a small request."""

    devices: int = 5_000
    flows: int = 20_000
    violations: int = 5_000
    max_bytes: int = 4 * 1024 * 1024  # uncompressed JSON

    def __post_init__(self) -> None:
        for name, value, cap in (
            ("devices", self.devices, MAX_DEVICES),
            ("flows", self.flows, MAX_FLOWS),
            ("violations", self.violations, MAX_VIOLATIONS),
        ):
            if not 1 <= value <= cap:
                raise ValueError(f"batch limit {name}={value} outside 1..{cap}")
        if self.max_bytes < 2 * ENVELOPE_BYTES:
            raise ValueError(f"batch byte budget {self.max_bytes} too small")


@dataclass
class BuildStats:
    """What batching changed: items clipped to the schema's limits, items it refused."""

    items: int = 0
    repaired: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


def batches_from_report(
    report: Mapping[str, Any],
    *,
    sensor: str,
    limits: BatchLimits | None = None,
    heartbeat: Heartbeat | None = None,
    stats: BuildStats | None = None,
) -> list[Batch]:
    """Split a report into batches in report order: devices, then flows, then violations.

    The heartbeat rides on the last batch (when it is stored, everything before it was
    sent). A report with nothing in it gives one heartbeat-only batch, or none without a
    heartbeat."""
    limits = limits or BatchLimits()
    stats = stats if stats is not None else BuildStats()
    flows = report.get("flows") or {}
    items: list[BaseModel] = []
    items += _valid(DeviceReport, map(_device, _mappings(report.get("devices"))), stats)
    items += _valid(FlowReport, map(_flow, _mappings(flows.get("items"))), stats)
    items += _valid(ViolationReport, map(_violation, _mappings(report.get("violations"))), stats)
    if not items:
        return [heartbeat_batch(sensor, heartbeat)] if heartbeat is not None else []
    started, ended = _time_range(items)
    batches = []
    for chunk in _pack(items, limits):
        batch = Batch(
            sensor=sensor,
            batch_id=PLACEHOLDER_ID,
            started=started,
            ended=ended,
            devices=[m for m in chunk if isinstance(m, DeviceReport)],
            flows=[m for m in chunk if isinstance(m, FlowReport)],
            violations=[m for m in chunk if isinstance(m, ViolationReport)],
        )
        batch.batch_id = content_id(batch)
        batches.append(batch)
    batches[-1].heartbeat = heartbeat
    return batches


def heartbeat_batch(sensor: str, heartbeat: Heartbeat) -> Batch:
    """An empty batch is a pure heartbeat; its id hashes the heartbeat (``at`` included)."""
    batch = Batch(
        sensor=sensor,
        batch_id=PLACEHOLDER_ID,
        started=heartbeat.at,
        ended=heartbeat.at,
        heartbeat=heartbeat,
    )
    batch.batch_id = content_id(batch)
    return batch


def content_id(batch: Batch) -> str:
    """``b1-<sha256>`` of the batch without id and heartbeat; ``h1-`` for heartbeat-only.

    The sensor name is inside the hashed JSON, so two sensors never share an id."""
    if batch.devices or batch.flows or batch.violations:
        body = batch.model_dump_json(exclude={"batch_id", "heartbeat"})
        return "b1-" + hashlib.sha256(body.encode()).hexdigest()[:48]
    body = batch.model_dump_json(exclude={"batch_id"})
    return "h1-" + hashlib.sha256(body.encode()).hexdigest()[:48]


def encode_batch(batch: Batch) -> bytes:
    """gzip'd JSON, mtime 0 so the same batch always gives the same bytes."""
    return gzip.compress(batch.model_dump_json().encode(), GZIP_LEVEL, mtime=0)


def heartbeat_from_report(
    report: Mapping[str, Any],
    *,
    at: datetime | None = None,
    spool_depth: int = 0,
    spool_dropped: int = 0,
    interface: str | None = None,
    uptime_seconds: float = 0.0,
) -> Heartbeat:
    """Sensor health from a report's ``stats`` (``stats.capture`` for a live interface)."""
    s: Mapping[str, Any] = report.get("stats") or {}
    capture: Mapping[str, Any] = s.get("capture") or {}
    return Heartbeat(
        at=at or datetime.now(UTC),
        version=str(report.get("medtap_version") or "0+unknown")[:128],
        interface=interface,
        uptime_seconds=max(0.0, uptime_seconds),
        packets=_count(s.get("packets")),
        bytes=_count(s.get("bytes")),
        kernel_drops=_count(capture.get("dropped")),
        malformed=_sum(s.get("malformed")),
        flows_evicted=_count(s.get("flows_evicted")),
        parser_errors=_sum(s.get("parser_errors")),
        spool_depth=max(0, spool_depth),
        spool_dropped=max(0, spool_dropped),
    )


# --- projection: only the schema's keys -------------------------------------------------


def _mappings(value: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(value, Sequence):
        return (v for v in value if isinstance(v, Mapping))
    return ()


def _pick(model: type[BaseModel], data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in model.model_fields if k in data}


def _device(data: Mapping[str, Any]) -> dict[str, Any]:
    out = _pick(DeviceReport, data)
    evidence = out.get("evidence")
    if isinstance(evidence, Sequence):
        rows = [_pick(EvidenceItem, e) for e in _mappings(evidence)]
        if len(rows) > MAX_EVIDENCE:  # keep the strongest, not the first
            rows.sort(key=lambda e: (-_num(e.get("confidence")), -_num(e.get("count"))))
        out["evidence"] = rows[:MAX_EVIDENCE]
    classification = out.get("classification")
    if isinstance(classification, Mapping):
        out["classification"] = {
            name: _classified(f) for name, f in classification.items() if isinstance(f, Mapping)
        }
    return out


def _classified(data: Mapping[str, Any]) -> dict[str, Any]:
    out = _pick(ClassifiedField, data)
    if "evidence" in out:
        out["evidence"] = [
            {k: e[k] for k in CLASSIFIED_EVIDENCE_KEYS if k in e}
            for e in _mappings(out["evidence"])
        ][:MAX_EVIDENCE]
    return out


def _flow(data: Mapping[str, Any]) -> dict[str, Any]:
    return _pick(FlowReport, data)


def _violation(data: Mapping[str, Any]) -> dict[str, Any]:
    out = _pick(ViolationReport, data)
    for side in ("client", "server"):
        if isinstance(out.get(side), Mapping):
            out[side] = _pick(ViolationEndpoint, out[side])
    return out


# --- validation with clipping -------------------------------------------------------------


def _valid(model: type[M], rows: Iterable[dict[str, Any]], stats: BuildStats) -> list[M]:
    out = []
    for row in rows:
        stats.items += 1
        item = _validate(model, row, stats)
        if item is not None:
            out.append(item)
    return out


def _validate(model: type[M], data: dict[str, Any], stats: BuildStats) -> M | None:
    """Validate; clip what is only too long (or an empty list entry) and retry. Anything
    else is refused: counted and logged by field location and error type, never value."""
    repaired = False
    for _ in range(MAX_REPAIRS):
        try:
            item = model.model_validate(data)
        except ValidationError as exc:
            errors = exc.errors(include_input=False, include_url=False)
            if not _repair(data, errors):
                where = sorted({".".join(map(str, e["loc"])) + ":" + e["type"] for e in errors})
                log.warning("%s refused by the wire schema: %s", model.__name__, ", ".join(where))
                break
            repaired = True
            continue
        stats.repaired += repaired
        return item
    stats.rejected[model.__name__] += 1
    return None


def _repair(data: dict[str, Any], errors: Sequence[Any]) -> bool:
    """Fix what the schema's length limits refused, and NUL characters (which it refuses
    everywhere), in place. False when an error is another kind (or its place cannot be
    reached), so the item is refused instead."""
    removals: list[tuple[list[Any], int]] = []
    for err in errors:
        *parent_loc, key = err["loc"]
        parent = _walk(data, parent_loc)
        max_length = (err.get("ctx") or {}).get("max_length")
        kind = err["type"]
        if parent is None or not _has(parent, key):
            return False
        if kind in ("string_too_long", "too_long") and isinstance(max_length, int):
            parent[key] = parent[key][:max_length]
        elif _nul_refused(err) and isinstance(parent[key], str):
            parent[key] = parent[key].replace("\x00", "")  # e.g. a DHCP name's NUL padding
        elif kind == "string_too_short" and isinstance(parent, list):
            removals.append((parent, key))
        elif kind == "string_too_short" and isinstance(parent, dict) and key != "id":
            parent[key] = None  # optional text that was only whitespace
        else:
            return False
    for lst, index in sorted(removals, key=lambda r: r[1], reverse=True):
        del lst[index]
    return True


def _nul_refused(err: Any) -> bool:
    return bool(
        err["type"] == "string_pattern_mismatch" and (err.get("ctx") or {}).get("pattern") == NO_NUL
    )


def _walk(data: Any, loc: Sequence[Any]) -> Any:
    for key in loc:
        if not _has(data, key):
            return None
        data = data[key]
    return data if isinstance(data, dict | list) else None


def _has(container: Any, key: Any) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(container, list) and isinstance(key, int) and 0 <= key < len(container)


# --- packing ---------------------------------------------------------------------------------


def _pack(items: Sequence[BaseModel], limits: BatchLimits) -> list[list[BaseModel]]:
    """Greedy, order-preserving: a new batch when a count or the byte budget would be
    exceeded. An item bigger than the whole budget travels alone (it cannot be split)."""
    caps = {
        DeviceReport: limits.devices,
        FlowReport: limits.flows,
        ViolationReport: limits.violations,
    }
    budget = limits.max_bytes - ENVELOPE_BYTES
    chunks: list[list[BaseModel]] = []
    chunk: list[BaseModel] = []
    counts: Counter[type] = Counter()
    size = 0
    for item in items:
        item_size = len(item.model_dump_json().encode()) + 1  # +1: the comma
        kind = type(item)
        if chunk and (counts[kind] >= caps[kind] or size + item_size > budget):
            chunks.append(chunk)
            chunk, counts, size = [], Counter(), 0
        chunk.append(item)
        counts[kind] += 1
        size += item_size
    if chunk:
        chunks.append(chunk)
    return chunks


def _time_range(items: Iterable[BaseModel]) -> tuple[datetime, datetime]:
    times = [
        t if t.tzinfo else t.replace(tzinfo=UTC)  # a naive time from a report means UTC
        for item in items
        for t in (getattr(item, "first_seen", None), getattr(item, "last_seen", None))
        if isinstance(t, datetime)
    ]
    if not times:
        now = datetime.now(UTC)
        return now, now
    return min(times), max(times)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _sum(value: Any) -> int:
    if isinstance(value, Mapping):
        return sum(_count(v) for v in value.values())
    return _count(value)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
