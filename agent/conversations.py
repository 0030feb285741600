"""Ended flows folded into conversations: who talked to which service, how much.

A conversation is (VLAN, inner VLAN, transport, client IP, server IP, server
port): the client's ephemeral port is dropped, so a workstation that opens a
thousand connections to a PACS is one record with ``connections=1000``. That
keeps memory bounded by the hosts and services on the network, not by how
long the capture runs. ``MAX_CONVERSATIONS`` caps it against floods.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.flows import Flow

MAX_CONVERSATIONS = 200_000

ConversationKey = tuple[int | None, int | None, int, bytes, bytes, int]


@dataclass(slots=True)
class Conversation:
    vlan: int | None
    inner_vlan: int | None
    proto: int
    client_ip: bytes
    server_ip: bytes
    server_port: int
    client_port: int  # the first connection's; kept for single-connection flows
    client_mac: bytes | None
    server_mac: bytes | None
    app: str | None
    connections: int
    packets_c2s: int
    packets_s2c: int
    bytes_c2s: int
    bytes_s2c: int
    first_seen: float
    last_seen: float

    def add(self, other: Flow | Conversation, *, connections: int) -> None:
        """Fold another flow's or conversation's counters into this one."""
        self.connections += connections
        self.packets_c2s += other.packets_c2s
        self.packets_s2c += other.packets_s2c
        self.bytes_c2s += other.bytes_c2s
        self.bytes_s2c += other.bytes_s2c
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)
        self.app = self.app or other.app

    @classmethod
    def from_flow(cls, flow: Flow, *, connections: int) -> Conversation:
        """A conversation of one flow, with that flow's counters."""
        return cls(
            vlan=flow.vlan,
            inner_vlan=flow.inner_vlan,
            proto=flow.proto,
            client_ip=flow.client_ip,
            server_ip=flow.server_ip,
            server_port=flow.server_port,
            client_port=flow.client_port,
            client_mac=flow.client_mac,
            server_mac=flow.server_mac,
            app=flow.app,
            connections=connections,
            packets_c2s=flow.packets_c2s,
            packets_s2c=flow.packets_s2c,
            bytes_c2s=flow.bytes_c2s,
            bytes_s2c=flow.bytes_s2c,
            first_seen=flow.first_seen,
            last_seen=flow.last_seen,
        )


class ConversationTable:
    def __init__(self, max_records: int = MAX_CONVERSATIONS) -> None:
        self._records: dict[ConversationKey, Conversation] = {}
        self.max_records = max_records
        self.dropped_flows = 0

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> list[Conversation]:
        return list(self._records.values())

    def add(self, flow: Flow, new_connection: bool) -> None:
        key = (
            flow.vlan,
            flow.inner_vlan,
            flow.proto,
            flow.client_ip,
            flow.server_ip,
            flow.server_port,
        )
        rec = self._records.get(key)
        if rec is None:
            if len(self._records) >= self.max_records:
                self.dropped_flows += 1
                return
            self._records[key] = Conversation.from_flow(flow, connections=1)
            return
        rec.add(flow, connections=new_connection)
