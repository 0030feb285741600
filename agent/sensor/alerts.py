"""Alert delivery off the sensor's main loop: sinks block (syslog over TCP, webhooks with
retries), so new violations go through a bounded queue to one background thread.

``collector.sinks.open_sink`` makes the sinks (docs/policy.md, "Alert sinks"). A full
queue drops the alert and counts it (``dropped``): the violation itself still reaches the
collector in the next snapshot. Sinks log failures by reason, never the record.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from typing import Any

log = logging.getLogger(__name__)

MAX_QUEUED = 10_000
CLOSE_TIMEOUT = 10.0


class AlertThread:
    def __init__(self, sinks: list[Any]) -> None:
        self.sinks = sinks
        self.sent = 0
        self.dropped = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(MAX_QUEUED)
        self._thread = threading.Thread(target=self._run, name="medtap-alerts", daemon=True)

    def start(self) -> None:
        if self.sinks:
            self._thread.start()

    def emit(self, record: dict[str, Any]) -> None:
        if not self.sinks:
            return
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or not self.dropped % 1000:
                log.warning("alert queue full (%d): %d alerts dropped so far", MAX_QUEUED,
                            self.dropped)

    def _run(self) -> None:
        while True:
            record = self._queue.get()
            if record is None:
                return
            for sink in self.sinks:
                try:
                    sink.emit(record)
                except Exception as exc:  # a sink bug must not end alerting
                    log.warning("alert sink %r failed: %s", sink, type(exc).__name__)
            self.sent += 1

    def close(self) -> None:
        """Deliver what is queued (up to ``CLOSE_TIMEOUT``), then close the sinks."""
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=CLOSE_TIMEOUT)
            self._thread.join(CLOSE_TIMEOUT)
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                log.warning("closing alert sink %r failed: %s", sink, type(exc).__name__)


__all__ = ["AlertThread"]
