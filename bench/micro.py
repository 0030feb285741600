"""Per-stage microbenchmarks of medtap's hot path on one capture.

    python bench/micro.py [--pcap bench/data/hosp_1m.pcap] [--limit N] [--repeat 3] [--markdown]

Stages, each in a fresh interpreter (so peak RSS is the stage's own) and each adding one step:

  reader     ``agent.capture.files.open_capture(path).frames()`` walked, nothing else
  decode     + ``agent.decode.Decoder().decode`` on every frame
  flows      + ``agent.flows.FlowTable.update`` for every IP packet (no callbacks)
  core       ``agent.pipeline.Analyzer(core_only=True)``: decode, flows, endpoints,
             conversations, then ``finish()`` (what ``medtap analyze --core-only`` runs)
  full       ``agent.pipeline.Analyzer()`` with the default parsers, then ``finish()``

A stage whose module is missing is reported as skipped. Times are in-process: no interpreter
start-up, no report writing. The per-packet cost of a stage minus the one before it is the cost
of the step it adds.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PCAP = REPO / "bench" / "data" / "hosp_1m.pcap"
STAGES = ("reader", "decode", "flows", "core", "full")
LABELS = {
    "reader": "reader walk (open_capture().frames())",
    "decode": "+ decode (Decoder.decode)",
    "flows": "+ flow table (FlowTable.update)",
    "core": "core pipeline: + endpoints, conversations, finish()",
    "full": "full pipeline: + app detection and parsers",
}

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


class Skip(Exception):
    """The modules this stage needs are not there (yet)."""


def _frames(path: str, limit: int | None) -> Iterator[Any]:
    try:
        from agent.capture.files import open_capture
    except ImportError as exc:
        raise Skip(f"agent.capture.files: {exc}") from None
    frames = open_capture(path).frames()
    return islice(frames, limit) if limit else frames


def stage_reader(path: str, limit: int | None) -> int:
    n = 0
    for _ in _frames(path, limit):
        n += 1
    return n


def stage_decode(path: str, limit: int | None) -> int:
    try:
        from agent.decode import Decoder
    except ImportError as exc:
        raise Skip(f"agent.decode: {exc}") from None
    decode = Decoder().decode
    n = 0
    for ts, linktype, data, wirelen in _frames(path, limit):
        n += 1
        decode(linktype, data, ts, wirelen)
    return n


def stage_flows(path: str, limit: int | None) -> int:
    try:
        from agent.decode import Decoder
        from agent.flows import FlowTable
    except ImportError as exc:
        raise Skip(f"agent.decode / agent.flows: {exc}") from None
    decode = Decoder().decode
    table = FlowTable(lambda flow, reason: None)
    update = table.update
    n = 0
    for ts, linktype, data, wirelen in _frames(path, limit):
        n += 1
        meta = decode(linktype, data, ts, wirelen)
        # as the pipeline does: IP packets only, and not fragments that carry no transport header
        if meta is None or not meta.ip_version:
            continue
        if meta.fragment and meta.payload_offset == meta.payload_end:
            continue
        update(meta)
    table.close_all()
    return n


def _analyzer(path: str, limit: int | None, core_only: bool) -> int:
    try:
        from agent.pipeline import Analyzer
        from parsers.registry import Registry
    except ImportError as exc:
        raise Skip(f"agent.pipeline: {exc}") from None
    if core_only:

        class NoParsers(Registry):
            # An empty Registry is falsy (len 0), and Analyzer's `registry or
            # default_registry()` then loads every parser, even with core_only=True (which
            # swaps in a plain empty Registry). A truthy empty registry keeps this stage what
            # it says, parsers off, whether or not that is fixed in agent/pipeline.py.
            def __bool__(self) -> bool:
                return True

        analyzer = Analyzer(NoParsers())
    else:
        analyzer = Analyzer()
    n = analyzer.run(_frames(path, limit))
    analyzer.finish()
    if core_only and analyzer.appdetect.detected:
        raise RuntimeError("parsers ran in the core stage")
    return n


def stage_core(path: str, limit: int | None) -> int:
    return _analyzer(path, limit, core_only=True)


def stage_full(path: str, limit: int | None) -> int:
    return _analyzer(path, limit, core_only=False)


RUNNERS: dict[str, Callable[[str, int | None], int]] = {
    "reader": stage_reader,
    "decode": stage_decode,
    "flows": stage_flows,
    "core": stage_core,
    "full": stage_full,
}


def run_stage(stage: str, path: str, limit: int | None) -> dict[str, Any]:
    """Run one stage in this process and return its measurements."""
    try:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        packets = RUNNERS[stage](path, limit)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    except Skip as exc:
        return {"stage": stage, "skipped": str(exc)}
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
    return {"stage": stage, "packets": packets, "wall": wall, "cpu": cpu, "rss_mb": rss_mb}


def measure(stage: str, path: str, limit: int | None, repeat: int) -> dict[str, Any]:
    """Median of ``repeat`` runs of one stage, each in a fresh interpreter."""
    runs = []
    for _ in range(repeat):
        cmd = [sys.executable, __file__, "--stage", stage, "--pcap", path]
        if limit:
            cmd += ["--limit", str(limit)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            return {"stage": stage, "skipped": f"failed: {tail[0]}"}
        result = json.loads(proc.stdout)
        if "skipped" in result:
            return result
        runs.append(result)
    return {
        "stage": stage,
        "packets": runs[0]["packets"],
        "wall": statistics.median(r["wall"] for r in runs),
        "cpu": statistics.median(r["cpu"] for r in runs),
        "rss_mb": max(r["rss_mb"] for r in runs),
    }


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| stage | packets/s | µs/packet | µs added by the stage | CPU s | packets/CPU s "
        "| peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    prev: float | None = None
    for r in results:
        if "skipped" in r:
            why = str(r["skipped"]).replace("|", "\\|")
            lines.append(f"| {LABELS[r['stage']]} | – | – | – | – | – | skipped: {why} |")
            continue
        us = r["wall"] / r["packets"] * 1e6
        added = f"{us - prev:.2f}" if prev is not None else "–"
        lines.append(
            f"| {LABELS[r['stage']]} | {r['packets'] / r['wall'] / 1000:,.1f}k | {us:.2f} | "
            f"{added} | {r['cpu']:.2f} | {r['packets'] / r['cpu'] / 1000:,.1f}k | "
            f"{r['rss_mb']:.0f} |"
        )
        prev = us
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pcap", default=str(DEFAULT_PCAP))
    ap.add_argument("--limit", type=int, help="only the first N packets")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)  # child process
    args = ap.parse_args(argv)
    if args.stage:
        print(json.dumps(run_stage(args.stage, args.pcap, args.limit)))
        return 0
    if not Path(args.pcap).exists():
        sys.exit(f"micro: {args.pcap} does not exist (python bench/run.py generates it)")
    results = []
    for stage in args.stages.split(","):
        r = measure(stage, args.pcap, args.limit, args.repeat)
        results.append(r)
        if not args.markdown:
            if "skipped" in r:
                print(f"{stage:7s} skipped: {r['skipped']}")
            else:
                print(
                    f"{stage:7s} {r['packets'] / r['wall'] / 1000:8,.1f}k pkt/s "
                    f"{r['wall'] / r['packets'] * 1e6:6.2f} µs/pkt  {r['wall']:6.2f} s wall "
                    f"{r['cpu']:6.2f} s CPU  {r['rss_mb']:5.0f} MB",
                    flush=True,
                )
    if args.markdown:
        print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
