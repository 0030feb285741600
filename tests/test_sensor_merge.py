"""Workers merged == one analyzer; snapshots as deltas never count twice (agent/sensor).

No root needed: the captures in pcaps/ are split between analyzers by a symmetric flow hash,
as PACKET_FANOUT_HASH does in the kernel, exports go through pickle as through the worker
pipe, and the merged inventory is compared with one ``Analyzer`` reading the whole file.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import pytest

from agent.capture.files import open_capture
from agent.decode import Decoder
from agent.pipeline import Analyzer
from agent.report import InputResult, build_report
from agent.sensor.export import WorkerExport, take_export
from agent.sensor.merge import SensorState
from agent.sensor.snapshot import Ledger, build_batches, new_run_id
from collector.schema import Batch

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
CAPTURES = [
    PCAPS / "sample" / "hospital-sample.pcapng",
    PCAPS / "policy" / "hospital-policy.pcapng",
    PCAPS / "hl7" / "hl7_pcd01_gateway.pcap",
    PCAPS / "dicom" / "store_modalities.pcap",
]


def symmetric_worker(decoder: Decoder, frame: tuple[float, int, bytes, int], n: int) -> int:
    """Both directions of a flow to the same worker, as the kernel's symmetric hash."""
    ts, linktype, data, wirelen = frame
    meta = decoder.decode(linktype, data, ts, wirelen)
    if meta is None or not meta.ip_version:
        return 0
    ported = meta.proto in (6, 17)  # the flow dissector has ports for TCP/UDP, not ICMP
    ends = sorted([(meta.src_ip, meta.sport if ported else 0),
                   (meta.dst_ip, meta.dport if ported else 0)])
    digest = hashlib.sha256(repr((ends, meta.proto)).encode()).digest()
    return digest[0] % n


def run_split(path: Path, n: int, cuts: int = 1) -> tuple[SensorState, list[WorkerExport]]:
    """``n`` analyzers on a hash split of ``path``; an export after every 1/``cuts`` of the
    file (periodic snapshots), the final one after ``close_all``."""
    frames = list(open_capture(path).frames())
    analyzers = [Analyzer() for _ in range(n)]
    shares: list[list[Any]] = [[] for _ in range(n)]
    decoder = Decoder()
    for frame in frames:
        shares[symmetric_worker(decoder, frame, n)].append(frame)
    state = SensorState()
    exports = []
    for cut in range(cuts):
        for i, analyzer in enumerate(analyzers):
            share = shares[i]
            part = share[len(share) * cut // cuts : len(share) * (cut + 1) // cuts]
            analyzer.run(iter(part))
            final = cut == cuts - 1
            if final:
                analyzer.flows.close_all()
            capture = {"frames": analyzer.packets, "bytes": analyzer.bytes}
            export = take_export(analyzer, capture, worker=i, seq=cut, final=final)
            export = pickle.loads(pickle.dumps(export))  # as through the worker's pipe
            state.add(export)
            exports.append(export)
    return state, exports


def device_view(devices: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """What must not depend on the split. A router's own flow total does: flows to its own
    addresses count in it only after it was recognised as a router, which one analyzer
    does after its sixth address and each worker later (EndpointTable's rule)."""
    return {
        d["id"]: (
            d["device_type"], d["vendor"], d["model"], d["software_version"], d["serial"],
            tuple(d["ips"]), tuple(d["vlans"]), tuple(d["hostnames"]), d["is_router"],
            None if d["is_router"] else d["flows"], d["first_seen"], d["last_seen"],
            tuple(sorted((e["kind"], e["value"], e["count"]) for e in d["evidence"])),
        )
        for d in devices
    }


def flow_view(report: dict[str, Any]) -> dict[tuple[Any, ...], tuple[int, ...]]:
    return {
        (f["transport"], f["vlan"], f["client"], f["server"], f["server_port"], f["app"]): (
            f["connections"], f["packets_to_server"], f["packets_to_client"],
            f["bytes_to_server"], f["bytes_to_client"],
        )
        for f in report["flows"]["items"]
    }


def reference(path: Path) -> dict[str, Any]:
    analyzer = Analyzer()
    analyzer.run(open_capture(path).frames())
    return build_report(analyzer.finish(), [InputResult(str(path), "ok")])


def merged(state: SensorState) -> dict[str, Any]:
    return build_report(state.results(), [InputResult("interface", "ok")])


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_workers_merge_to_the_single_analyzer_inventory(path: Path, workers: int) -> None:
    want = reference(path)
    state, _ = run_split(path, workers, cuts=3)
    got = merged(state)
    assert device_view(got["devices"]) == device_view(want["devices"])
    assert flow_view(got) == flow_view(want)
    assert got["stats"]["packets"] == want["stats"]["packets"]


def test_snapshot_deltas_add_up_to_the_totals() -> None:
    """Snapshots taken mid-capture (open flows included) and the final one: summed the way
    the collector sums them, they give the final totals, never more."""
    path = CAPTURES[0]
    frames = list(open_capture(path).frames())
    analyzer = Analyzer()
    state, ledger = SensorState(), Ledger()
    sums: dict[tuple[Any, ...], list[int]] = {}
    device_flows: dict[str, int] = {}
    evidence: dict[tuple[str, str, str, str], int] = {}
    run_id = new_run_id()
    ids = set()
    cuts = 7
    for cut in range(cuts):
        analyzer.run(iter(frames[len(frames) * cut // cuts : len(frames) * (cut + 1) // cuts]))
        final = cut == cuts - 1
        if final:
            analyzer.flows.close_all()
        export = take_export(analyzer, {"frames": analyzer.packets}, worker=0, seq=cut,
                             final=final)
        state.add(pickle.loads(pickle.dumps(export)))
        delta = ledger.delta(merged(state))
        for item in delta["flows"]["items"]:
            key = (item["transport"], item["vlan"], item["client"], item["server"],
                   item["server_port"])
            row = sums.setdefault(key, [0, 0, 0])
            row[0] += item["connections"]
            row[1] += item["packets_to_server"] + item["packets_to_client"]
            row[2] += item["bytes_to_server"] + item["bytes_to_client"]
        for dev in delta["devices"]:
            device_flows[dev["id"]] = device_flows.get(dev["id"], 0) + dev["flows"]
            for ev in dev["evidence"]:
                k = (dev["id"], ev["kind"], ev["value"], ev["source"])
                evidence[k] = evidence.get(k, 0) + ev["count"]
        for batch in build_batches(delta, sensor="s1", run_id=run_id, seq=cut, heartbeat=None):
            Batch.model_validate(batch.model_dump())
            assert batch.batch_id not in ids
            ids.add(batch.batch_id)
    want = reference(path)
    assert {k: tuple(v) for k, v in sums.items()} == {
        (f["transport"], f["vlan"], f["client"], f["server"], f["server_port"]): (
            f["connections"], f["packets_to_server"] + f["packets_to_client"],
            f["bytes_to_server"] + f["bytes_to_client"],
        )
        for f in want["flows"]["items"]
    }
    assert device_flows == {d["id"]: d["flows"] for d in want["devices"]}
    final = {
        (d["id"], e["kind"], e["value"], e["source"]): e["count"]
        for d in want["devices"]
        for e in d["evidence"]
    }
    # Every final evidence row arrives with its exact count. Early snapshots may also have
    # sent rows the final view no longer has (docs/sensor.md, "What a snapshot cannot
    # know yet"): a router not yet recognised owned the addresses behind it for a while,
    # and an inferred role names its client count in its source.
    assert {k: evidence.get(k) for k in final} == final


def test_unchanged_state_sends_nothing() -> None:
    state, _ = run_split(CAPTURES[2], 1)
    ledger = Ledger()
    report = merged(state)
    first = ledger.delta(report)
    assert first["devices"] and first["flows"]["items"]
    again = ledger.delta(merged(state))
    assert again["devices"] == [] and again["flows"]["items"] == []
