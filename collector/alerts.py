"""Violation alerts from the collector (syslog/CEF, webhook, JSON lines: collector/sinks.py).

A violation key (rule, client, server, service) that the store had never seen goes to every
configured sink once, after the batch that brought it has committed — a retried batch is a
duplicate and alerts nothing, and counts that grow on a known key are not new alerts. Sending
happens on one background thread, so a slow webhook never holds an ingest request; the queue
is bounded and what overflows is counted and logged, never blocks.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from typing import Any

from collector.sinks import Sink, open_sink

log = logging.getLogger(__name__)
MAX_QUEUED = 10_000
_STOP = object()


class AlertDispatcher:
    def __init__(self, specs: Sequence[str]) -> None:
        """Open every sink now, so a bad spec fails at start-up (ValueError), not at the
        first violation."""
        self.sinks: list[Sink] = []
        try:
            for spec in specs:
                self.sinks.append(open_sink(spec))
        except ValueError:
            self._close_sinks()
            raise
        self.queued: queue.Queue[object] = queue.Queue(MAX_QUEUED)
        self.dropped = 0
        self.sent = 0
        self._thread: threading.Thread | None = None
        if self.sinks:
            self._thread = threading.Thread(target=self._run, name="medtap-alerts", daemon=True)
            self._thread.start()

    def submit(self, violations: Sequence[dict[str, Any]]) -> None:
        if not self.sinks:
            return
        for violation in violations:
            try:
                self.queued.put_nowait(violation)
            except queue.Full:
                self.dropped += 1
                log.warning("alert queue full (%d): one violation alert dropped", MAX_QUEUED)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (up to ``timeout``), then close the sinks."""
        if self._thread is not None:
            self.queued.put(_STOP)
            self._thread.join(timeout)
        self._close_sinks()

    def _run(self) -> None:
        while True:
            item = self.queued.get()
            if item is _STOP:
                return
            for sink in self.sinks:
                sink.emit(item)  # sinks count and log their own failures, never raise
            self.sent += 1

    def _close_sinks(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except OSError as exc:
                log.warning("closing an alert sink failed: %s", type(exc).__name__)
