"""agent.flows: keys, direction and client, counters, TCP state, timeouts, the hard cap."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.decode import PROTO_TCP, PROTO_UDP, PacketMeta
from agent.flows import (
    SWEEP_INTERVAL,
    TCP_CLOSED_TIMEOUT,
    TCP_IDLE_TIMEOUT,
    UDP_IDLE_TIMEOUT,
    Flow,
    FlowTable,
    TcpState,
)
from tests.frames import ip, meta

SYN, SYN_ACK, ACK, PSH_ACK, FIN_ACK, RST = 0x02, 0x12, 0x10, 0x18, 0x11, 0x04
C, S = "10.1.20.15", "10.1.30.40"  # client, server
MAC_C, MAC_S = b"\x00\x09\xfb\x00\x00\x01", b"\x00\x1b\x21\x00\x00\x02"


class Ends:
    """Records on_end calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Flow, str, int, int]] = []  # flow, reason, packets, bytes

    def __call__(self, flow: Flow, reason: str) -> None:
        self.calls.append((flow, reason, flow.packets, flow.bytes))

    def reasons(self) -> list[str]:
        return [r for _, r, _, _ in self.calls]


def table(**kw: object) -> tuple[FlowTable, Ends]:
    ends = Ends()
    return FlowTable(ends, **kw), ends  # type: ignore[arg-type]


def c2s(flags: int = PSH_ACK, ts: float = 0.0, **kw: object) -> PacketMeta:
    return meta(C, 50000, S, 104, flags=flags, ts=ts, src_mac=MAC_C, dst_mac=MAC_S, **kw)  # type: ignore[arg-type]


def s2c(flags: int = PSH_ACK, ts: float = 0.0, **kw: object) -> PacketMeta:
    return meta(S, 104, C, 50000, flags=flags, ts=ts, src_mac=MAC_S, dst_mac=MAC_C, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- keys
def test_same_4tuple_in_two_vlans_is_two_flows() -> None:
    t, _ = table()
    f10, _ = t.update(c2s(SYN, vlan=10))
    f20, _ = t.update(c2s(SYN, vlan=20))
    assert f10 is not f20 and len(t) == 2
    assert (f10.vlan, f20.vlan) == (10, 20)
    assert t.update(s2c(SYN_ACK, vlan=20))[0] is f20
    assert t.update(s2c(SYN_ACK, vlan=10))[0] is f10


def test_inner_vlan_and_untagged_are_part_of_the_key() -> None:
    t, _ = table()
    flows = {
        t.update(c2s(vlan=v, inner_vlan=i))[0]
        for v, i in [(None, None), (100, None), (100, 20), (100, 30)]
    }
    assert len(flows) == 4 == len(t)


def test_protocol_is_part_of_the_key() -> None:
    t, _ = table()
    a, _ = t.update(c2s())
    b, _ = t.update(meta(C, 50000, S, 104, proto=PROTO_UDP))
    assert a is not b and (a.proto, b.proto) == (PROTO_TCP, PROTO_UDP)


Endpoint = tuple[str, int]
ADDRS = st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3", "fd00::1"])


@settings(max_examples=80, deadline=None)
@given(
    packets=st.lists(
        st.tuples(
            st.none() | st.integers(0, 4095),  # vlan
            st.none() | st.integers(0, 4095),  # inner vlan
            st.sampled_from([PROTO_TCP, PROTO_UDP]),
            st.tuples(ADDRS, st.sampled_from([53, 104, 50000, 50001])),
            st.tuples(ADDRS, st.sampled_from([53, 104, 50000, 50001])),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_flow_keys_separate_vlans_and_join_directions(
    packets: list[tuple[int | None, int | None, int, Endpoint, Endpoint]],
) -> None:
    t, ends = table()
    seen: dict[tuple[object, ...], Flow] = {}
    for i, (vlan, inner, proto, (a, ap), (b, bp)) in enumerate(packets):
        if len(ip(a)) != len(ip(b)):
            continue
        m = meta(a, ap, b, bp, proto=proto, vlan=vlan, inner_vlan=inner, ts=float(i))
        flow, to_server = t.update(m)
        canon = (vlan, inner, proto, frozenset({(a, ap), (b, bp)}))
        assert seen.setdefault(canon, flow) is flow  # both directions, one flow
        assert (flow.vlan, flow.inner_vlan, flow.proto) == (vlan, inner, proto)
        sender = (
            (flow.client_ip, flow.client_port) if to_server else (flow.server_ip, flow.server_port)
        )
        assert sender == (ip(a), ap)
    assert len(t) == len(seen) == len(set(map(id, seen.values())))
    assert not ends.calls


# --------------------------------------------------------------------------- client
def test_both_directions_map_to_one_flow() -> None:
    t, _ = table()
    f1, d1 = t.update(c2s(SYN))
    f2, d2 = t.update(s2c(SYN_ACK))
    f3, d3 = t.update(c2s(ACK))
    assert f1 is f2 is f3 and (d1, d2, d3) == (True, False, True)
    assert len(t) == 1 and t.flows() == [f1]


def test_syn_sender_is_client_even_from_a_well_known_port() -> None:
    t, _ = table()
    flow, to_server = t.update(meta(S, 443, C, 50000, flags=SYN))
    assert to_server
    assert (flow.client_ip, flow.client_port, flow.server_port) == (ip(S), 443, 50000)


def test_syn_ack_first_seen_its_receiver_is_client() -> None:
    t, _ = table()
    flow, to_server = t.update(s2c(SYN_ACK))
    assert not to_server
    assert (flow.client_ip, flow.client_port, flow.client_mac) == (ip(C), 50000, MAC_C)
    assert (flow.server_ip, flow.server_port, flow.server_mac) == (ip(S), 104, MAC_S)


def test_midstream_first_sender_is_client() -> None:
    t, _ = table()
    flow, to_server = t.update(meta(C, 50000, S, 50001, flags=ACK))
    assert to_server and flow.client_port == 50000 and flow.tcp_state == TcpState.MIDSTREAM


def test_midstream_from_well_known_to_ephemeral_is_the_servers_answer() -> None:
    t, _ = table()
    flow, to_server = t.update(s2c(PSH_ACK))  # 104 -> 50000
    assert not to_server
    assert (flow.client_ip, flow.client_port, flow.server_port) == (ip(C), 50000, 104)
    flow, to_server = t.update(meta(S, 2575, C, 40000, flags=PSH_ACK))  # HL7 port above 1024
    assert not to_server and flow.server_port == 2575


def test_udp_first_sender_rules() -> None:
    t, _ = table()
    dns, to_server = t.update(meta(C, 40000, S, 53, proto=PROTO_UDP))
    assert to_server and dns.server_port == 53
    reply, to_server = t.update(meta(S, 161, C, 40001, proto=PROTO_UDP))  # SNMP answer first
    assert not to_server and (reply.client_port, reply.server_port) == (40001, 161)
    both, to_server = t.update(meta(C, 123, S, 123, proto=PROTO_UDP))  # NTP: both well known
    assert to_server and both.client_ip == ip(C)
    ephemeral, to_server = t.update(meta(S, 40002, C, 40003, proto=PROTO_UDP))
    assert to_server and ephemeral.client_ip == ip(S)


def test_icmp_is_one_flow_per_host_pair() -> None:
    t, _ = table()
    a, _ = t.update(meta(C, 8, S, 0, proto=1))  # echo request: type/code in the port slots
    b, to_server = t.update(meta(S, 0, C, 0, proto=1))  # echo reply
    assert a is b and not to_server and (a.client_port, a.server_port) == (0, 0)


# --------------------------------------------------------------------------- counters
def test_per_direction_packets_bytes_and_times() -> None:
    t, _ = table()
    t.update(c2s(SYN, ts=10.0, wirelen=74))
    t.update(s2c(SYN_ACK, ts=10.1, wirelen=74))
    t.update(c2s(ACK, ts=10.2, wirelen=66))
    t.update(c2s(PSH_ACK, ts=10.3, wirelen=300))
    flow, _ = t.update(s2c(PSH_ACK, ts=10.5, wirelen=1514))
    assert (flow.packets_c2s, flow.packets_s2c, flow.packets) == (3, 2, 5)
    assert (flow.bytes_c2s, flow.bytes_s2c, flow.bytes) == (74 + 66 + 300, 74 + 1514, 2028)
    assert (flow.first_seen, flow.last_seen) == (10.0, 10.5)


def test_last_seen_never_goes_back() -> None:
    t, _ = table()
    t.update(c2s(ts=20.0))
    flow, _ = t.update(s2c(ts=19.0))  # reordered timestamps in a merged capture
    assert (flow.first_seen, flow.last_seen) == (20.0, 20.0)


# --------------------------------------------------------------------------- TCP state
def test_handshake_then_fin_both_ways_closes() -> None:
    t, _ = table()
    states = []
    for m in [c2s(SYN), s2c(SYN_ACK), c2s(ACK), c2s(PSH_ACK), c2s(FIN_ACK), s2c(FIN_ACK)]:
        flow, _ = t.update(m)
        states.append(flow.tcp_state)
    assert states[0] == TcpState.SYN_SENT
    assert states[1:4] == [TcpState.ESTABLISHED] * 3
    assert states[4:] == [TcpState.CLOSING, TcpState.CLOSED]
    assert flow.saw_syn and flow.fin_c2s and flow.fin_s2c


def test_rst_resets() -> None:
    t, _ = table()
    t.update(c2s(SYN))
    flow, _ = t.update(s2c(RST | ACK))
    assert flow.tcp_state == TcpState.RESET


def test_midstream_flow_is_not_promoted_by_ack() -> None:
    t, _ = table()
    flow, _ = t.update(c2s(ACK))
    flow, _ = t.update(s2c(ACK))
    assert flow.tcp_state == TcpState.MIDSTREAM and not flow.saw_syn


def test_udp_has_no_tcp_state() -> None:
    t, _ = table()
    flow, _ = t.update(meta(C, 40000, S, 53, proto=PROTO_UDP, flags=SYN))
    assert flow.tcp_state == TcpState.NEW and not flow.saw_syn


# --------------------------------------------------------------------------- timeouts
def other(ts: float) -> PacketMeta:
    """A packet of an unrelated flow: moves capture time on and triggers sweeps."""
    return meta("10.9.9.9", 40000, "10.9.9.8", 53, proto=PROTO_UDP, ts=ts)


def test_udp_idle_timeout_ends_flow() -> None:
    t, ends = table()
    flow, _ = t.update(meta(C, 40000, S, 53, proto=PROTO_UDP, ts=0.0))
    t.update(other(UDP_IDLE_TIMEOUT - 1))
    assert not ends.calls
    t.update(other(UDP_IDLE_TIMEOUT + SWEEP_INTERVAL + 1))
    assert [(f, r) for f, r, _, _ in ends.calls] == [(flow, "idle")]
    assert flow not in t.flows() and t.timed_out == 1
    assert t.update(meta(S, 53, C, 40000, proto=PROTO_UDP, ts=200.0))[0] is not flow


def test_tcp_idle_timeout_is_longer() -> None:
    t, ends = table()
    flow, _ = t.update(c2s(ACK, ts=0.0))
    t.update(other(UDP_IDLE_TIMEOUT + 10))  # the UDP timeout would have ended it
    t.update(other(TCP_IDLE_TIMEOUT - 1))
    assert flow in t.flows()
    t.update(other(TCP_IDLE_TIMEOUT + SWEEP_INTERVAL + 1))
    assert (flow, "idle") in [(f, r) for f, r, _, _ in ends.calls]


def test_closed_and_reset_flows_end_after_short_timeout_with_reason_closed() -> None:
    t, ends = table()
    closed, _ = t.update(c2s(FIN_ACK, ts=0.0))
    t.update(s2c(FIN_ACK, ts=0.1))
    reset, _ = t.update(meta(C, 50001, S, 104, flags=RST, ts=0.2))
    t.update(other(TCP_CLOSED_TIMEOUT - 1))
    assert len(t) == 3
    t.update(other(TCP_CLOSED_TIMEOUT + SWEEP_INTERVAL + 1))
    ended = {(f, r) for f, r, _, _ in ends.calls}
    assert ended == {(closed, "closed"), (reset, "closed")}


def test_packet_after_idle_timeout_starts_a_new_flow() -> None:
    t, ends = table()
    old, _ = t.update(meta(C, 40000, S, 53, proto=PROTO_UDP, ts=0.0))
    new, _ = t.update(meta(C, 40000, S, 53, proto=PROTO_UDP, ts=UDP_IDLE_TIMEOUT + 100))
    assert [(f, r) for f, r, _, _ in ends.calls] == [(old, "idle")]
    assert new is not old and new.packets == 1 and new.first_seen == UDP_IDLE_TIMEOUT + 100


def test_port_reuse_after_close_starts_a_new_flow() -> None:
    t, ends = table()
    for m in [c2s(SYN, ts=0), s2c(SYN_ACK, ts=0.1), c2s(FIN_ACK, ts=1), s2c(FIN_ACK, ts=1.1)]:
        old, _ = t.update(m)
    new, _ = t.update(c2s(SYN, ts=60.0))
    assert ends.reasons() == ["closed"]
    assert new is not old and new.tcp_state == TcpState.SYN_SENT and not new.fin_c2s


def test_active_timeout_exports_slices_and_keeps_the_flow() -> None:
    t, ends = table(active_timeout=60.0)
    total = 0
    flow = None
    for i in range(20):  # one packet every 10 s for 200 s, alternating directions
        m = c2s(ts=i * 10.0, wirelen=100) if i % 2 == 0 else s2c(ts=i * 10.0, wirelen=100)
        f, _ = t.update(m)
        assert flow is None or f is flow  # the same flow all along
        flow = f
        total += 1
    assert flow is not None and ends.reasons() and set(ends.reasons()) == {"active"}
    assert len(t) == 1 and flow in t.flows()
    exported = sum(p for _, _, p, _ in ends.calls)
    assert exported + flow.packets == total  # nothing counted twice or lost
    assert sum(b for _, _, _, b in ends.calls) + flow.bytes == total * 100
    for (_, _, packets, _), later in zip(ends.calls, ends.calls[1:], strict=False):
        assert packets > 0 and later[2] > 0
    assert flow.first_seen == flow.slice_start > 0.0
    assert flow.last_seen == 190.0


def test_active_timeout_zero_disables_slicing() -> None:
    t, ends = table(active_timeout=0.0)
    for i in range(50):
        t.update(c2s(ts=i * 100.0))
    assert not ends.calls


# --------------------------------------------------------------------------- hard cap
def udp_flow(i: int, ts: float) -> PacketMeta:
    return meta(f"10.2.{i // 250}.{i % 250 + 1}", 40000 + i % 7, S, 53, proto=PROTO_UDP, ts=ts)


def test_hard_cap_evicts_and_loses_nothing() -> None:
    t, ends = table(max_flows=100)
    created: list[Flow] = []
    for i in range(1000):
        flow, _ = t.update(udp_flow(i, ts=i * 0.001))
        created.append(flow)
        assert len(t) <= 100 and len(t.flows()) == len(t)
    assert len({id(f) for f in created}) == 1000 == t.created
    assert t.evicted == ends.reasons().count("evicted") > 0
    assert t.peak == 100
    live = t.flows()
    t.close_all()
    ended = [f for f, _, _, _ in ends.calls]
    assert len(ended) == 1000 and {id(f) for f in ended} == {id(f) for f in created}
    assert ends.reasons().count("end_of_capture") == len(live)
    assert len(t) == 0 and t.flows() == []


def test_eviction_takes_the_least_recently_seen() -> None:
    t, ends = table(max_flows=10)
    flows = [t.update(udp_flow(i, ts=float(i)))[0] for i in range(10)]
    t.update(udp_flow(0, ts=20.0))  # flow 0 is fresh again
    t.update(udp_flow(10, ts=21.0))  # table full: evicts max(1, 10 % of 10) = 1 flow
    assert [(f, r) for f, r, _, _ in ends.calls] == [(flows[1], "evicted")]


@settings(max_examples=100, deadline=None)
@given(
    ops=st.lists(st.tuples(st.integers(0, 30), st.booleans(), st.floats(0, 50)), max_size=120),
    max_flows=st.integers(1, 12),
)
def test_every_flow_ends_exactly_once(ops: list[tuple[int, bool, float]], max_flows: int) -> None:
    t, ends = table(max_flows=max_flows, active_timeout=30.0)
    created: dict[int, Flow] = {}
    ts = 0.0
    for n, reverse, step in ops:
        ts += step
        m = udp_flow(n, ts)
        if reverse:
            m.src_ip, m.dst_ip, m.sport, m.dport = m.dst_ip, m.src_ip, m.dport, m.sport
        flow, _ = t.update(m)
        created[id(flow)] = flow
        assert len(t) <= max_flows
    t.close_all()
    final = [f for f, r, _, _ in ends.calls if r != "active"]
    assert sorted(map(id, final)) == sorted(created)  # each flow ends once, none lost
    assert len(t) == 0 and not t.flows()


def test_close_all_ends_every_live_flow_once() -> None:
    t, ends = table()
    a, _ = t.update(c2s(SYN))
    b, _ = t.update(c2s(SYN, vlan=20))
    c, _ = t.update(meta(C, 40000, S, 53, proto=PROTO_UDP))
    t.close_all()
    assert sorted(map(id, (f for f, _, _, _ in ends.calls))) == sorted(map(id, (a, b, c)))
    assert set(ends.reasons()) == {"end_of_capture"}
    t.close_all()
    assert len(ends.calls) == 3 and len(t) == 0
