"""Structured logs for the sensor: one JSON object per line (``--log-json``) or plain text.

Only the CLI calls ``setup``. Records carry the time (UTC, ISO 8601), level, logger,
process name (``MainProcess`` or ``medtap-worker-N``) and message, plus the ``extra``
fields a caller passes with ``log.info(..., extra={"fields": {...}})``. medtap's modules
log sizes, counters, addresses of its own peers and reasons, never frame bytes or parsed
payload (docs/sensor.md, "Patient data"); this formatter adds nothing from the wire.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": record.processName,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                out.setdefault(key, value)
        if record.exc_info and record.exc_info[0] is not None:
            # the type only: an exception's text can quote the data it choked on
            out["exception"] = record.exc_info[0].__name__
        return json.dumps(out, default=str, ensure_ascii=False)


def setup(json_lines: bool, verbose: int = 0, stream: TextIO | None = None) -> None:
    """Replace the root logger's handlers: INFO by default, DEBUG with ``-v``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose > 0 else logging.INFO)
    for noisy in ("httpx", "httpcore"):  # request lines would carry the collector URL each time
        logging.getLogger(noisy).setLevel(logging.WARNING)


__all__ = ["JsonFormatter", "setup"]
