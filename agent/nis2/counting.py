"""HL7 messages counted per flow, for the encryption-in-transit report.

The HL7 parser counts the messages it reads per direction but reports facts, not counts
(each fact once per flow). ``counting_registry()`` is the default parser registry with the
HL7 entry swapped for ``CountingHl7Parser``: the same parser, which also adds every message
it decodes (and whether it was an ACK) to a shared ``MessageCounter`` keyed by conversation
(VLAN, client, server, server port). Only cleartext HL7 can be counted: inside TLS nothing
is read. Nothing but the counts and the key is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from parsers.base import Direction, FlowKey, Observation
from parsers.hl7.parser import Hl7Parser
from parsers.hl7.parser import probe as hl7_probe
from parsers.hl7.parser import spec as hl7_spec
from parsers.hl7.signature import Entry, SignatureCache
from parsers.registry import ParserSpec, Registry, default_registry

MAX_COUNTED_CONVERSATIONS = 200_000  # keys held; beyond this messages are counted as dropped

CountKey = tuple[int | None, str, str, int]  # vlan, client, server, server port


@dataclass(slots=True)
class MessageCount:
    messages: int = 0  # everything but ACKs (and batch headers count as messages)
    acks: int = 0


class MessageCounter:
    def __init__(self, max_keys: int = MAX_COUNTED_CONVERSATIONS) -> None:
        self.counts: dict[CountKey, MessageCount] = {}
        self.max_keys = max_keys
        self.dropped = 0

    def add(self, flow: FlowKey, messages: int, acks: int) -> None:
        key = (flow.vlan, flow.client, flow.server, flow.server_port)
        count = self.counts.get(key)
        if count is None:
            if len(self.counts) >= self.max_keys:
                self.dropped += messages + acks
                return
            count = self.counts[key] = MessageCount()
        count.messages += messages
        count.acks += acks


class CountingHl7Parser(Hl7Parser):
    """``Hl7Parser`` that also counts what it decodes (see module docstring)."""

    def __init__(self, flow: FlowKey, cache: SignatureCache, counter: MessageCounter) -> None:
        super().__init__(flow, cache)
        self._counter = counter

    # Hl7Parser routes every decoded message, fast path and full path alike, through
    # _observe once: the one place that sees each message exactly once.
    def _observe(
        self, direction: Direction, looked_up: list[tuple[bool, Entry]], ts: float
    ) -> list[Observation]:
        out = super()._observe(direction, looked_up, ts)
        acks = sum(1 for _, entry in looked_up if entry.interpretation.is_ack)
        self._counter.add(self.flow, len(looked_up) - acks, acks)
        return out


def counting_registry(counter: MessageCounter) -> Registry:
    """Every shipped parser, in the same order, with HL7 counting into ``counter``."""
    base = default_registry()
    cache = SignatureCache()
    stock = hl7_spec(cache)
    factory: Callable[[FlowKey], Hl7Parser] = lambda flow: CountingHl7Parser(  # noqa: E731
        flow, cache, counter
    )
    registry = Registry()
    for spec in base:
        if spec.name == stock.name:
            spec = ParserSpec(name=stock.name, transport=stock.transport, probe=hl7_probe,
                              factory=factory, port_hints=stock.port_hints)
        registry.register(spec)
    frame_specs = []  # a spec is listed under each of its EtherTypes: register it once
    for specs in base.frame_specs.values():
        frame_specs += [s for s in specs if s not in frame_specs]
    for frame_spec in frame_specs:
        registry.register_frame(frame_spec)
    for syn_spec in base.syn_specs:
        registry.register_syn(syn_spec)
    return registry
