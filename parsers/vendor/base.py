"""What every vendor datagram parser shares: who sent a datagram, per-flow dedupe of
facts, and tolerance for message shapes it does not know once the flow is proven.

A datagram the family's probe would not accept rejects the flow only while no
message of this flow has been understood; afterwards it is counted
(``skipped``) and ignored, so one odd message (a poll result, an abort) does not
blind the sensor to a confirmed monitor.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address

from parsers.base import TO_SERVER, DatagramParser, Direction, FlowKey, Malformed, Observation

MAX_FACTS_PER_FLOW = 256  # distinct (kind, host, value) remembered per flow; more are dropped
MAX_TEXT = 64  # characters kept of any device string (model, serial, location)


class VendorDatagramParser(DatagramParser):
    """Base for one UDP conversation of a vendor protocol (see module docstring)."""

    def __init__(self, flow: FlowKey) -> None:
        super().__init__(flow)
        self._seen: dict[tuple[str, str, str], float] = {}
        self.understood = 0  # messages decoded
        self.skipped = 0  # messages of a shape this parser does not read, after the first
        self.dropped_facts = 0

    def sender(self, direction: Direction) -> str:
        return self.flow.client if direction is TO_SERVER else self.flow.server

    def receiver(self, direction: Direction) -> str:
        return self.flow.server if direction is TO_SERVER else self.flow.client

    def _decode(self, direction: Direction, data: bytes, ts: float) -> Iterable[Observation]:
        try:
            facts = self.decode_message(direction, data, ts)
        except Malformed:
            if not self.understood:
                raise
            self.skipped += 1
            return []
        self.understood += 1
        return facts

    def decode_message(self, direction: Direction, data: bytes, ts: float) -> list[Observation]:
        """Observations from one datagram; Malformed when it is not this protocol."""
        raise NotImplementedError

    def emit(
        self,
        out: list[Observation],
        kind: str,
        host: str,
        value: str,
        ts: float,
        confidence: float = 1.0,
        raw: str | None = None,
    ) -> None:
        """Append the fact unless this flow already said it at least as strongly."""
        if not value:
            return
        key = (kind, host, value)
        sent = self._seen.get(key)
        if sent is not None and sent >= confidence:
            return
        if sent is None and len(self._seen) >= MAX_FACTS_PER_FLOW:
            self.dropped_facts += 1
            return
        self._seen[key] = confidence
        port = self.flow.server_port if host == self.flow.server else None
        out.append(Observation(kind, host, value, ts, port, raw, confidence))


def printable(raw: bytes, limit: int = MAX_TEXT) -> str | None:
    """ASCII text of a device string: NUL padding and spaces stripped; None when the bytes
    are not printable text (a wrong offset, binary data), so no garbage becomes a model."""
    text = raw.split(b"\x00", 1)[0].strip()
    if not text or len(text) > limit or any(b < 0x20 or b > 0x7E for b in text):
        return None
    return text.decode("ascii")


def unicast_ipv4(raw: bytes) -> str | None:
    """Dotted IPv4 text when ``raw`` is 4 bytes of a plausible unicast host address."""
    if len(raw) != 4:
        return None
    addr = IPv4Address(raw)
    if addr.is_unspecified or addr.is_multicast or addr.is_loopback or addr.is_reserved:
        return None
    return str(addr)
