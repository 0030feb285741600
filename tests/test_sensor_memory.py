"""The sensor's memory is bounded by its caps and does not grow with uptime (agent/sensor).

No root, no wall clock: the reference captures are replayed in cycles with shifted
timestamps through the code path of a running sensor — worker ``Analyzer``s built by
``worker_analyzer`` (the sensor's caps), ``take_export`` pickled by ``dump_export`` as
through the worker pipe, ``SensorState`` merge and ``Sensor.snapshot`` (classification,
policy tracker, ``Ledger`` deltas, spool) — with a snapshot in the middle of each cycle (open
flows) and one at its end. Identical traffic must leave identical table sizes cycle after
cycle, every table at or below its cap, and a cap that is hit must count what it turned away.
"""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.capture.files import open_capture
from agent.decode import Decoder
from agent.pipeline import Analyzer
from agent.sensor.export import WorkerExport, dump_export, live_records, load_export, take_export
from agent.sensor.merge import SensorState
from agent.sensor.runner import Sensor, SensorConfig
from agent.sensor.snapshot import Ledger
from agent.sensor.workers import WorkerConfig, worker_analyzer
from agent.uplink.spool import Spool

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
CAPTURES = [
    PCAPS / "sample" / "hospital-sample.pcapng",
    PCAPS / "policy" / "hospital-policy.pcapng",
]
POLICY = PCAPS / "policy" / "policy.yaml"
CYCLE_SECONDS = 4000.0  # longer than every flow timeout: a cycle's flows end in the next
WORKERS = 2

Frame = tuple[float, int, bytes, int]


def traffic() -> list[Frame]:
    """Both captures back to back, timestamps from 0."""
    out: list[Frame] = []
    offset = 0.0
    for path in CAPTURES:
        frames = list(open_capture(path).frames())
        first = frames[0][0]
        out += [(ts - first + offset, lt, data, wl) for ts, lt, data, wl in frames]
        offset = out[-1][0] + 30.0
    return out


def split(frames: list[Frame], n: int) -> list[int]:
    """Worker of each frame, both directions of a flow together (as PACKET_FANOUT_HASH)."""
    decoder = Decoder()
    out = []
    for ts, lt, data, wl in frames:
        meta = decoder.decode(lt, data, ts, wl)
        if meta is None or not meta.ip_version:
            out.append(0)
            continue
        ported = meta.proto in (6, 17)
        ends = sorted([(meta.src_ip, meta.sport if ported else 0),
                       (meta.dst_ip, meta.dport if ported else 0)])
        out.append(hashlib.sha256(repr((ends, meta.proto)).encode()).digest()[0] % n)
    return out


class InProcessPool:
    """``WorkerPool.ask`` without processes: each analyzer's export through the pipe's
    pickling, handed to the sensor process's ``on_export``."""

    def __init__(self, analyzers: list[Analyzer]) -> None:
        self.analyzers = analyzers
        self.pids: list[int] = []

    def ask(self, kind: str, on_export: Callable[[WorkerExport], None], timeout: float) -> dict:  # type: ignore[type-arg]
        for i, a in enumerate(self.analyzers):
            capture = {"frames": a.packets, "bytes": a.bytes}
            on_export(load_export(dump_export(
                take_export(a, capture, worker=i, seq=0, final=False))))
        return {}

    def check_alive(self) -> None:
        pass


def sizes(sensor: Sensor, analyzers: list[Analyzer]) -> dict[str, int]:
    st, ledger = sensor.state, sensor.ledger
    tracker: Any = sensor.tracker
    return {
        "flows_live": max(len(a.flows) for a in analyzers),
        "flow_keys": max(len(a.flows._flows) for a in analyzers),
        "bindings": max(a.endpoints.bindings for a in analyzers),
        "worker_conversations": max(len(a.conversations) for a in analyzers),
        "worker_evidence": max(len(a.evidence) for a in analyzers),
        "conversations": len(st.conversations),
        "evidence": len(st.evidence),
        "live_records": sum(map(len, st.live.values())),
        "ledger_flows": len(ledger.flows),
        "ledger_devices": len(ledger.devices),
        "ledger_device_evidence": sum(len(d.evidence) for d in ledger.devices.values()),
        "ledger_violations": len(ledger.violations),
        "alerted": len(sensor.alerted),
        "tracker_flows": len(tracker._flows) if tracker is not None else 0,
        "tracker_pending": len(tracker._pending) if tracker is not None else 0,
    }


def soak(tmp_path: Path, cycles: int, config: WorkerConfig,
         on_cycle: Callable[[int], None] | None = None) -> tuple[Sensor, list[Analyzer],
                                                                 list[dict[str, int]]]:
    frames = traffic()
    shares = split(frames, WORKERS)
    sensor = Sensor(SensorConfig(
        interface="test", sensor_name="mem", spool_dir=tmp_path, policy_file=POLICY,
        max_flows=config.max_flows, max_bindings=config.max_bindings,
        max_conversations=config.max_conversations, max_evidence=config.max_evidence,
    ))
    sensor.prepare()
    sensor.spool = Spool(tmp_path)
    analyzers = [worker_analyzer(config) for _ in range(WORKERS)]
    sensor.pool = InProcessPool(analyzers)  # type: ignore[assignment]
    middle = len(frames) // 2
    per_cycle: list[dict[str, int]] = []

    def cycle_frames(c: int, lo: int, hi: int, w: int) -> Iterator[Frame]:
        base = c * CYCLE_SECONDS
        for (ts, lt, data, wl), worker in zip(frames[lo:hi], shares[lo:hi], strict=True):
            if worker == w:
                yield (ts + base, lt, data, wl)

    try:
        for c in range(cycles):
            for lo, hi in ((0, middle), (middle, len(frames))):
                for w, a in enumerate(analyzers):
                    a.run(cycle_frames(c, lo, hi, w))
                sensor.snapshot()
            per_cycle.append(sizes(sensor, analyzers))
            if on_cycle is not None:
                on_cycle(c)
    finally:
        sensor.spool.close()
        sensor.spool = None
    return sensor, analyzers, per_cycle


def test_repeated_traffic_does_not_grow_tables(tmp_path: Path) -> None:
    config = WorkerConfig()
    sensor, analyzers, per_cycle = soak(tmp_path, 6, config)
    first = per_cycle[1]  # cycle 0's open flows end in cycle 1: steady from there
    assert first["conversations"] and first["evidence"] and first["ledger_flows"]
    assert first["ledger_violations"], "the policy must judge this traffic (violations)"
    for n, row in enumerate(per_cycle[2:], start=2):
        assert row == first, f"cycle {n} grew: " + ", ".join(
            f"{k} {first[k]} -> {v}" for k, v in row.items() if v != first[k])
    last = per_cycle[-1]
    assert last["flows_live"] <= config.max_flows
    assert last["bindings"] <= config.max_bindings
    assert last["conversations"] <= config.max_conversations
    assert last["evidence"] <= config.max_evidence
    assert sensor.state.conversations_dropped == sensor.state.evidence_dropped == 0
    # counters keep counting while the tables stay put
    assert sensor.state.totals().packets == sum(a.packets for a in analyzers)


def test_caps_hold_and_count_when_hit(tmp_path: Path) -> None:
    config = WorkerConfig(max_flows=8, max_bindings=12, max_conversations=10, max_evidence=15)
    sensor, analyzers, per_cycle = soak(tmp_path, 4, config)
    for row in per_cycle:
        assert row["flows_live"] <= config.max_flows
        assert row["bindings"] <= config.max_bindings
        assert row["worker_conversations"] <= config.max_conversations
        assert row["worker_evidence"] <= config.max_evidence
        assert row["conversations"] <= config.max_conversations
        assert row["evidence"] <= config.max_evidence
    for row in per_cycle[2:]:
        assert row == per_cycle[1]
    totals = sensor.state.totals()
    assert totals.flows_evicted > 0
    assert totals.bindings_dropped > 0
    assert totals.conversations_dropped_flows + sensor.state.conversations_dropped > 0
    assert totals.evidence_dropped + sensor.state.evidence_dropped > 0
    stats = sensor.state.stats()
    assert stats["endpoint_bindings_dropped"] == totals.bindings_dropped
    names = {s.name for s in sensor.samples()}
    assert {"medtap_sensor_bindings_dropped_total", "medtap_sensor_conversations_dropped_total",
            "medtap_sensor_evidence_dropped_total"} <= names


def test_traced_memory_does_not_grow(tmp_path: Path) -> None:
    """Python allocations, not only table sizes: after warm-up (caches, the OUI registry),
    three more cycles of the same traffic leave the traced heap where it was. (It does grow
    a little, ~20 KiB a cycle here: running totals pass 256 and become int objects of their
    own; that stops once every counter has.)"""
    marks: dict[int, int] = {}

    def mark(c: int) -> None:
        marks[c] = tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        soak(tmp_path, 7, WorkerConfig(), on_cycle=mark)
    finally:
        tracemalloc.stop()
    growth = marks[6] - marks[3]
    assert growth < 256 * 1024, f"traced heap grew {growth} bytes over 3 identical cycles"


def test_ledger_forgets_what_the_report_no_longer_has() -> None:
    def item(server: str, packets: int) -> dict[str, Any]:
        return {"transport": "tcp", "vlan": None, "inner_vlan": None, "client": "10.0.0.1",
                "server": server, "server_port": 104, "connections": 1,
                "packets_to_server": packets, "packets_to_client": 0, "bytes_to_server": 0,
                "bytes_to_client": 0}

    ledger = Ledger()
    assert len(ledger.flows_delta([item(f"10.0.1.{i}", 5) for i in range(50)])) == 50
    assert len(ledger.flows) == 50
    sent = ledger.flows_delta([item("10.0.1.0", 7)])
    assert [r["packets_to_server"] for r in sent] == [2]
    assert len(ledger.flows) == 1
    device_id = "mac:00:00:00:00:00:01"
    device: dict[str, Any] = {"id": device_id, "flows": 3, "evidence": [
        {"kind": "role", "value": "x", "source": "from 3 clients", "count": 1}]}
    ledger.devices_delta([device, {**device, "id": "ip:10.0.0.9"}])
    assert len(ledger.devices) == 2
    moved = {**device, "evidence": [
        {"kind": "role", "value": "x", "source": "from 4 clients", "count": 1}]}
    ledger.devices_delta([moved])
    ledger.devices_delta([moved])
    assert list(ledger.devices) == [device_id]
    assert len(ledger.devices[device_id].evidence) == 1


def test_export_pickles_records_as_tuples_and_back(tmp_path: Path) -> None:
    frames = traffic()
    a = worker_analyzer(WorkerConfig())
    a.run(iter(frames[: len(frames) // 2]))
    flows = a.flows.flows()
    assert flows
    live, counts = live_records(flows)
    assert sum(counts) == len(flows)
    assert sum(r.packets_c2s + r.packets_s2c for r in live) == sum(f.packets for f in flows)
    export = take_export(a, {"frames": a.packets}, worker=0, seq=1, final=False)
    back = load_export(dump_export(export))
    assert back.conversations == export.conversations
    assert back.evidence == export.evidence
    assert back.live == export.live and back.live_flows == export.live_flows
    assert back.counters == export.counters
    with pytest.raises(TypeError):
        load_export(dump_export(export.counters))  # type: ignore[arg-type]
    # the open flows count in the view's endpoint flows once each, folded or not
    state = SensorState()
    state.add(back)
    view = {e.id: e.flows for e in state.endpoint_view().build()}
    unfolded = SensorState()
    unfolded.add(WorkerExport(0, 1, False, export.counters, export.conversations,
                              export.evidence, export.endpoints,
                              [rec for f in flows for rec in live_records([f])[0]]))
    assert view == {e.id: e.flows for e in unfolded.endpoint_view().build()}
