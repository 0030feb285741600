"""Load shedding inside the pipeline (docs/sensor.md, "Overload"): flows counted the same,
parsers skipped or cut, nothing else changed. The live side is tests/test_sensor_shed.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.capture.files import open_capture
from agent.pipeline import Analyzer

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
SAMPLE = PCAPS / "sample" / "hospital-sample.pcapng"
STORES = PCAPS / "dicom" / "store_modalities.pcap"


def frames(path: Path) -> list[Any]:
    return list(open_capture(path).frames())


def counts(analyzer: Analyzer) -> tuple[Any, ...]:
    results = analyzer.finish()
    per_flow = sorted((c.client_ip, c.server_ip, c.server_port, c.packets_c2s, c.packets_s2c,
                       c.bytes_c2s, c.bytes_s2c, c.connections)
                      for c in results.conversations)
    s = results.stats
    return s["packets"], s["bytes"], s["flows"], per_flow


def test_new_flows_unparsed_are_still_counted() -> None:
    got = frames(SAMPLE)
    normal, shed = Analyzer(), Analyzer()
    shed.parse_share = 0.0
    normal.run(got)
    shed.run(got)
    assert shed.flows_unparsed == shed.flows.created > 0
    assert not shed.appdetect.detected  # no parser ever ran
    assert normal.appdetect.detected
    assert counts(shed) == counts(normal)


def test_stop_parsing_cuts_running_parsers_and_keeps_what_they_said() -> None:
    got = frames(STORES)
    half = len(got) // 2
    normal, cut = Analyzer(), Analyzer()
    normal.run(got)
    cut.run(got[:half])
    busy = sum(1 for f in cut.flows.flows() if f.app_state is not None)
    assert busy > 0  # DICOM associations halfway through
    before = len(cut.evidence)
    assert cut.stop_parsing() == busy == cut.flows_unparsed
    assert all(f.app_state is None for f in cut.flows.flows())
    assert cut.appdetect.parser_budget.used == 0  # their buffers were given back
    cut.run(got[half:])
    assert len(cut.evidence) >= before > 0  # what was reported before the cut stays
    assert counts(cut) == counts(normal)


def test_a_parse_share_parses_that_share_of_new_flows_evenly() -> None:
    got = frames(SAMPLE)
    half = Analyzer()
    half.parse_share = 0.5
    half.run(got)
    created = half.flows.created
    assert created > 20
    assert half.flows_unparsed in (created // 2, (created + 1) // 2)  # every second flow
    assert half.appdetect.detected  # the parsed half found its protocols
    normal = Analyzer()
    normal.run(got)
    assert counts(half) == counts(normal)
