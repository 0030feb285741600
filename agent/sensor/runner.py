"""The sensor process: capture workers, snapshots, policy, spool and uplink, signals.

docs/sensor.md. Order of start-up, each step before the one that needs it:

1. check the options and load the policy file (a bad one: exit 2 before any socket);
2. open one TPACKET_V3 ring per worker (in one PACKET_FANOUT group when N > 1) and bind
   the metrics port — the privileged steps;
3. drop privileges (``--user``, or shed the capabilities systemd gave), verified;
4. fork the capture workers (they inherit their ring, nothing else of value);
5. open the spool, start the uplink thread, the alert thread and the metrics server.

Then, every ``stats_interval`` the workers' counters are fetched (metrics), every
``report_interval`` a snapshot: every worker's export is merged (``merge.SensorState``),
devices are classified once, the policy tracker sees the new traffic, and what changed
(``snapshot.Ledger``) goes to the spool as batches with a heartbeat; the uplink thread
sends them. SIGHUP reloads the policy (a bad one keeps the old, with the error logged);
SIGTERM/SIGINT stop the workers, which end every open flow and send their last export;
that final snapshot is spooled (durable) and sent within ``flush_timeout``; what does not
make it stays spooled for the next start or ``medtap uplink drain``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from agent.capture import CaptureError
from agent.policy.apply import device_zone
from agent.policy.directory import Directory
from agent.policy.tracker import (
    PENDING_MAX_AGE,
    FlowEvent,
    Violation,
    ViolationKey,
    ViolationTracker,
)
from agent.report import InputResult, build_report, version
from agent.sensor import privileges
from agent.sensor.alerts import AlertThread
from agent.sensor.export import Counters
from agent.sensor.limits import (
    SENSOR_MAX_BINDINGS,
    SENSOR_MAX_CONVERSATIONS,
    SENSOR_MAX_EVIDENCE,
    SENSOR_MAX_FLOWS,
)
from agent.sensor.merge import SensorState
from agent.sensor.metrics import Metrics, Sample
from agent.sensor.policysource import Loaded, PolicySource, PolicySourceError
from agent.sensor.ring import DEFAULT_RING_MB, RingSource
from agent.sensor.snapshot import Ledger, build_batches, is_heartbeat_only, new_run_id
from agent.sensor.workers import WorkerConfig, WorkerError, WorkerPool
from agent.uplink.batch import BuildStats, encode_batch
from agent.uplink.client import UplinkClient, UplinkConfig, UplinkError
from agent.uplink.drain import UplinkWorker
from agent.uplink.spool import Spool, SpoolError, SpoolItem
from collector.policy import Policy
from collector.schema import Heartbeat

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
WORKER_TIMEOUT = 60.0  # seconds a worker may take to answer (a large export pickles)
MAX_ALERTED = 100_000  # violation keys remembered so a policy reload does not re-alert
# The sensor process lowers its own priority once the workers are forked: its snapshot
# (merge, classification, report, batches) is seconds of CPU every --report-interval, and
# on a small appliance it must not take the cores the capture workers need to keep their
# rings drained (docs/sensor.md, "Kernel drops"). Lowering is always allowed.
SENSOR_NICE = 10


class SensorError(Exception):
    """Start-up failed; ``code`` is the exit status (2: bad options, 1: runtime)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class SensorConfig:
    interface: str
    sensor_name: str
    spool_dir: Path
    workers: int = 1
    bpf: str | None = None
    uplink: UplinkConfig | None = None
    policy_file: Path | None = None
    report_interval: float = 60.0
    stats_interval: float = 5.0
    policy_refresh: float = 300.0
    spool_max_bytes: int = 512 * 1024 * 1024
    user: str | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    alerts: list[str] = field(default_factory=list)
    ring_mb: int = DEFAULT_RING_MB
    max_flows: int = SENSOR_MAX_FLOWS
    max_bindings: int = SENSOR_MAX_BINDINGS
    max_conversations: int = SENSOR_MAX_CONVERSATIONS
    max_evidence: int = SENSOR_MAX_EVIDENCE
    nice: int = SENSOR_NICE
    flush_timeout: float = 15.0
    defrag: bool = True
    core_only: bool = False
    shed: bool = True


class Sensor:
    def __init__(self, config: SensorConfig) -> None:
        self.config = config
        self.run_id = new_run_id()
        self.state = SensorState(config.max_conversations, config.max_evidence)
        self.ledger = Ledger()
        self.metrics = Metrics()
        self.policy_source = PolicySource(config.policy_file, config.uplink)
        self.policy: Policy | None = None
        self.tracker: ViolationTracker | None = None
        self.new_policy: Loaded | None = None  # validated, applied at the next snapshot
        self.pool: WorkerPool | None = None
        self.spool: Spool | None = None
        self.uplink: UplinkWorker | None = None
        self.alerts = AlertThread([])
        self.alerted: set[ViolationKey] = set()
        self.seq = 0
        self.started = time.time()
        self.stop_event = threading.Event()  # wakes the main loop: a stop or a reload
        self.stopping = False
        self.reload_requested = False
        self.counts: dict[str, float] = {
            "snapshots": 0, "batches": 0, "snapshot_seconds": 0.0, "policy_reloads": 0,
            "policy_errors": 0, "batches_refused": 0,
        }
        self.last_devices = 0
        self.last_violations = 0
        self.metrics_address: tuple[str, int] | None = None

    # -- start-up ------------------------------------------------------------------------
    def prepare(self) -> None:
        """Step 1: everything that can fail on bad options, before any socket."""
        if self.config.policy_file is not None:
            try:
                self._set_policy(self.policy_source.load().policy, "start")
            except PolicySourceError as exc:
                raise SensorError(str(exc), EXIT_USAGE) from None
        if self.config.alerts:
            from collector.sinks import open_sink

            sinks = []
            for spec in self.config.alerts:
                try:
                    sinks.append(open_sink(spec))
                except ValueError as exc:
                    raise SensorError(f"--alert {spec}: {exc}", EXIT_USAGE) from None
            self.alerts = AlertThread(sinks)
        if self.config.user is not None:
            try:
                privileges.resolve_user(self.config.user)
            except privileges.PrivilegeError as exc:
                raise SensorError(str(exc), EXIT_USAGE) from None

    def open_rings(self) -> list[RingSource]:
        """Step 2: one ring per worker; a fanout group when there are several."""
        n = self.config.workers
        group = (os.getpid() & 0xFFFF) if n > 1 else None
        sources: list[RingSource] = []
        try:
            for _ in range(n):
                sources.append(RingSource(
                    self.config.interface, self.config.bpf, ring_mb=self.config.ring_mb,
                    fanout_group=group, defrag=self.config.defrag,
                ))
        except CaptureError as exc:
            for src in sources:
                src.close()
            raise SensorError(str(exc)) from None
        return sources

    def _prepare_spool_dir(self) -> None:
        directory = self.config.spool_dir
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.config.user is not None and os.geteuid() == 0:
            uid, gid = privileges.resolve_user(self.config.user)
            for path in [directory, *directory.iterdir()]:
                os.chown(path, uid, gid)  # the spool belongs to the user the sensor becomes

    def start(self) -> None:
        """Steps 2-5."""
        cfg = self.config
        sources = self.open_rings()
        try:
            if cfg.metrics_port is not None:
                try:
                    self.metrics_address = self.metrics.bind(cfg.metrics_host, cfg.metrics_port)
                except OSError as exc:
                    raise SensorError(f"metrics port {cfg.metrics_host}:{cfg.metrics_port}: "
                                      f"{exc.strerror}") from None
            try:
                self._prepare_spool_dir()
            except OSError as exc:
                raise SensorError(f"spool {cfg.spool_dir}: {exc.strerror}") from None
            try:
                privileges.drop(cfg.user)
            except privileges.PrivilegeError as exc:
                raise SensorError(str(exc)) from None
        except SensorError:
            for src in sources:
                src.close()
            raise
        workers = WorkerConfig(max_flows=cfg.max_flows, max_bindings=cfg.max_bindings,
                               max_conversations=cfg.max_conversations,
                               max_evidence=cfg.max_evidence, core_only=cfg.core_only,
                               shed=cfg.shed)
        self.pool = WorkerPool(sources, workers)
        self.pool.start()  # fork before any thread exists in this process
        if cfg.nice:
            try:
                os.nice(cfg.nice)  # this process only: the workers keep their priority
            except OSError as exc:
                log.warning("cannot lower the sensor process's priority: %s", exc.strerror)
        try:
            self.spool = Spool(cfg.spool_dir, max_bytes=cfg.spool_max_bytes)
        except SpoolError as exc:
            raise SensorError(str(exc)) from None
        self.spool.set_meta("sensor", cfg.sensor_name)
        if cfg.uplink is not None:
            self.spool.set_meta("url", cfg.uplink.url)
            try:
                client = UplinkClient(cfg.uplink)
            except UplinkError as exc:
                raise SensorError(str(exc), EXIT_USAGE) from None
            self.uplink = UplinkWorker(self.spool, client, poll=cfg.report_interval)
            self.uplink.start()
        self.alerts.start()
        self.metrics.start()
        if self.policy_source.from_collector:
            self._reload_policy("start")
        log.info(
            "sensor %s capturing on %s with %d worker(s) (pids %s), run %s",
            cfg.sensor_name, cfg.interface, cfg.workers, self.pool.pids, self.run_id,
            extra={"fields": {"event": "started", "interface": cfg.interface,
                              "workers": cfg.workers, "run": self.run_id}},
        )

    # -- signals -------------------------------------------------------------------------
    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        self.stop_event.set()

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self.reload_requested = True
        self.stop_event.set()  # wake the loop; it tells a reload from a stop

    # -- main loop -----------------------------------------------------------------------
    def run(self) -> int:
        """Until SIGTERM/SIGINT; then the final snapshot and flush. Returns the exit code."""
        assert self.pool is not None
        cfg = self.config
        now = time.monotonic()
        next_report = now + cfg.report_interval
        next_stats = now + min(cfg.stats_interval, cfg.report_interval)
        next_policy = now + cfg.policy_refresh
        code = EXIT_OK
        try:
            while True:
                self.stop_event.wait(max(0.0, min(next_report, next_stats) - time.monotonic()))
                self.stop_event.clear()
                if self.stopping:
                    break
                if self.reload_requested:
                    self.reload_requested = False
                    self._reload_policy("SIGHUP")
                self.pool.check_alive()
                now = time.monotonic()
                if now >= next_stats:
                    self._stats()
                    next_stats = now + cfg.stats_interval
                if now >= next_report:
                    if self.policy_source.from_collector and now >= next_policy:
                        self._reload_policy("refresh")
                        next_policy = now + cfg.policy_refresh
                    self.snapshot()
                    next_report = now + cfg.report_interval
        except WorkerError as exc:
            log.error("%s; stopping (the service manager restarts the sensor)", exc)
            code = EXIT_FAILED
        self.shutdown()
        return code

    def _stats(self) -> None:
        assert self.pool is not None
        got = self.pool.ask("stats", self.state.add, WORKER_TIMEOUT)
        self.state.counters.update(got)
        self._update_metrics()

    # -- snapshot ------------------------------------------------------------------------
    def snapshot(self, *, final: bool = False) -> None:
        """Merge, classify once, evaluate the policy on the new traffic, spool the change."""
        t0 = time.monotonic()
        if not final:
            assert self.pool is not None
            self.pool.ask("snapshot", self.state.add, WORKER_TIMEOUT)
        results = self.state.results()
        inputs = [InputResult(path=f"interface {self.config.interface}", status="ok",
                              packets=int(results.stats["packets"]))]
        report = build_report(results, inputs)
        items = report["flows"]["items"]
        flows = self.ledger.flows_delta(items)
        violations: list[dict[str, Any]] = []
        directory = Directory.from_devices(results.devices)
        if self.new_policy is not None:
            # A new policy judges all traffic so far: a fresh tracker replays the running
            # totals. The ledger is kept, so a violation the old policy had reported
            # already is sent on as its increase only.
            self.policy = self.new_policy.policy
            self.new_policy = None
            self.tracker = None
            if self.policy is not None:
                self.tracker = ViolationTracker(self.policy, directory, self._on_violation)
                feed = items
            else:
                feed = []
        else:
            feed = flows
        tracker = self.tracker
        if tracker is not None:
            tracker.set_directory(directory)
            for event in sorted((_flow_event(item) for item in feed),
                                key=lambda e: e.first_seen):
                tracker.observe(event)
            # at the end nothing can wait for a type any more (as ``finish`` offline)
            tracker.expire_pending(time.time(), 0.0 if final else PENDING_MAX_AGE)
            violations = [v.to_dict() for v in tracker.violations()]
            for row in report["devices"]:
                row["zone"] = device_zone(tracker, row)
            for item in flows:
                item["client_zone"] = tracker.zone_of(item["client"], item["vlan"])
                item["server_zone"] = tracker.zone_of(item["server"], item["vlan"])
        delta = {
            "medtap_version": report["medtap_version"],
            "devices": self.ledger.devices_delta(report["devices"]),
            "flows": {"items": flows},
            "violations": self.ledger.violations_delta(violations),
        }
        self.seq += 1
        self._spool_batches(delta)
        self.last_devices, self.last_violations = len(report["devices"]), len(violations)
        took = time.monotonic() - t0
        self.counts["snapshots"] += 1
        self.counts["snapshot_seconds"] = round(took, 3)
        totals = self.state.totals()
        log.info(
            "snapshot %d: %d devices, %d violations; sent %d devices, %d flows, %d violations "
            "changed; %d packets, %d kernel drops; %.2f s",
            self.seq, len(report["devices"]), len(violations), len(delta["devices"]),
            len(flows), len(delta["violations"]), totals.packets, totals.kernel_drops, took,
            extra={"fields": {"event": "snapshot", "seq": self.seq, "final": final,
                              "devices": len(report["devices"]), "violations": len(violations),
                              "packets": totals.packets, "kernel_drops": totals.kernel_drops}},
        )
        self._update_metrics()

    def _heartbeat(self) -> Heartbeat:
        t = self.state.totals()
        spool = self.spool.stats() if self.spool is not None else None
        return Heartbeat(
            at=datetime.now(UTC),
            version=version()[:128],
            interface=self.config.interface[:128],
            uptime_seconds=max(0.0, time.time() - self.started),
            packets=t.packets,
            bytes=t.bytes,
            kernel_drops=t.kernel_drops,
            malformed=t.malformed,
            flows_evicted=t.flows_evicted,
            parser_errors=t.parser_errors,
            flows_unparsed=t.flows_unparsed,
            spool_depth=spool.depth if spool else 0,
            spool_dropped=spool.counters.get("dropped", 0) if spool else 0,
        )

    def _spool_batches(self, delta: dict[str, Any]) -> None:
        assert self.spool is not None
        built = BuildStats()
        batches = build_batches(delta, sensor=self.config.sensor_name, run_id=self.run_id,
                                seq=self.seq, heartbeat=self._heartbeat(), stats=built)
        if built.rejected:
            log.warning("records refused by the wire schema: %s", dict(built.rejected))
        try:
            put = self.spool.put([
                SpoolItem(b.batch_id, encode_batch(b), heartbeat_only=is_heartbeat_only(b))
                for b in batches
            ])
        except SpoolError as exc:
            log.error("cannot spool snapshot %d: %s", self.seq, exc)
            return
        self.counts["batches"] += put.added
        self.counts["batches_refused"] += put.refused
        if self.uplink is not None:
            if self.uplink.error is not None and self.counts["snapshots"] % 10 == 0:
                log.error("uplink stopped: %s; batches stay spooled", self.uplink.error)
            self.uplink.wake()

    # -- policy ------------------------------------------------------------------------
    def _set_policy(self, policy: Policy | None, why: str) -> None:
        """Takes effect at the next snapshot, which replays the traffic so far into it."""
        self.new_policy = Loaded(policy, True, why)

    def _reload_policy(self, why: str) -> None:
        if not self.policy_source.configured:
            if why == "SIGHUP":
                log.info("SIGHUP: no policy configured (--policy or --collector)")
            return
        try:
            loaded = self.policy_source.load()
        except PolicySourceError as exc:
            self.counts["policy_errors"] += 1
            log.error("policy not loaded (%s): %s; keeping the %s", why, exc,
                      "previous policy" if self.policy is not None else "sensor without one",
                      extra={"fields": {"event": "policy_error", "trigger": why}})
            return
        if not loaded.changed:
            log.info("policy unchanged (%s, %s)", why, loaded.origin)
            return
        self._set_policy(loaded.policy, why)
        self.counts["policy_reloads"] += 1
        policy = loaded.policy
        log.info("policy loaded (%s) from %s: %d zones, %d rules; it judges all traffic so "
                 "far at the next snapshot", why, loaded.origin,
                 len(policy.zones) if policy else 0, len(policy.rules) if policy else 0,
                 extra={"fields": {"event": "policy_loaded", "trigger": why}})

    def _on_violation(self, violation: Violation) -> None:
        key = violation.key
        if key in self.alerted:
            return  # already alerted under an earlier policy generation
        if len(self.alerted) < MAX_ALERTED:
            self.alerted.add(key)
        log.warning("segmentation violation: rule %s, %s %s -> %s %s",
                    violation.rule, violation.client.ip, violation.client_zone,
                    violation.server.ip, violation.service,
                    extra={"fields": {"event": "violation", "rule": violation.rule,
                                      "severity": violation.severity}})
        self.alerts.emit(violation.to_dict())

    # -- shutdown ------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Final exports, final snapshot, spool, flush within ``flush_timeout``."""
        log.info("stopping: collecting the workers' last state")
        if self.pool is not None:
            try:
                self.pool.stop(self.state.add, WORKER_TIMEOUT)
            except WorkerError as exc:
                log.error("%s; the final snapshot has what the others sent", exc)
        if self.spool is not None:
            self.snapshot(final=True)
        self._flush()
        self.alerts.close()
        self.metrics.close()
        if self.spool is not None:
            self.spool.close()

    def _flush(self) -> None:
        spool, uplink = self.spool, self.uplink
        if spool is None:
            return
        if uplink is None:
            log.info("no collector: %d batches stay in the spool %s", spool.depth(),
                     self.config.spool_dir)
            return
        deadline = time.monotonic() + self.config.flush_timeout
        while spool.depth() and time.monotonic() < deadline and uplink.error is None:
            uplink.wake()
            time.sleep(0.1)
        uplink.stop(timeout=5.0)
        left = spool.depth()
        if left:
            log.warning("%d batches stay spooled in %s; they are sent at the next start or by "
                        "`medtap uplink drain`", left, self.config.spool_dir)
        else:
            log.info("everything sent; spool empty")

    # -- metrics ---------------------------------------------------------------------------
    def _update_metrics(self) -> None:
        self.metrics.set(self.samples())

    def samples(self) -> list[Sample]:
        s: list[Sample] = []
        per_worker: dict[int, Counters] = dict(self.state.counters)
        total = self.state.totals()
        counters = (
            ("packets", "medtap_sensor_packets_total", "frames captured"),
            ("bytes", "medtap_sensor_bytes_total", "bytes on the wire captured"),
            ("kernel_received", "medtap_sensor_kernel_received_total",
             "frames the kernel offered the capture rings (drops included)"),
            ("kernel_drops", "medtap_sensor_kernel_drops_total",
             "frames the kernel dropped because a ring was full"),
            ("malformed", "medtap_sensor_malformed_total", "frames that did not decode"),
            ("flows_evicted", "medtap_sensor_flows_evicted_total",
             "flows evicted from a full flow table"),
            ("parser_errors", "medtap_sensor_parser_errors_total",
             "parser bugs contained (flow dropped)"),
            ("flows_created", "medtap_sensor_flows_total", "flows seen"),
            ("bindings_dropped", "medtap_sensor_bindings_dropped_total",
             "endpoint bindings not kept: a worker's --max-bindings reached"),
            ("flows_unparsed", "medtap_sensor_flows_unparsed_total",
             "new flows given no parsers while a worker was behind its ring (load shedding)"),
        )
        for attr, name, help_text in counters:
            s.append(Sample(name, "counter", help_text, getattr(total, attr)))
            for w, c in sorted(per_worker.items()):
                s.append(Sample(name, "counter", help_text, getattr(c, attr),
                                (("worker", str(w)),)))
        s.append(Sample("medtap_sensor_flows_live", "gauge", "open flows", total.flows_live))
        s.append(Sample("medtap_sensor_conversations", "gauge",
                        "conversations held (running totals)", len(self.state.conversations)))
        s.append(Sample("medtap_sensor_conversations_dropped_total", "counter",
                        "ended flows not recorded: a conversation cap reached",
                        total.conversations_dropped_flows + self.state.conversations_dropped))
        s.append(Sample("medtap_sensor_evidence_records", "gauge",
                        "evidence records held (running totals)", len(self.state.evidence)))
        s.append(Sample("medtap_sensor_evidence_dropped_total", "counter",
                        "new evidence facts not kept: an evidence cap reached",
                        total.evidence_dropped + self.state.evidence_dropped))
        spool = self.spool.stats() if self.spool is not None else None
        if spool is not None:
            s.append(Sample("medtap_sensor_spool_depth", "gauge", "batches waiting to be sent",
                            spool.depth))
            s.append(Sample("medtap_sensor_spool_bytes", "gauge", "bytes waiting in the spool",
                            spool.bytes))
            s.append(Sample("medtap_sensor_spool_dropped_total", "counter",
                            "batches dropped by the spool cap", spool.counters.get("dropped", 0)))
        s.append(Sample("medtap_sensor_devices", "gauge", "devices in the last snapshot",
                        self.last_devices))
        s.append(Sample("medtap_sensor_violations", "gauge",
                        "violations under the current policy", self.last_violations))
        s.append(Sample("medtap_sensor_snapshots_total", "counter", "snapshots taken",
                        self.counts["snapshots"]))
        s.append(Sample("medtap_sensor_snapshot_seconds", "gauge",
                        "duration of the last snapshot", self.counts["snapshot_seconds"]))
        s.append(Sample("medtap_sensor_batches_spooled_total", "counter",
                        "batches put in the spool", self.counts["batches"]))
        s.append(Sample("medtap_sensor_policy_reloads_total", "counter",
                        "policy loads that changed the policy", self.counts["policy_reloads"]))
        s.append(Sample("medtap_sensor_policy_errors_total", "counter",
                        "policy loads refused (old policy kept)", self.counts["policy_errors"]))
        s.append(Sample("medtap_sensor_alerts_dropped_total", "counter",
                        "alerts dropped by a full alert queue", self.alerts.dropped))
        s.append(Sample("medtap_sensor_uptime_seconds", "gauge", "seconds since start",
                        round(time.time() - self.started, 1)))
        s.append(Sample("medtap_sensor_info", "gauge", "sensor identity", 1,
                        (("version", version()), ("interface", self.config.interface),
                         ("workers", str(self.config.workers)))))
        return s


def _flow_event(item: dict[str, Any]) -> FlowEvent:
    """A flow item's increase (``Ledger.flows_delta``) as policy input."""
    ported = item["transport"] in ("tcp", "udp")
    return FlowEvent(
        client_ip=item["client"],
        server_ip=item["server"],
        vlan=item["vlan"],
        transport=item["transport"],
        port=item["server_port"] if ported else None,
        app=item["app"],
        first_seen=_ts(item["first_seen"]),
        last_seen=_ts(item["last_seen"]),
        connections=item["connections"],
        packets=item["packets_to_server"] + item["packets_to_client"],
        bytes=item["bytes_to_server"] + item["bytes_to_client"],
    )


def _ts(text: str | None) -> float:
    if not text:
        return time.time()
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def default_sensor_name() -> str:
    return socket.gethostname()


def run_sensor(config: SensorConfig) -> int:
    """The whole life of a sensor; returns the exit status."""
    sensor = Sensor(config)
    try:
        sensor.prepare()
        sensor.install_signals()
        sensor.start()
    except SensorError as exc:
        log.error("%s", exc)
        if sensor.pool is not None:
            sensor.stopping = True
            sensor.shutdown()
        return exc.code
    return sensor.run()


__all__ = ["Sensor", "SensorConfig", "SensorError", "run_sensor"]
