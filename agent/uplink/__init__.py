"""Sensor -> collector uplink: batching, durable spool, HTTPS client, drain loop.

Spec: GitHub issue 7 (sensor side) and docs/uplink.md. The wire contract is
``collector/schema.py``; everything here sends only fields that contract names, never a
payload, and never logs a batch body.

- ``batch``  report dict -> ``Batch`` documents (split, deterministic ids, heartbeat)
- ``spool``  SQLite FIFO on disk (WAL, synchronous=FULL), size cap, dead letters
- ``client`` httpx POST /api/v1/ingest (gzip, bearer, TLS rules), one batch -> an outcome
- ``drain``  oldest-first delivery with exponential backoff, deadline, drain lock
"""

from __future__ import annotations

from agent.uplink.batch import BatchLimits, batches_from_report, encode_batch, heartbeat_from_report
from agent.uplink.client import (
    UplinkAuthError,
    UplinkClient,
    UplinkConfig,
    UplinkConfigError,
    UplinkError,
    UplinkTLSError,
)
from agent.uplink.drain import Backoff, DrainResult, drain
from agent.uplink.spool import Spool, SpoolItem, SpoolStats

__all__ = [
    "Backoff",
    "BatchLimits",
    "DrainResult",
    "Spool",
    "SpoolItem",
    "SpoolStats",
    "UplinkAuthError",
    "UplinkClient",
    "UplinkConfig",
    "UplinkConfigError",
    "UplinkError",
    "UplinkTLSError",
    "batches_from_report",
    "drain",
    "encode_batch",
    "heartbeat_from_report",
]
