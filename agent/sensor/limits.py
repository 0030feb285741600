"""The sensor's memory caps: what a worker and the sensor process hold at most.

docs/sensor.md, "Memory". ``medtap analyze`` reads one file and exits, so its caps
(``agent.flows.MAX_FLOWS``, ``agent.endpoints.MAX_BINDINGS``, ``MAX_CONVERSATIONS``,
``MAX_EVIDENCE``) are sized for the largest capture; a sensor runs for months on a small
appliance, so it has its own, smaller defaults (each a ``medtap sensor`` option). Every cap
counts what it turned away (metrics ``medtap_sensor_*_dropped_total`` /
``_flows_evicted_total``); none of them stops the capture.

Sizes measured on the reference mix (bench/data/hosp_1m.pcap, in-process, Python 3.11):
an open flow with its parser state ~4 KiB, a conversation or an evidence record in the
sensor process ~0.6 KiB with its key and its share of a snapshot's report, an endpoint
binding ~0.2 KiB.
"""

from __future__ import annotations

SENSOR_MAX_FLOWS = 65_536  # open flows per worker (~256 MiB at the cap); LRU-evicted beyond
SENSOR_MAX_BINDINGS = 131_072  # endpoint bindings per worker; sent whole at every snapshot
SENSOR_MAX_CONVERSATIONS = 100_000  # merged conversations (running totals), sensor process
SENSOR_MAX_EVIDENCE = 100_000  # merged evidence records, sensor process

__all__ = [
    "SENSOR_MAX_BINDINGS", "SENSOR_MAX_CONVERSATIONS", "SENSOR_MAX_EVIDENCE", "SENSOR_MAX_FLOWS",
]
