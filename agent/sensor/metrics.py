"""Prometheus text exposition (format 0.0.4) of the sensor's counters on ``/metrics``.

Optional (``--metrics-port``); listens on 127.0.0.1 unless ``--metrics-host`` says
otherwise, because the numbers describe the hospital network. A small
``ThreadingHTTPServer`` in a daemon thread: the sensor process is not on the packet path,
and a scrape only reads the latest values the main loop stored (``Metrics.set``).
Label values are escaped per the exposition format; no label comes from the wire.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Sample:
    name: str
    kind: str  # "counter" or "gauge"
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(samples: Iterable[Sample]) -> str:
    """Samples grouped by metric name, each group with one HELP and TYPE line."""
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        groups.setdefault(s.name, []).append(s)
    lines: list[str] = []
    for name, group in groups.items():
        lines.append(f"# HELP {name} {group[0].help}")
        lines.append(f"# TYPE {name} {group[0].kind}")
        for s in group:
            labels = ",".join(f'{k}="{escape(v)}"' for k, v in s.labels)
            value = repr(float(s.value)) if isinstance(s.value, float) else str(s.value)
            lines.append(f"{name}{{{labels}}} {value}" if labels else f"{name} {value}")
    return "\n".join(lines) + "\n"


class Metrics:
    """Holds the latest samples; ``serve`` exposes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._text = ""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def set(self, samples: Iterable[Sample]) -> None:
        text = render(samples)
        with self._lock:
            self._text = text

    def text(self) -> str:
        with self._lock:
            return self._text

    def bind(self, host: str, port: int) -> tuple[str, int]:
        """Bind now (before privileges are dropped); serve later with ``start``."""
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "medtap-sensor"
            sys_version = ""

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404)
                    return
                body = metrics.text().encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return  # scrapes every 15 s would drown the sensor's own log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        addr = self._server.server_address
        return str(addr[0]), int(addr[1])

    def start(self) -> None:
        if self._server is None:
            return
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="medtap-metrics", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        if self._server is not None:
            if self._thread is not None:
                self._server.shutdown()
            self._server.server_close()
            self._server = None


__all__ = ["Metrics", "Sample", "render"]
