"""Capture worker processes: one ``Analyzer`` per capture ring, answering over a pipe.

docs/sensor.md, "Workers". The sensor process opens every ring (privileged), drops its
privileges, then forks the workers, which inherit their ring and nothing to gain
privileges with. A worker is single-threaded: between packets (every ``TICK_EVERY``
frames, and whenever its ring is idle for ``POLL_MS``) it looks at its pipe and answers:

- ``("stats", seq)``    -> ``("stats", worker, seq, Counters)``
- ``("snapshot", seq)`` -> ``("export", worker, seq, bytes)``: a pickled ``WorkerExport``
  (``dump_export``; delta tables reset)
- ``("stop", seq)``     -> ends capture, ends every open flow (parsers flush), sends the final
  export and exits 0.

A worker ignores SIGINT/SIGTERM/SIGHUP: systemd signals the whole cgroup, and only the
sensor process decides when a worker's state has been collected. It dies with the sensor
process (``PR_SET_PDEATHSIG``) and stops when its pipe closes. Nothing a worker sends or
logs contains frame bytes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from agent.capture import CaptureError
from agent.pipeline import Analyzer, tune_gc
from agent.sensor.export import (
    Counters,
    WorkerExport,
    counters,
    dump_export,
    load_export,
    take_export,
)
from agent.sensor.limits import (
    SENSOR_MAX_BINDINGS,
    SENSOR_MAX_CONVERSATIONS,
    SENSOR_MAX_EVIDENCE,
    SENSOR_MAX_FLOWS,
)
from agent.sensor.ring import RingSource

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
EXIT_CAPTURE_ERROR = 3
# Load shedding (docs/sensor.md, "Overload"), by the ring's waiting share (in blocks) at each
# look: at SHED_ON or more the share of new flows that get parsers is halved, at SHED_OFF or
# less it grows by SHARE_STEP (additive increase, multiplicative decrease, as TCP's
# congestion control: it settles near what the worker can parse). Early, so that three
# quarters of the ring are left for the time shedding takes to work.
SHED_ON = 0.25
SHED_OFF = 0.0625
SHARE_STEP = 0.01  # per look: from none to all in ~1 s at 100k frames/s
SHED_ALL = 0.5  # still falling behind: flows being parsed lose their parsers too
CUT_EVERY_SECONDS = 5.0  # that sweep of the flow table at most this often
# Frames between two looks at the pipe and the ring's backlog: ~5 ms at 200k frames/s, and
# a look costs a few µs.
CHECK_EVERY = 1024


@dataclass(frozen=True)
class WorkerConfig:
    max_flows: int = SENSOR_MAX_FLOWS
    max_bindings: int = SENSOR_MAX_BINDINGS
    max_conversations: int = SENSOR_MAX_CONVERSATIONS  # per export interval (a delta)
    max_evidence: int = SENSOR_MAX_EVIDENCE  # per export interval (a delta)
    core_only: bool = False
    shed: bool = True  # behind the ring: new flows get no parsers (rather than drop frames)


def worker_analyzer(config: WorkerConfig) -> Analyzer:
    """An ``Analyzer`` with the sensor's caps (agent/sensor/limits.py)."""
    analyzer = Analyzer(max_flows=config.max_flows, core_only=config.core_only)
    analyzer.endpoints.max_bindings = config.max_bindings
    analyzer.conversations.max_records = config.max_conversations  # kept by take_export
    analyzer.evidence.max_records = config.max_evidence
    return analyzer


class WorkerError(Exception):
    """A worker died or stopped answering; the sensor exits and its supervisor restarts it."""


def _die_with_parent() -> None:
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    libc = ctypes.CDLL(libc_name, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class _Worker:
    def __init__(self, index: int, source: RingSource, conn: Connection, config: WorkerConfig):
        self.index = index
        self.source = source
        self.conn = conn
        self.analyzer = worker_analyzer(config)
        tune_gc()  # a forked worker runs one pipeline
        self.shed = config.shed and not config.core_only
        self.last_cut = -CUT_EVERY_SECONDS  # monotonic time parsers were last stopped
        self.stop_seq: int | None = None

    def check(self) -> None:
        """Answer what the sensor process asked; called between packets."""
        if self.shed:
            self._shed_load()
        conn = self.conn
        while conn.poll():
            try:
                msg = conn.recv()
            except (EOFError, OSError):  # the sensor process is gone: stop, nobody to tell
                self.stop_seq = -1
                self.source.stop()
                return
            kind, seq = msg
            if kind == "stats":
                conn.send(("stats", self.index, seq, counters(self.analyzer, self.source.stats())))
            elif kind == "snapshot":
                conn.send(("export", self.index, seq, dump_export(self._export(seq, final=False))))
            elif kind == "stop":
                self.stop_seq = seq
                self.source.stop()

    def idle(self) -> None:
        """The ring stayed empty for a poll: the worker has time, every new flow is parsed."""
        if self.shed and self.analyzer.parse_share < 1.0:
            self._set_share(1.0, 0.0)
        self.check()

    def _shed_load(self) -> None:
        """Behind the ring: part of the new flows (or, further behind, every flow) are
        counted (flows, endpoints, policy) without parsers. Parsing is what costs (tens of
        µs per packet against ~2 for counting), and a frame the kernel drops loses the flow
        too."""
        analyzer = self.analyzer
        backlog = self.source.backlog()
        share = analyzer.parse_share
        if backlog >= SHED_ALL and time.monotonic() - self.last_cut >= CUT_EVERY_SECONDS:
            self.last_cut = time.monotonic()
            self._set_share(0.0, backlog)
            cut = analyzer.stop_parsing()
            log.warning("worker %d: %.0f%% of its ring waiting: parsing stopped on the %d "
                        "flows that had it", self.index, 100 * backlog, cut)
        elif backlog >= SHED_ON:
            self._set_share(share / 2 if share > SHARE_STEP else 0.0, backlog)
        elif backlog <= SHED_OFF and share < 1.0:
            self._set_share(min(1.0, share + SHARE_STEP), backlog)

    def _set_share(self, share: float, backlog: float) -> None:
        """A log line when shedding starts and when it ends, none in between."""
        before = self.analyzer.parse_share
        self.analyzer.parse_share = share
        if before == 1.0 and share < 1.0:
            log.warning("worker %d: %.0f%% of its ring waiting: new flows are parsed only in "
                        "part until it catches up", self.index, 100 * backlog)
        elif before < 1.0 and share == 1.0:
            log.info("worker %d: caught up; every new flow is parsed again (%d were not)",
                     self.index, self.analyzer.flows_unparsed)

    def _export(self, seq: int, *, final: bool) -> WorkerExport:
        return take_export(
            self.analyzer, self.source.stats(), worker=self.index, seq=seq, final=final
        )

    def run(self) -> int:
        self.source.idle = self.idle
        try:
            self.analyzer.run(self.source.frames(), tick=self.check, tick_every=CHECK_EVERY)
        except CaptureError as exc:
            log.error("worker %d: %s", self.index, exc)
            return EXIT_CAPTURE_ERROR
        if self.stop_seq == -1:
            return 0
        self.analyzer.flows.close_all()  # end of capture: parsers see end of stream
        seq = self.stop_seq if self.stop_seq is not None else 0
        try:
            self.conn.send(("export", self.index, seq, dump_export(self._export(seq, final=True))))
        except (BrokenPipeError, OSError):
            return 0
        return 0


def worker_main(index: int, source: RingSource, conn: Connection, config: WorkerConfig) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    _die_with_parent()
    code = _Worker(index, source, conn, config).run()
    source.close()
    conn.close()
    os._exit(code)  # no atexit handlers inherited from the sensor process


Reply = tuple[str, int, int, Any]


class WorkerPool:
    """The sensor process's side: start, ask, collect, stop."""

    def __init__(self, sources: list[RingSource], config: WorkerConfig) -> None:
        self.sources = sources
        self.config = config
        self.conns: list[Connection] = []
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self._seq = 0

    def start(self) -> None:
        ctx = multiprocessing.get_context("fork")  # the rings are inherited, not pickled
        for i, source in enumerate(self.sources):
            parent, child = ctx.Pipe(duplex=True)
            proc = ctx.Process(
                target=worker_main, args=(i, source, child, self.config),
                name=f"medtap-worker-{i}", daemon=False,
            )
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        for source in self.sources:
            source.release()  # the workers own the rings now

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def check_alive(self) -> None:
        for i, proc in enumerate(self.procs):
            if not proc.is_alive():
                raise WorkerError(f"capture worker {i} exited (status {proc.exitcode})")

    def ask(
        self, kind: str, on_export: Callable[[WorkerExport], None], timeout: float
    ) -> dict[int, Counters]:
        """Send ``kind`` to every worker and wait for every answer. Each export that
        arrives is handed to ``on_export``, whatever request it answers, so no delta is
        ever lost. Returns each worker's counters.

        An export arrives as bytes (pickled by the worker) and is unpickled only once every
        worker has answered: a worker blocks in ``send`` until its whole export has left the
        pipe, so rebuilding worker 0's records before reading worker 1's would keep worker
        1 from its ring for that long."""
        self._seq += 1
        seq = self._seq
        for conn in self.conns:
            conn.send((kind, seq))
        want = "stats" if kind == "stats" else "export"
        got: dict[int, Counters] = {}
        deadline = time.monotonic() + timeout
        pending = set(range(len(self.conns)))
        exports: list[bytes] = []
        try:
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WorkerError(f"capture workers {sorted(pending)} did not answer "
                                      f"{kind!r} within {timeout:g} s")
                ready = multiprocessing.connection.wait(
                    [self.conns[i] for i in pending], timeout=min(left, 1.0)
                )
                if not ready:
                    self.check_alive()
                    continue
                for ready_conn in ready:
                    assert isinstance(ready_conn, Connection)
                    conn = ready_conn
                    try:
                        reply_kind, worker, rseq, payload = conn.recv()
                    except (EOFError, OSError):
                        i = self.conns.index(conn)
                        raise WorkerError(f"capture worker {i} closed its pipe") from None
                    if reply_kind == "export":
                        exports.append(payload)
                    else:
                        got[worker] = payload
                    if reply_kind == want and rseq == seq:
                        pending.discard(worker)
        finally:  # what did arrive is handed on even when a worker failed to answer
            for blob in exports:
                export = load_export(blob)
                on_export(export)
                prev = got.get(export.worker)  # a stats reply may be newer than the export
                if prev is None or export.counters.packets >= prev.packets:
                    got[export.worker] = export.counters
        return got

    def stop(self, on_export: Callable[[WorkerExport], None], timeout: float) -> None:
        """Final exports, then join. Workers that do not finish in time are killed."""
        try:
            alive = [p.is_alive() for p in self.procs]
            if all(alive):
                self.ask("stop", on_export, timeout)
        finally:
            for proc in self.procs:
                proc.join(timeout=5)
                if proc.is_alive():
                    log.error("capture worker %s did not exit: killing it", proc.name)
                    proc.kill()
                    proc.join(timeout=5)
            for conn in self.conns:
                conn.close()


__all__ = ["WorkerConfig", "WorkerError", "WorkerPool", "worker_analyzer", "worker_main"]
