"""App detection and parser dispatch for flows: payload probes first, ports as hints.

Only flows whose transport has registered parsers get here. A TCP flow probes
the first in-order bytes of each direction (reassembled, so a first segment
holding only a 6-byte PDU header still works); a flow first seen mid-stream
probes the start of each of its first ``MIDSTREAM_PROBE_SEGMENTS`` segments,
since a long-lived MLLP link may have opened months before the sensor started.
UDP flows probe their first ``UDP_PROBE_DATAGRAMS`` datagrams.

Once a probe matches, the flow gets a parser fed through ``TcpReassembler``;
once every probe said no, the flow leaves this module for good and costs one
attribute check per packet. A parser that raises anything but ``Malformed``
(which it handles itself) has a bug: it is logged by name and exception type,
never with bytes, counted, and dropped from the flow.

Parser memory is bounded per flow by each parser's own limits (``MAX_BUFFERED``...) and
across flows by ``parser_budget``: the bytes all stream parsers hold
(``StreamParser.buffered``) share ``PARSER_BUDGET_BYTES``, as out-of-order bytes share the
reassembly budget. A flow whose parser needs more when the budget is spent loses its parser
(counted in ``reassembly.parser_budget_exhausted``). Found by the parallel-association flood
of tests/test_floods.py: 2000 DICOM associations each holding an unfinished 60 KB
P-DATA-TF cost 190 MB, and the default flow cap would have allowed ~17 GB.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import cast

from agent.decode import PROTO_TCP, PROTO_UDP, PacketMeta
from agent.endpoints import ip_text
from agent.flows import Flow
from agent.reassembly import (
    DATA,
    ReassemblyBudget,
    ReassemblyCounters,
    TcpReassembler,
    dispatch,
)
from parsers.base import (
    DIRECTIONS,
    TO_CLIENT,
    TO_SERVER,
    Direction,
    FlowKey,
    Observation,
    Parser,
    ParserState,
    StreamParser,
)
from parsers.registry import MAX_PROBE_BYTES, ParserSpec, Registry

log = logging.getLogger(__name__)

MIDSTREAM_PROBE_SEGMENTS = 16
UDP_PROBE_DATAGRAMS = 4
PARSER_BUDGET_BYTES = 64 * 1024 * 1024  # per worker: bytes all stream parsers hold together

ObservationSink = Callable[[Flow, str, list[Observation]], None]


class AppSession:
    """Per-flow detection state, kept in ``Flow.app_state`` while there is work to do."""

    __slots__ = (
        "undecided",
        "probe_buf",
        "probes_left",
        "reasm",
        "parser",
        "spec",
        "held",
        "stream",
    )

    def __init__(self, candidates: list[ParserSpec], probes: int) -> None:
        # Both directions start from the same candidate list; a direction gets its own copy
        # only when a probe narrows it. Buffers exist only while bytes wait for a verdict.
        self.undecided = dict.fromkeys(DIRECTIONS, candidates)
        self.probe_buf: dict[Direction, bytearray] = {}
        self.probes_left = probes
        self.reasm: TcpReassembler | None = None
        self.parser: Parser | None = None
        self.spec: ParserSpec | None = None
        self.held = 0  # of the parser budget, what this flow's parser holds
        self.stream = False  # parser is a StreamParser: checked once, not per packet (ABC)


class AppDetector:
    def __init__(self, registry: Registry, sink: ObservationSink) -> None:
        self.registry = registry
        self._sink = sink
        self._tcp = any(s.transport == "tcp" for s in registry)
        self._udp = any(s.transport == "udp" for s in registry)
        self.budget = ReassemblyBudget()
        self.parser_budget = ReassemblyBudget(PARSER_BUDGET_BYTES)
        self.reassembly = ReassemblyCounters()
        self.detected: Counter[str] = Counter()
        self.parser_errors: Counter[str] = Counter()
        self.parser_rejects: Counter[str] = Counter()
        self.parsers_finished: Counter[str] = Counter()

    def on_new_flow(self, flow: Flow, meta: PacketMeta) -> None:
        if flow.proto == PROTO_TCP and self._tcp:
            candidates = self.registry.candidates("tcp", (flow.server_port, flow.client_port))
            midstream = not flow.saw_syn
            session = AppSession(candidates, MIDSTREAM_PROBE_SEGMENTS if midstream else 1)
            session.reasm = TcpReassembler(budget=self.budget)
            flow.app_state = session
        elif flow.proto == PROTO_UDP and self._udp:
            candidates = self.registry.candidates("udp", (flow.server_port, flow.client_port))
            flow.app_state = AppSession(candidates, UDP_PROBE_DATAGRAMS)

    def on_packet(self, flow: Flow, to_server: bool, meta: PacketMeta) -> None:
        session: AppSession = flow.app_state
        if flow.proto == PROTO_UDP:
            self._udp_packet(flow, session, to_server, meta)
            return
        if not meta.payload_len and not meta.tcp_flags & 0x07:
            return  # a bare ACK moves no stream
        assert session.reasm is not None
        events = session.reasm.segment(to_server, meta.seq, meta.tcp_flags, meta.payload, meta.ts)
        if not events:
            return
        if session.parser is not None:
            self._run(flow, session, lambda p: dispatch(events, p))
            return
        for i, event in enumerate(events):
            if event.kind != DATA:
                if session.probes_left > 1:
                    continue  # mid-stream flows re-probe after a gap
                self._give_up(flow)
                return
            direction = TO_SERVER if event.to_server else TO_CLIENT
            if session.probes_left > 1:  # mid-stream: each segment start is judged alone
                session.probe_buf = {}
            session.probe_buf.setdefault(direction, bytearray()).extend(event.data)
            if self._probe(flow, session, direction):
                rest = events[i + 1 :]
                if rest:
                    self._run(flow, session, partial(dispatch, rest))
                return
            if flow.app_state is None:
                return

    def _probe(self, flow: Flow, session: AppSession, direction: Direction) -> bool:
        data = bytes(session.probe_buf[direction][:MAX_PROBE_BYTES])
        spec, undecided = self.registry.detect(session.undecided[direction], direction, data)
        if spec is not None:
            self._attach(flow, session, spec)
            return True
        if session.probes_left > 1:  # mid-stream: judge each segment start on its own
            session.probes_left -= 1
            return False
        session.undecided[direction] = undecided
        if not undecided:
            self._give_up(flow)
        return False

    def _attach(self, flow: Flow, session: AppSession, spec: ParserSpec) -> None:
        flow.app = spec.name
        self.detected[spec.name] += 1
        session.spec = spec
        session.parser = spec.factory(_flow_key(flow))
        session.stream = isinstance(session.parser, StreamParser)
        buffered = [(d, bytes(b)) for d, b in session.probe_buf.items() if b]
        session.probe_buf = {}
        session.undecided = {}

        def replay(parser: Parser) -> list[Observation]:
            out: list[Observation] = []
            for direction, data in buffered:
                out += parser.feed(direction, data, flow.last_seen)
            return out

        self._run(flow, session, replay)

    def _udp_packet(
        self, flow: Flow, session: AppSession, to_server: bool, meta: PacketMeta
    ) -> None:
        direction = TO_SERVER if to_server else TO_CLIENT
        data = meta.payload
        if session.parser is None:
            spec, _ = self.registry.detect(session.undecided[direction], direction, data)
            if spec is None:
                session.probes_left -= 1
                if session.probes_left <= 0:
                    self._give_up(flow)
                return
            flow.app = spec.name
            self.detected[spec.name] += 1
            session.spec = spec
            session.parser = spec.factory(_flow_key(flow))
            session.stream = isinstance(session.parser, StreamParser)
            session.undecided = {}
        self._run(flow, session, lambda p: p.feed(direction, data, meta.ts))

    def _run(
        self, flow: Flow, session: AppSession, step: Callable[[Parser], list[Observation]]
    ) -> None:
        parser = session.parser
        assert parser is not None and session.spec is not None
        name = session.spec.name
        try:
            observations = step(parser)
        except Exception as exc:  # noqa: BLE001 - a parser bug must not stop the sensor
            self.parser_errors[name] += 1
            log.warning(
                "parser %s failed on flow %s: %s", name, _flow_label(flow), type(exc).__name__
            )
            self._give_up(flow)
            return
        if observations:
            self._sink(flow, name, observations)
        if parser.finished:
            self.parsers_finished[name] += 1
            self._give_up(flow)  # nothing more to learn: the flow goes to the fast lane
            return
        if parser.state is ParserState.REJECTED:
            self.parser_rejects[name] += 1
            log.debug(
                "parser %s rejected flow %s: %s", name, _flow_label(flow), parser.reject_reason
            )
            self._give_up(flow)
            return
        if session.stream:
            more = cast(StreamParser, parser).buffered - session.held
            if more > 0 and not self.parser_budget.reserve(more):
                self.reassembly.parser_budget_exhausted += 1
                log.debug("parser budget spent: %s dropped from flow %s", name, _flow_label(flow))
                self._give_up(flow)
                return
            if more < 0:
                self.parser_budget.release(-more)
            session.held += more

    def on_end(self, flow: Flow, reason: str) -> None:
        session: AppSession | None = flow.app_state
        if session is None or reason == "active":
            return
        if session.reasm is not None:
            events = session.reasm.flush(flow.last_seen)
            if session.parser is not None and session.parser.state is not ParserState.REJECTED:
                self._run(flow, session, lambda p: dispatch(events, p))
        self._give_up(flow)

    def stop(self, flow: Flow) -> None:
        """No more detection or parsing for ``flow`` (load shedding): what its parser
        reported stays, unflushed bytes are released, its packets take the fast lane."""
        self._give_up(flow)

    def _give_up(self, flow: Flow) -> None:
        session: AppSession | None = flow.app_state
        if session is not None and session.reasm is not None:
            session.reasm.flush()  # releases held bytes from the shared budget
            self.reassembly.merge(session.reasm.counters)
            session.reasm = None
        if session is not None and session.held:
            self.parser_budget.release(session.held)
            session.held = 0
        flow.app_state = None


def _flow_key(flow: Flow) -> FlowKey:
    return FlowKey(
        client=ip_text(flow.client_ip),
        client_port=flow.client_port,
        server=ip_text(flow.server_ip),
        server_port=flow.server_port,
        transport="tcp" if flow.proto == PROTO_TCP else "udp",
        vlan=flow.vlan,
        inner_vlan=flow.inner_vlan,
    )


def _flow_label(flow: Flow) -> str:
    return (
        f"{ip_text(flow.client_ip)}:{flow.client_port} -> "
        f"{ip_text(flow.server_ip)}:{flow.server_port} vlan {flow.vlan}"
    )
