"""Live benchmark of ``medtap sensor``: the reference capture replayed onto a span interface.

    sudo python bench/live_replay.py [--pcap bench/data/hosp_1m.pcap] [--workers 1 2]
        [--rates 25000 50000 ...] [--core-rates 50000 100000 ...] [--step-seconds 10]
        [--sender txring|tcpreplay] [--soak 600] [--soak-workers 2] [--out docs/performance.md]

A veth pair (MTU 9000): one end in a namespace ``medtap-sen-bench-<pid>`` where the sender
replays the capture at a fixed packet rate, looped to last ``--step-seconds``; the other end
in the root namespace is the sensor's ``--interface``. Senders (``--sender``):

- ``txring`` (default): ``bench/txreplay.c``, compiled at start with ``cc`` into the run's
  temporary directory. It writes frames into an AF_PACKET TX ring (``PACKET_TX_RING``,
  ``PACKET_QDISC_BYPASS``) and flushes a burst with one ``send()``, paced by a token bucket,
  so it is not limited by a system call per frame. Without a compiler the script falls back
  to tcpreplay and says so.
- ``tcpreplay`` (Debian package): ``tcpreplay -K --pps=R``, one ``sendto()`` per packet; it
  stops near 70-80k packets/s on a 2-core machine that also runs the sensor.

Both report what they sent and the rate they reached. For each worker count the rate rises
(``--rates``, ``--core-rates``: any list of steps) until the kernel reports drops
(``PACKET_STATISTICS`` through the sensor's Prometheus endpoint); the highest rate with zero
drops is reported, with the rate the sender actually reached (it can be the limit on a busy
machine) and the rate the workers processed. Then a soak at a fixed rate: CPU (user +
sys of the sensor and its workers, from /proc/PID/stat) and memory (PSS summed over the
processes, from /proc/PID/smaps_rollup: forked workers share pages, RSS would count them
twice) sampled every 10 s.

Three pipelines are measured separately (``PIPELINES``): ``full`` (every parser on every
flow, ``--no-shed``: the parsers' cost per packet is the limit on this capture, which is
dense in DICOM and HL7), ``shed`` (the sensor's default: a worker behind its ring gives new
flows no parsers until it catches up, docs/sensor.md "Overload"; the share of flows left
unparsed is reported per step) and ``core`` (``--core-only``: decode + flows + endpoints).
Results go between ``<!-- live-replay -->`` and ``<!-- /live-replay -->`` in ``--out``
(appended if the markers are missing), independent of ``bench/run.py``, which rewrites the
rest of that file. Root only; sends nothing outside
its own veth pair.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agent.sensor.ring import DEFAULT_RING_MB

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- live-replay -->", "<!-- /live-replay -->"
TICK = os.sysconf("SC_CLK_TCK")


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=120)


@dataclass
class Link:
    ns: str
    tx: str = "tx0"
    rx: str = ""

    def create(self) -> None:
        self.rx = f"medtap-sen-{(os.getpid() * 31) % 0xFFFF:04x}"  # IFNAMSIZ: 15 chars
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.rx, "mtu", "9000", "type", "veth", "peer", "name",
           self.tx, "mtu", "9000", "netns", self.ns)
        Path(f"/proc/sys/net/ipv6/conf/{self.rx}/disable_ipv6").write_text("1")
        sh("ip", "netns", "exec", self.ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        sh("ip", "link", "set", self.rx, "up")
        sh("ip", "-n", self.ns, "link", "set", self.tx, "up")

    def destroy(self) -> None:
        if self.rx:
            sh("ip", "link", "del", self.rx, check=False)
        sh("ip", "netns", "del", self.ns, check=False)


@dataclass
class SensorProc:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def metrics(self) -> dict[str, float]:
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            m = re.match(r"^(medtap_sensor_[a-z_]+) ([0-9.e+-]+)$", line)
            if m:
                out[m.group(1)] = float(m.group(2))
        return out

    def pids(self) -> list[int]:
        kids = sh("pgrep", "-P", str(self.proc.pid), check=False).stdout.split()
        return [self.proc.pid, *map(int, kids)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


PIPELINES = {  # name -> (sensor options, label in the tables)
    "full": (["--no-shed"], "full, every flow parsed (`--no-shed`)"),
    "shed": ([], "full with load shedding (default)"),
    "core": (["--core-only"], "core only (`--core-only`)"),
}


def start_sensor(link: Link, workers: int, pipeline: str, tmp: Path) -> SensorProc:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    log = tmp / f"sensor-{workers}-{pipeline}.log"
    cmd = [sys.executable, "-m", "agent.cli_sensor", "-i", link.rx, "--workers", str(workers),
           "--spool", str(tmp / f"spool-{workers}-{pipeline}"), "--metrics-port",
           str(port), "--report-interval", "60", "--stats-interval", "1", "--log-json",
           *PIPELINES[pipeline][0]]
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
    sensor = SensorProc(proc, port, log)
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"sensor exited: {log.read_text()[-2000:]}")
        try:
            if "medtap_sensor_packets_total" in sensor.metrics():
                return sensor
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("sensor did not start")


TXREPLAY_C = REPO / "bench" / "txreplay.c"


@dataclass
class Sender:
    """The program that puts the capture on the wire: ``txring`` (bench/txreplay.c, compiled
    into ``binary``) or ``tcpreplay``. Both run inside the link's namespace."""

    kind: str
    binary: str = "tcpreplay"

    @classmethod
    def make(cls, kind: str, tmp: Path) -> Sender:
        if kind == "tcpreplay":
            if shutil.which("tcpreplay") is None:
                raise SystemExit("tcpreplay not found: apt-get install tcpreplay")
            return cls("tcpreplay")
        cc = shutil.which("cc")
        if cc is None:
            print("note: no C compiler (cc) to build bench/txreplay.c; sending with tcpreplay "
                  "instead (it tops out near 70-80k pkt/s)", file=sys.stderr, flush=True)
            return cls.make("tcpreplay", tmp)
        binary = tmp / "txreplay"
        built = subprocess.run([cc, "-O2", "-Wall", "-o", str(binary), str(TXREPLAY_C)],
                               capture_output=True, text=True, timeout=120, check=False)
        if built.returncode != 0:
            raise SystemExit(f"cc failed on {TXREPLAY_C}:\n{built.stderr.strip()}")
        return cls("txring", str(binary))

    @property
    def label(self) -> str:
        return "txreplay" if self.kind == "txring" else "tcpreplay"

    def command(self, link: Link, pcap: Path, rate: int, *, count: int = 0,
                file_packets: int = 1, seconds: float = 0.0) -> list[str]:
        """``count`` frames (looping the file as needed), or ``seconds`` of traffic."""
        if self.kind == "txring":
            cmd = [self.binary, f"--pps={rate}", "--loop=0"]
            cmd.append(f"--count={count}" if count else f"--duration={seconds:g}")
            return ["ip", "netns", "exec", link.ns, *cmd, link.tx, str(pcap)]
        multi = max(1, rate // 20_000)  # packets per timer tick: tcpreplay's own limit otherwise
        cmd = ["tcpreplay", "-i", link.tx, "-K", f"--pps={rate}", f"--pps-multi={multi}"]
        if count:
            cmd += [f"--loop={max(1, math.ceil(count / file_packets))}", f"--limit={count}"]
        else:
            cmd += ["--loop=0", f"--duration={int(seconds)}"]
        return ["ip", "netns", "exec", link.ns, *cmd, str(pcap)]

    def parse(self, returncode: int, stdout: str, stderr: str) -> dict[str, Any]:
        """What the sender says it sent: ``sent``, ``seconds``, ``achieved_pps``,
        ``send_failed``."""
        if self.kind == "txring":
            # txreplay prints one JSON line on stdout; errors are one line on stderr
            report = next((json.loads(line) for line in reversed(stdout.splitlines())
                           if line.startswith("{")), None)
            if returncode != 0 or report is None:
                raise SystemExit(f"txreplay failed (exit {returncode}): "
                                 f"{stderr.strip() or stdout.strip()}")
            return {"sent": int(report["sent"]), "seconds": float(report["seconds"]),
                    "achieved_pps": float(report["pps"]), "send_failed": int(report["errors"])}
        text = stdout + stderr
        sent = re.search(r"Actual: (\d+) packets .* in ([0-9.]+) seconds", text)
        rated = re.search(r"Rated: [0-9.]+ Bps, [0-9.]+ Mbps, ([0-9.]+) pps", text)
        failed = re.search(r"Failed packets:\s+(\d+)", text)
        return {
            "sent": int(sent.group(1)) if sent else 0,
            "seconds": float(sent.group(2)) if sent else 0.0,
            "achieved_pps": float(rated.group(1)) if rated else 0.0,
            "send_failed": int(failed.group(1)) if failed else 0,
        }


def replay(sender: Sender, link: Link, pcap: Path, rate: int, count: int,
           file_packets: int) -> dict[str, Any]:
    out = subprocess.run(sender.command(link, pcap, rate, count=count, file_packets=file_packets),
                         capture_output=True, text=True, timeout=3600, check=False)
    return sender.parse(out.returncode, out.stdout, out.stderr)


COUNTERS = ("medtap_sensor_kernel_received_total", "medtap_sensor_packets_total",
            "medtap_sensor_kernel_drops_total")


def settle(sensor: SensorProc, before: dict[str, float], sent: int,
           timeout: float = 300) -> tuple[dict[str, float], float]:
    """Wait until the workers have taken every frame the kernel offered (or dropped).
    Returns the metrics then and the monotonic time it happened (to 0.25 s)."""
    deadline = time.monotonic() + timeout
    now = sensor.metrics()
    while time.monotonic() < deadline:
        got, done, drops = (now[c] - before[c] for c in COUNTERS)
        if got >= sent * 0.999 and done + drops >= got:
            return now, time.monotonic()
        time.sleep(0.25)
        now = sensor.metrics()
    return now, time.monotonic()


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def pss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        m = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
        total += int(m.group(1)) if m else 0
    return total / 1024


@dataclass
class Step:
    rate: int
    achieved_pps: float
    sent: int
    captured: int
    drops: int
    processed_pps: float
    flows: int = 0
    flows_unparsed: int = 0  # flows given no parsers or cut (load shedding)

    @property
    def unparsed(self) -> str:
        """Flows not parsed or cut, of the flows started in the step. Cut flows may have
        started in an earlier step, so the first number can exceed the second."""
        return f"{self.flows_unparsed:,} / {self.flows:,}"


@dataclass
class Search:
    workers: int
    pipeline: str
    steps: list[Step] = field(default_factory=list)

    @property
    def best(self) -> Step | None:
        ok = [s for s in self.steps if s.drops == 0]
        return max(ok, key=lambda s: s.achieved_pps) if ok else None


def delta(after: dict[str, float], before: dict[str, float], name: str) -> int:
    return int(after.get(f"medtap_sensor_{name}_total", 0)
               - before.get(f"medtap_sensor_{name}_total", 0))


def search(sender: Sender, link: Link, pcap: Path, workers: int, pipeline: str,
           rates: list[int], step_seconds: float, file_packets: int, tmp: Path) -> Search:
    result = Search(workers, pipeline)
    sensor = start_sensor(link, workers, pipeline, tmp)
    try:
        for rate in rates:
            before = sensor.metrics()
            t0 = time.monotonic()
            sent = replay(sender, link, pcap, rate, int(rate * step_seconds), file_packets)
            after, t1 = settle(sensor, before, sent["sent"])
            took = t1 - t0
            drops = delta(after, before, "kernel_drops")
            captured = delta(after, before, "packets")
            step = Step(rate, sent["achieved_pps"], sent["sent"], captured, drops,
                        captured / took if took else 0.0, delta(after, before, "flows"),
                        delta(after, before, "flows_unparsed"))
            result.steps.append(step)
            print(json.dumps({"workers": workers, "pipeline": pipeline, **vars(step),
                              "load": os.getloadavg()}), flush=True)
            if drops:
                break
    finally:
        sensor.stop()
    return result


def soak(sender: Sender, link: Link, pcap: Path, workers: int, pipeline: str, rate: int,
         seconds: float, tmp: Path) -> dict[str, Any]:
    sensor = start_sensor(link, workers, pipeline, tmp)
    try:
        before = sensor.metrics()
        proc = subprocess.Popen(sender.command(link, pcap, rate, seconds=seconds),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples: list[dict[str, float]] = []
        pids = sensor.pids()
        t_prev, c_prev = time.monotonic(), cpu_ticks(pids)
        t_start = t_prev
        while proc.poll() is None:
            time.sleep(10)
            t_now, c_now = time.monotonic(), cpu_ticks(pids)
            samples.append({
                "t": round(t_now - t_start, 1),
                "cpu_pct": 100.0 * (c_now - c_prev) / TICK / (t_now - t_prev),
                "pss_mb": pss_mb(pids),
                "load1": os.getloadavg()[0],
            })
            t_prev, c_prev = t_now, c_now
        out, err = proc.communicate()
        sent = sender.parse(proc.returncode, out, err)
        after, _ = settle(sensor, before, sent["sent"])
    finally:
        sensor.stop()
    cpu = [s["cpu_pct"] for s in samples]
    pss = [s["pss_mb"] for s in samples]
    return {
        "workers": workers,
        "pipeline": pipeline,
        "rate": rate,
        "achieved_pps": sent["achieved_pps"],
        "seconds": seconds,
        "packets": int(after["medtap_sensor_packets_total"]
                       - before["medtap_sensor_packets_total"]),
        "drops": delta(after, before, "kernel_drops"),
        "flows": delta(after, before, "flows"),
        "flows_unparsed": delta(after, before, "flows_unparsed"),
        "cpu_mean_pct": sum(cpu) / len(cpu) if cpu else 0.0,
        "cpu_max_pct": max(cpu, default=0.0),
        "pss_first_mb": pss[0] if pss else 0.0,
        "pss_last_mb": pss[-1] if pss else 0.0,
        "pss_max_mb": max(pss, default=0.0),
        "load_mean": sum(s["load1"] for s in samples) / len(samples) if samples else 0.0,
        "pss_per_minute": [round(s["pss_mb"]) for s in samples[5::6]],  # samples every 10 s
        "samples": samples,
    }


def steps_from(
    path: Path,
) -> tuple[list[Search], list[dict[str, Any]], tuple[float, float, float]]:
    """Searches and soak summaries from the JSON lines an earlier run printed."""
    searches: dict[tuple[int, str], Search] = {}
    soaks: list[dict[str, Any]] = []
    load: tuple[float, float, float] | None = None
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if "cpu_mean_pct" in row:
            soaks.append(row)
            continue
        pipeline = row.get("pipeline") or ("core" if row.get("core_only") else "full")
        key = (row["workers"], pipeline)
        searches.setdefault(key, Search(*key)).steps.append(Step(
            row["rate"], row["achieved_pps"], row["sent"], row["captured"], row["drops"],
            row["processed_pps"], row.get("flows", 0), row.get("flows_unparsed", 0)))
        if load is None:
            a, b, c = row["load"]
            load = (a, b, c)
    return list(searches.values()), soaks, load or (0.0, 0.0, 0.0)


def k(n: float) -> str:
    return f"{n / 1000:.1f}k"


def markdown(args: argparse.Namespace, searches: list[Search], soaks: list[dict[str, Any]],
             load_before: tuple[float, float, float]) -> str:
    if args.sender == "txring":
        sender_name = "txreplay"
        sender_how = ("`bench/txreplay.c --pps=R` (AF_PACKET TX ring with "
                      "`PACKET_QDISC_BYPASS`, one `send()` per burst of frames, token-bucket "
                      "pacing)")
    else:
        sender_name = "tcpreplay"
        sender_how = "`tcpreplay -K --pps=R` (one `sendto()` per frame)"
    lines = [
        BEGIN,
        "## Live replay (`bench/live_replay.py`)",
        "",
        f"Written by `python bench/live_replay.py` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; rerun it rather than editing "
        f"by hand. Machine: {platform.machine()}, "
        f"{os.cpu_count()} CPUs, kernel {platform.release()}, Python "
        f"{platform.python_version()}; load average before the run "
        f"{load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f} "
        f"(the machine is shared with other work; the sender, {sender_name}, runs on the same "
        "two cores as the sensor, and on a veth pair the kernel's receive path, including the "
        "copy into the sensor's ring, runs on the sender's core).",
        "",
        f"`{args.pcap.name}` replayed by {sender_how} from a network namespace into a "
        "veth pair; `medtap sensor -i <veth> --workers N` captures on the other end (TPACKET_V3 "
        f"ring, {DEFAULT_RING_MB} MiB per worker, PACKET_FANOUT_HASH with N > 1). Each step sends "
        f"~{args.step_seconds:g} s of traffic; drops are the kernel's (`PACKET_STATISTICS`, the "
        f"sensor's `medtap_sensor_kernel_drops_total`). *achieved* is the rate {sender_name} "
        "reports for the step; *processed* is frames handled by the workers per second of the "
        "step including the time to drain the ring.",
        "",
        "| pipeline | workers | highest rate with 0 drops (asked / achieved) | processed | "
        "flows unparsed / new there | first rate with drops |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for s in searches:
        best = s.best
        dropped = next((st for st in s.steps if st.drops), None)
        lines.append(
            f"| {PIPELINES[s.pipeline][1]} | {s.workers} | "
            + (f"{k(best.rate)} / {k(best.achieved_pps)} pkt/s" if best else "none") + " | "
            + (f"{k(best.processed_pps)} pkt/s" if best else "-") + " | "
            + (best.unparsed if best and s.pipeline == "shed" else "-") + " | "
            + (f"{k(dropped.rate)} asked, {k(dropped.achieved_pps)} achieved: "
               f"{dropped.drops:,} of {dropped.sent:,} dropped" if dropped else
               "none up to the highest rate tried") + " |"
        )
    lines += ["", "Every step (*unparsed / new*: flows given no parsers or whose parsers were "
              "stopped, and flows started in the step; a stopped flow may have started in an "
              "earlier step):", "",
              "| pipeline | workers | asked | achieved | sent | captured | kernel drops | "
              "processed | unparsed / new |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in searches:
        for st in s.steps:
            lines.append(
                f"| {s.pipeline} | {s.workers} | {k(st.rate)} | "
                f"{k(st.achieved_pps)} | {st.sent:,} | {st.captured:,} | {st.drops:,} | "
                f"{k(st.processed_pps)} | {st.unparsed} |")
    for soak_result in soaks:
        lines += [
            "",
            f"Soak: {soak_result['seconds'] / 60:.1f} min at {k(soak_result['rate'])} pkt/s "
            f"asked ({k(soak_result['achieved_pps'])} achieved), "
            f"{PIPELINES[soak_result['pipeline']][1]}, "
            f"{soak_result['workers']} workers: {soak_result['packets']:,} packets, "
            f"{soak_result['drops']:,} kernel drops, "
            f"{soak_result['flows_unparsed']:,} of {soak_result['flows']:,} new flows not "
            f"parsed; CPU (sensor + workers, % of one core) "
            f"mean {soak_result['cpu_mean_pct']:.0f}%, max {soak_result['cpu_max_pct']:.0f}%; "
            f"memory (PSS, all processes) {soak_result['pss_first_mb']:.0f} MB after 10 s, "
            f"{soak_result['pss_last_mb']:.0f} MB at the end, max "
            f"{soak_result['pss_max_mb']:.0f} MB; mean load average "
            f"{soak_result['load_mean']:.2f}."
            + (" Memory (PSS) at the end of each minute: "
               + ", ".join(f"{mb}" for mb in soak_result["pss_per_minute"]) + " MB."
               if soak_result.get("pss_per_minute") else ""),
        ]
    lines += ["", "Raw numbers: `bench/live_replay.py` prints one JSON line per step.", END, ""]
    return "\n".join(lines)


def write_section(out: Path, section: str) -> None:
    text = out.read_text() if out.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    out.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pcap", type=Path, default=REPO / "bench" / "data" / "hosp_1m.pcap")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rates", type=int, nargs="*",
                    default=[10_000, 20_000, 30_000, 40_000, 60_000, 80_000, 100_000],
                    help="pkt/s steps for the full pipeline without shedding, tried in order "
                    "until one drops; none (a bare --rates) skips it")
    ap.add_argument("--shed-rates", type=int, nargs="*",
                    default=[50_000, 100_000, 150_000, 200_000, 250_000, 300_000],
                    help="pkt/s steps for the full pipeline with load shedding, as --rates")
    ap.add_argument("--core-rates", type=int, nargs="*",
                    default=[50_000, 100_000, 150_000, 200_000, 250_000, 300_000, 400_000],
                    help="pkt/s steps for --core-only, as --rates")
    ap.add_argument("--sender", choices=("txring", "tcpreplay"), default="txring",
                    help="txring: bench/txreplay.c (AF_PACKET TX ring, compiled with cc at "
                    "start; tcpreplay if there is no compiler); tcpreplay: one sendto() per "
                    "packet, tops out near 70-80k pkt/s")
    ap.add_argument("--step-seconds", type=float, default=10.0)
    ap.add_argument("--soak", type=float, default=600.0, help="seconds; 0 skips the soak")
    ap.add_argument("--soak-workers", type=int, default=2)
    ap.add_argument("--soak-rate", type=int, default=0,
                    help="pkt/s; default: 80%% of the soak pipeline's best rate")
    ap.add_argument("--soak-pipeline", choices=tuple(PIPELINES), default="shed")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "performance.md")
    ap.add_argument("--steps-from", type=Path, default=None,
                    help="take the rate steps (and, with --soak 0, the soak) from an earlier "
                    "run's JSON lines (stdout) instead of measuring them again")
    ap.add_argument("--ns-prefix", default="medtap-sen-bench",
                    help="name prefix of the sender's network namespace")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("live_replay needs root (namespaces, AF_PACKET)")
    if not args.pcap.exists():
        raise SystemExit(f"{args.pcap}: missing; make it with bench/make_hospital_pcap.py")
    stats = args.pcap.with_suffix(args.pcap.suffix + ".stats.json")
    file_packets = 1_000_000
    if stats.exists():
        file_packets = int(json.loads(stats.read_text()).get("packets", file_packets))
    load_before = os.getloadavg()
    link = Link(f"{args.ns_prefix}-{os.getpid()}")
    searches: list[Search] = []
    soaks: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="medtap-sen-bench-") as tmpdir:
        tmp = Path(tmpdir)
        sender = Sender.make(args.sender, tmp)
        args.sender = sender.kind  # after a fallback to tcpreplay: what the report says
        try:
            link.create()
            if args.steps_from is not None:
                searches, soaks, load_before = steps_from(args.steps_from)
                if args.soak > 0:
                    soaks = []  # measured again below
            plan = (("full", args.rates), ("shed", args.shed_rates), ("core", args.core_rates))
            for pipeline, rates in plan:
                for workers in args.workers:
                    if rates and args.steps_from is None:
                        searches.append(search(sender, link, args.pcap, workers, pipeline,
                                               rates, args.step_seconds, file_packets, tmp))
            if args.soak > 0:
                same = [s.best for s in searches if s.pipeline == args.soak_pipeline
                        and s.workers == args.soak_workers and s.best]
                rate = args.soak_rate or (int(same[0].rate * 0.8) if same else 10_000)
                soaks.append(soak(sender, link, args.pcap, args.soak_workers,
                                  args.soak_pipeline, rate, args.soak, tmp))
                print(json.dumps({k: v for k, v in soaks[-1].items() if k != "samples"}),
                      flush=True)
        finally:
            link.destroy()
    write_section(args.out, markdown(args, searches, soaks, load_before))
    return 0


if __name__ == "__main__":
    sys.exit(main())
