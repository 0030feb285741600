"""Per-stage microbenchmarks of medtap's hot path on one capture.

    python bench/micro.py [--pcap bench/data/hosp_1m.pcap] [--limit N] [--repeat 3] [--markdown]

Stages, each in a fresh interpreter (so peak RSS is the stage's own):

  reader     ``agent.capture.files.open_capture(path).frames()`` walked, nothing else (the C
             record walker of ``agent._fastcore`` when it is built)
  reader-py  the same with ``MEDTAP_NO_C=1``: the pure-Python record loop
  decode     reader + ``agent.decode.Decoder().decode`` on every frame (the layered path)
  flows      decode + ``agent.flows.FlowTable.update`` for every IP packet (no callbacks)
  core       ``agent.pipeline.Analyzer(core_only=True)``: decode, flows, endpoints,
             conversations, then ``finish()`` (what ``medtap analyze --core-only`` runs); with the
             C extension the reader runs the fast lane and only other frames reach Python
  core-py    the same with ``MEDTAP_NO_C=1`` (pure Python, Python fast lane)
  full       ``agent.pipeline.Analyzer()`` with the default parsers, then ``finish()``

``--limit`` wraps the frames in ``islice``, which hides the C record walker from the analyzer:
the core stages then call the C lane once per frame instead. A stage whose module is missing
is reported as skipped. Times are in-process: no interpreter
start-up, no report writing. ``ADDS`` names the row each stage adds one step to; its per-packet
cost minus that row's is the cost of the step.
"""

from __future__ import annotations

import argparse
import json
import os
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
STAGES = ("reader", "reader-py", "decode", "flows", "core", "core-py", "full")
LABELS = {
    "reader": "reader walk (open_capture().frames())",
    "reader-py": "reader walk, pure Python (MEDTAP_NO_C=1)",
    "decode": "+ decode (Decoder.decode)",
    "flows": "+ flow table (FlowTable.update)",
    "core": "core pipeline: lane, decode, flows, endpoints, conversations, finish()",
    "core-py": "core pipeline, pure Python (MEDTAP_NO_C=1)",
    "full": "full pipeline: + app detection and parsers",
}
ADDS = {"decode": "reader", "flows": "decode", "full": "core"}  # stage -> row it adds a step to
PURE_PYTHON = {"reader-py": "reader", "core-py": "core"}  # same runner, MEDTAP_NO_C=1

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


def lane_share(path: str, reasons: bool) -> dict[str, Any]:
    """Where the packets and the CPU time of the core pipeline go: counted by the fast lane
    inside the C reader, or handed to Python, and why (first matching reason). CPU time is
    split by timing every call into the reader (``time.process_time`` around each ``next``;
    the timer calls themselves add a little to the Python side)."""
    from collections import Counter

    import agent.pipeline as pipeline
    from agent.decode import TCP_FIN, TCP_RST, TCP_SYN

    analyzer = pipeline.Analyzer(core_only=True)
    lane: dict[str, int] = {"packets": 0}
    attach = pipeline.attach_lane

    class Counted:
        """The reader as the analyzer sees it; remembers what the lane counted."""

        def __init__(self, reader: Any) -> None:
            self.reader = reader

        def detach(self) -> tuple[int, int]:
            packets, nbytes = self.reader.detach()
            lane["packets"] += packets
            return packets, nbytes

    class Timed:
        """The frames iterator, timed; attach_lane sees the reader inside it."""

        def __init__(self, frames: Any) -> None:
            self.frames = frames
            self.cpu = 0.0

        def __iter__(self) -> Timed:
            return self

        def __next__(self) -> Any:
            t = time.process_time()
            try:
                return next(self.frames)
            finally:
                self.cpu += time.process_time() - t

    def counted_attach(frames: Any, *args: Any) -> Any:
        reader = attach(frames.frames if isinstance(frames, Timed) else frames, *args)
        return None if reader is None else Counted(reader)

    why: Counter[str] = Counter()
    table = analyzer.flows
    update, decode = table.update, analyzer.decoder.decode

    def decode_counted(linktype: int, data: bytes, ts: float, wirelen: int) -> Any:
        meta = decode(linktype, data, ts, wirelen)
        if meta is None:
            why["undecodable"] += 1
        elif not meta.ip_version:
            why["not IP (ARP, LLDP, STP...)"] += 1
        elif meta.fragment and meta.payload_offset == meta.payload_end:
            why["IP fragment"] += 1
        return meta

    def update_counted(meta: Any) -> Any:
        created, sweep = table.created, table._next_sweep
        flow, to_server = update(meta)
        if table.created != created:
            why["new flow"] += 1
        elif meta.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST):
            why["SYN/FIN/RST"] += 1
        elif meta.ts >= sweep:
            why["due idle sweep"] += 1
        elif flow.app_state is not None:
            why["flow with parser work"] += 1
        else:
            why["other (stale flow, handshake, IPv6 extension headers...)"] += 1
        return flow, to_server

    pipeline.attach_lane = counted_attach  # type: ignore[assignment]
    if reasons:  # a separate run: the counting wrappers would add to the Python side
        analyzer.decoder.decode = decode_counted  # type: ignore[method-assign]
        table.update = update_counted  # type: ignore[method-assign]
    timed = Timed(_frames(path, None))
    try:
        cpu0 = time.process_time()
        packets = analyzer.run(timed)
        cpu1 = time.process_time()
        analyzer.finish()
        cpu2 = time.process_time()
    finally:
        pipeline.attach_lane = attach
    return {
        "packets": packets,
        "lane": lane["packets"],
        "python": dict(why.most_common()),
        "cpu_reader": timed.cpu,  # C reader: record walk, fast lane, frames handed out
        "cpu_python": cpu1 - cpu0 - timed.cpu,  # decode, flow table, flow ends, timers
        "cpu_finish": cpu2 - cpu1,  # end of capture: every live flow ends, inventory built
    }


RUNNERS: dict[str, Callable[[str, int | None], int]] = {
    "reader": stage_reader,
    "reader-py": stage_reader,
    "decode": stage_decode,
    "flows": stage_flows,
    "core": stage_core,
    "core-py": stage_core,
    "full": stage_full,
}


def run_stage(stage: str, path: str, limit: int | None) -> dict[str, Any]:
    """Run one stage in this process and return its measurements."""
    if stage in PURE_PYTHON:
        os.environ["MEDTAP_NO_C"] = "1"  # read by agent.fastcore on every call
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
    us_of: dict[str, float] = {}
    for r in results:
        if "skipped" in r:
            why = str(r["skipped"]).replace("|", "\\|")
            lines.append(f"| {LABELS[r['stage']]} | – | – | – | – | – | skipped: {why} |")
            continue
        us = us_of[r["stage"]] = r["wall"] / r["packets"] * 1e6
        base = ADDS.get(r["stage"])
        added = f"{us - us_of[base]:.2f}" if base in us_of else "–"
        lines.append(
            f"| {LABELS[r['stage']]} | {r['packets'] / r['wall'] / 1000:,.1f}k | {us:.2f} | "
            f"{added} | {r['cpu']:.2f} | {r['packets'] / r['cpu'] / 1000:,.1f}k | "
            f"{r['rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pcap", default=str(DEFAULT_PCAP))
    ap.add_argument("--limit", type=int, help="only the first N packets")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)  # child process
    ap.add_argument("--share", action="store_true", help="print where packets go (JSON)")
    args = ap.parse_args(argv)
    if args.share:
        timed = lane_share(args.pcap, reasons=False)
        timed["python"] = lane_share(args.pcap, reasons=True)["python"]
        print(json.dumps(timed))
        return 0
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
                print(f"{stage:9s} skipped: {r['skipped']}")
            else:
                print(
                    f"{stage:9s} {r['packets'] / r['wall'] / 1000:8,.1f}k pkt/s "
                    f"{r['wall'] / r['packets'] * 1e6:6.2f} µs/pkt  {r['wall']:6.2f} s wall "
                    f"{r['cpu']:6.2f} s CPU  {r['rss_mb']:5.0f} MB",
                    flush=True,
                )
    if args.markdown:
        print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
