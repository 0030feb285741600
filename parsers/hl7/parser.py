"""HL7 v2 stream parser: MLLP or unframed messages in, device-identifying facts out.

HL7 v2.5.1 Appendix C (MLLP), ch. 2 (message construction), IHE PCD TF-2 (PCD-01
device data). Framing is ``framing``; each message is cut to allow-listed fields by
``cutter`` before anything else reads it (no PID/PD1/NK1/PV1/PV2/IN1/GT1/DG1/AL1/NTE,
no OBX-5, no free text); interpretation happens once per signature in ``signature``,
hl7apy's validation once per message shape.

Observations: ``hl7.<field>`` about the endpoint the fact describes (the sender of a
message is the client for TO_SERVER, the server for TO_CLIENT; ``port`` is the server
port when the fact is about the server), named devices as ``device:...`` hosts with
``hl7.reached_via``. Each distinct (kind, host, value) is emitted once per flow.

A message whose header is not valid HL7 rejects the flow if it is the first in its
direction; later ones are counted (``bad_messages``) and skipped, so one broken
message does not blind the sensor to a confirmed interface.

Hot path (a mirror port repeats the same message shapes thousands of times): a frame
whose ``frame_key`` the cache knows is not cut at all (``SignatureCache.lookup_frame``),
and a flow remembers which interpretations it has already fully reported per
direction (``MAX_SATISFIED_PER_DIRECTION``), so a repeat costs no per-fact work. Both
shortcuts give the same observations and counters as the full path.
"""

from __future__ import annotations

from collections.abc import Callable

from parsers.base import (
    DIRECTIONS,
    TO_SERVER,
    Direction,
    FlowKey,
    Frame,
    Malformed,
    Observation,
    ParserState,
    StreamParser,
)
from parsers.hl7.cutter import cut_frame, frame_key
from parsers.hl7.facts import RECEIVER, SENDER
from parsers.hl7.framing import (
    FILLER,
    HEADER_SEGMENTS,
    VT,
    Deframer,
    PduKind,
    classify,
    mllp_body,
    resync_offset,
)
from parsers.hl7.signature import Entry, SignatureCache
from parsers.registry import ParserSpec, Probe

MAX_FACTS_PER_FLOW = 2048  # distinct facts remembered for dedupe; more are dropped and counted
MAX_SATISFIED_PER_DIRECTION = 64  # interpretations whose facts were all sent; oldest forgotten
PORT_HINTS = frozenset({2575, 6661})
_BATCH_HEADERS = ("FHS", "BHS")


class Hl7Parser(StreamParser):
    """One flow of HL7 v2 (see module docstring)."""

    name = "hl7"

    def __init__(self, flow: FlowKey, cache: SignatureCache | None = None) -> None:
        super().__init__(flow)
        self.cache = cache if cache is not None else SignatureCache()
        self._deframers = {d: Deframer() for d in DIRECTIONS}
        self._messages = dict.fromkeys(DIRECTIONS, 0)
        self._sent_non_ack = dict.fromkeys(DIRECTIONS, False)
        self._seen: dict[tuple[str, str, str], float] = {}  # fact -> best confidence sent
        # per direction: id(entry) -> entry whose every fact is in _seen at >= confidence.
        # _seen only ever grows, so re-sending such an entry would emit nothing. The dict
        # holds the entry itself, so its id cannot be reused while it is remembered.
        self._satisfied: dict[Direction, dict[int, Entry]] = {d: {} for d in DIRECTIONS}
        self.bad_messages = 0
        self.abandoned_frames = 0
        self.truncated_messages = 0
        self.dropped_facts = 0

    # --- framing -------------------------------------------------------------------
    def _frame(self, direction: Direction, buf: bytearray) -> Frame | None:
        if buf and buf[0] in FILLER and not self._messages[direction]:
            raise Malformed("whitespace before the first message")
        size = self._deframers[direction].find_pdu(buf)
        return Frame(size) if size is not None else None

    def _resync_offset(self, buf: bytearray) -> int | None:
        return resync_offset(buf)

    def gap(self, direction: Direction, size: int) -> None:
        self._deframers[direction].reset()
        super().gap(direction, size)

    def eof(self, direction: Direction) -> list[Observation]:
        """End of a direction: an unframed message still buffered is complete now."""
        buf = self._buf[direction]
        out: list[Observation] = []
        if self.state is not ParserState.REJECTED and buf[:3] in HEADER_SEGMENTS:
            try:
                out = list(self._decode(direction, bytes(buf), ts=self._last_ts))
            except Malformed:
                self.bad_messages += 1
        self._deframers[direction].reset()
        return out + super().eof(direction)

    # --- decoding ------------------------------------------------------------------
    _last_ts = 0.0

    def _decode(self, direction: Direction, pdu: bytes, ts: float) -> list[Observation]:
        self._last_ts = ts
        kind = classify(pdu)
        if kind is PduKind.FILLER:
            return []
        if kind is PduKind.ABANDONED:
            self.abandoned_frames += 1
            return []
        body = mllp_body(pdu) if kind is PduKind.MLLP else pdu
        cache = self.cache
        key = frame_key(body, cache.device_codes) if cache.fast else None
        if key is not None:
            entries = cache.lookup_frame(key)
            if entries is not None:  # a known frame shape: nothing to cut
                return self._observe(direction, [(False, e) for e in entries], ts)
        try:
            cuts = cut_frame(body, cache.device_codes)
        except Malformed:
            if not self._messages[direction]:
                raise
            self.bad_messages += 1
            return []
        looked_up = [(cut.truncated, cache.lookup(cut)) for cut in cuts]
        if key is not None:
            cache.remember_frame(key, cuts)
        return self._observe(direction, looked_up, ts)

    def _observe(
        self, direction: Direction, looked_up: list[tuple[bool, Entry]], ts: float
    ) -> list[Observation]:
        flow = self.flow
        if direction is TO_SERVER:
            sender, receiver = flow.client, flow.server
        else:
            sender, receiver = flow.server, flow.client
        satisfied = self._satisfied[direction]
        out: list[Observation] = []
        for truncated, entry in looked_up:
            self._messages[direction] += 1
            self.truncated_messages += truncated
            interp = entry.interpretation
            if not interp.is_ack and interp.message_type not in _BATCH_HEADERS:
                self._sent_non_ack[direction] = True
            if satisfied.get(id(entry)) is not entry:
                dropped = self.dropped_facts
                hosts = {SENDER: sender, RECEIVER: receiver}
                for fact in interp.facts:
                    host = hosts.get(fact.subject, fact.subject)
                    value = sender if fact.kind == "hl7.reached_via" else fact.value
                    obs = self._emit(fact.kind, host, value, ts, fact.raw, fact.confidence)
                    if obs is not None:
                        out.append(obs)
                if self.dropped_facts == dropped:  # nothing dropped: all facts now sent
                    if len(satisfied) >= MAX_SATISFIED_PER_DIRECTION:
                        del satisfied[next(iter(satisfied))]
                    satisfied[id(entry)] = entry
            if interp.is_ack and not self._sent_non_ack[direction]:
                obs = self._emit("hl7.role", sender, "ack-only-receiver", ts, None, 1.0)
                if obs is not None:
                    out.append(obs)
        return out

    def _emit(
        self, kind: str, host: str, value: str, ts: float, raw: str | None, conf: float
    ) -> Observation | None:
        key = (kind, host, value)
        sent = self._seen.get(key)
        if sent is not None and sent >= conf:
            return None  # already said, as strongly
        if sent is None and len(self._seen) >= MAX_FACTS_PER_FLOW:
            self.dropped_facts += 1
            return None
        self._seen[key] = conf
        port = self.flow.server_port if host == self.flow.server else None
        return Observation(kind, host, value, ts, port, raw, conf)


# --- detection -----------------------------------------------------------------------
def _plausible_header(data: bytes) -> Probe:
    """``data`` should start with MSH/FHS/BHS + field separator + MSH-2."""
    head = data[:3]
    if len(data) < 3:
        return Probe.NEED_MORE if any(h.startswith(head) for h in HEADER_SEGMENTS) else Probe.NO
    if head not in HEADER_SEGMENTS:
        return Probe.NO
    if len(data) < 8:
        sep = data[3:4]
        if sep and (sep.isalnum() or sep in b"\r\n \x00"):
            return Probe.NO
        return Probe.NEED_MORE
    fs = data[3]
    msh2 = data[4:8]
    if chr(fs).isalnum() or fs in b"\r\n \x00":
        return Probe.NO
    # MSH-2: 3-4 distinct non-alphanumeric characters, then the field separator
    enc = msh2.split(bytes([fs]), 1)[0]
    if len(enc) < 3 and bytes([fs]) not in msh2:
        return Probe.NO
    if not 2 <= len(enc) <= 4 or len(set(enc)) != len(enc):
        return Probe.NO
    if any(chr(c).isalnum() or c in b"\r\n \x00" for c in enc):
        return Probe.NO
    return Probe.MATCH


def probe(direction: Direction, data: bytes) -> Probe:
    """MATCH for <VT>MSH|^~\\& (or FHS/BHS), or an unframed header; never raises."""
    if not data:
        return Probe.NEED_MORE
    if data[0] == VT:
        return _plausible_header(data[1:])
    return _plausible_header(data)


def spec(cache: SignatureCache | None = None) -> ParserSpec:
    """The registry entry; all parsers it builds share one signature cache."""
    shared = cache if cache is not None else SignatureCache()
    factory: Callable[[FlowKey], Hl7Parser] = lambda flow: Hl7Parser(flow, shared)  # noqa: E731
    return ParserSpec(
        name="hl7", transport="tcp", probe=probe, factory=factory, port_hints=PORT_HINTS
    )
