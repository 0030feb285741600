"""DHCPv4 (RFC 2131, options RFC 2132) and DHCPv6 (RFC 8415) parser: who a client says it is.

One datagram is one message (``DatagramParser``). Detection is by payload: a BOOTP header
with the DHCP magic cookie (RFC 2131 3), or a DHCPv6 message whose options tile the datagram
exactly and carry a client or server DUID (RFC 8415 8, 21.2, 21.3, 11).

DHCPv4, client messages (op BOOTREQUEST): client hardware address ``chaddr`` (the host is
``mac:<chaddr>``, whatever relay carried it), host name (option 12, RFC 2132 3.14), vendor
class identifier (60, RFC 2132 9.13), parameter request list (55, 9.8) as a fingerprint
string, client identifier (61, 9.14), requested address (50, 9.1), client FQDN (81, RFC 4702),
user class (77, RFC 3004), vendor-identifying vendor class enterprise numbers (124, RFC 3925),
MUD URL (161, RFC 8520), ``ciaddr``. Server messages (BOOTREPLY): ``yiaddr`` of a DHCPACK
(``dhcp.assigned_ip`` on the client's MAC: the binding of MAC to IP) or DHCPOFFER
(``dhcp.offered_ip``), server identifier (54). Options split into several instances are
concatenated (RFC 3396); overloaded ``file``/``sname`` fields (52) are read as options.

DHCPv6: client DUID (option 1, RFC 8415 11: a DUID-LLT or DUID-LL with an Ethernet address
gives the host ``mac:<address>``, otherwise the client's IPv6 source or relay peer address),
server DUID (2), option request (6) as a fingerprint string, user class (15), vendor class
(16), client FQDN (39, RFC 4704), addresses in IA_NA/IA_TA (3, 4, 5) of a Reply
(``dhcp.assigned_ip``) or Advertise (``dhcp.offered_ip``); relay messages (12, 13) are
unwrapped through their Relay Message option (9), up to ``MAX_RELAY_DEPTH``.

Claims: ``dhcp.hostname`` (option 12, else the FQDN), and from ``parsers/data/
dhcp_fingerprints.csv`` (vendor class and parameter request list, a source on every row):
``dhcp.device_type``, ``dhcp.vendor``, ``dhcp.model``, plus ``dhcp.os`` as plain evidence.

Never read: the boot file and server host name (except as overloaded options), relay agent
information (82: switch port circuit IDs), authentication (90, DHCPv6 11), vendor-specific
information (43, DHCPv6 17), classless routes and every other server-supplied configuration.
Each fact is emitted once per flow (a broadcast flow carries every client of its VLAN). A
datagram that is not DHCP rejects the flow only before the first good one; after that it is
skipped and counted (``skipped``), so one odd BOOTP client cannot blind the VLAN's flow.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache

from parsers.base import DatagramParser, Direction, FlowKey, Malformed, Observation, ParserState
from parsers.knowledge import data_rows
from parsers.lldp import clean_text, mac_text
from parsers.registry import ParserSpec, Probe
from parsers.vocabulary import MAC_HOST_PREFIX

PORT_HINTS = frozenset({67, 68, 546, 547})
SERVER_PORT_V4, SERVER_PORT_V6 = 67, 547

# DHCPv4 layout (RFC 2131 2, figure 1)
BOOTP_FIXED = 236  # op .. file
COOKIE = b"\x63\x82\x53\x63"  # RFC 2131 3: 99.130.83.99
OPTIONS_START = BOOTP_FIXED + 4
SNAME, SNAME_LEN, FILE, FILE_LEN = 44, 64, 108, 128
BOOTREQUEST, BOOTREPLY = 1, 2
MAX_HLEN = 16

# DHCPv4 option codes
OPT_PAD, OPT_END = 0, 255
OPT_HOSTNAME, OPT_REQUESTED_IP, OPT_OVERLOAD, OPT_MSG_TYPE, OPT_SERVER_ID = 12, 50, 52, 53, 54
OPT_PRL, OPT_VENDOR_CLASS, OPT_CLIENT_ID, OPT_USER_CLASS, OPT_FQDN = 55, 60, 61, 77, 81
OPT_VI_VENDOR_CLASS, OPT_MUD_URL = 124, 161
MSG_TYPES = {
    1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE",
    8: "INFORM",
}
DHCPOFFER, DHCPACK = 2, 5

# DHCPv6 (RFC 8415 7.3 message types, 21 options)
V6_CLIENT_MSGS = frozenset({1, 3, 4, 5, 6, 8, 9, 11})  # Solicit .. Information-request
V6_SERVER_MSGS = frozenset({2, 7, 10})  # Advertise, Reply, Reconfigure
ADVERTISE, REPLY, RELAY_FORW, RELAY_REPL = 2, 7, 12, 13
V6_RELAY_HEADER = 34  # msg-type, hop-count, link-address, peer-address
V6_CLIENTID, V6_SERVERID, V6_IA_NA, V6_IA_TA, V6_IAADDR, V6_ORO = 1, 2, 3, 4, 5, 6
V6_RELAY_MSG, V6_USER_CLASS, V6_VENDOR_CLASS, V6_FQDN = 9, 15, 16, 39
MAX_V6_OPTION_CODE = 255  # IANA has assigned fewer; beyond this the bytes are not DHCPv6
DUID_LLT, DUID_EN, DUID_LL, DUID_UUID = 1, 2, 3, 4
HWTYPE_ETHERNET = 1

# Limits
MAX_OPTIONS = 255  # options per message (a DHCPv4 message of 576 bytes holds far fewer)
MAX_RELAY_DEPTH = 8  # RFC 8415 HOP_COUNT_LIMIT is 8
MAX_FACTS = 4096  # distinct facts remembered per flow for de-duplication
MAX_ID_BYTES = 64  # longest client identifier / DUID shown, in bytes
MAX_ITEMS = 16  # user class / vendor class instances read per option

# Confidences (0..1) of claims, and why.
CONF_HOSTNAME = 0.7  # the name the client asks to be known by; defaults ("android-1a2b") exist
CONF_FQDN_HOSTNAME = 0.6  # the FQDN the client wants registered, when it sends no option 12


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A row of ``dhcp_fingerprints.csv``."""

    field: str  # "vendor_class" (option 60, DHCPv6 16) or "prl" (option 55)
    match: str  # exact, prefix, regex
    pattern: str
    regex: re.Pattern[str] | None
    os: str
    device_type: str
    vendor: str
    model: str
    confidence: float
    source: str

    def search(self, value: str) -> dict[str, str] | None:
        """Named groups (empty for exact/prefix) when ``value`` matches, else None."""
        if self.regex is not None:
            found = self.regex.search(value)
            return None if found is None else {k: v for k, v in found.groupdict().items() if v}
        if self.match == "exact":
            return {} if value == self.pattern else None
        return {} if value.startswith(self.pattern) else None


@cache
def fingerprints() -> tuple[Fingerprint, ...]:
    rows: list[Fingerprint] = []
    for row in data_rows("dhcp_fingerprints.csv"):
        if row["field"] not in ("vendor_class", "prl") or row["match"] not in (
            "exact", "prefix", "regex"
        ):
            raise ValueError(f"dhcp_fingerprints.csv: bad row {row}")
        regex = re.compile(row["pattern"]) if row["match"] == "regex" else None
        rows.append(
            Fingerprint(row["field"], row["match"], row["pattern"], regex, row["os"],
                        row["device_type"], row["vendor"], row["model"],
                        float(row["confidence"]), row["source"])
        )
    return tuple(rows)


def match_fingerprints(field_name: str, value: str) -> list[tuple[Fingerprint, dict[str, str]]]:
    out = []
    for fp in fingerprints():
        if fp.field == field_name:
            groups = fp.search(value)
            if groups is not None:
                out.append((fp, groups))
    return out


# --- DHCPv4 ----------------------------------------------------------------------------
@dataclass(slots=True)
class V4Message:
    op: int
    htype: int
    hlen: int
    ciaddr: bytes
    yiaddr: bytes
    giaddr: bytes
    chaddr: bytes
    options: dict[int, bytearray] = field(default_factory=dict)

    @property
    def msg_type(self) -> int | None:
        value = self.options.get(OPT_MSG_TYPE)
        return value[0] if value and len(value) == 1 else None


def is_v4(data: bytes) -> bool:
    return (
        len(data) >= OPTIONS_START
        and data[BOOTP_FIXED:OPTIONS_START] == COOKIE
        and data[0] in (BOOTREQUEST, BOOTREPLY)
        and data[2] <= MAX_HLEN
    )


def _v4_options(data: bytes, start: int, end: int, out: dict[int, bytearray]) -> None:
    pos, count = start, 0
    while pos < end:
        code = data[pos]
        if code == OPT_PAD:
            pos += 1
            continue
        if code == OPT_END:
            return
        if pos + 2 > end:
            raise Malformed(f"option {code} header cut")
        length = data[pos + 1]
        if pos + 2 + length > end:
            raise Malformed(f"option {code} of {length} bytes overruns")
        out.setdefault(code, bytearray()).extend(data[pos + 2 : pos + 2 + length])  # RFC 3396
        pos += 2 + length
        count += 1
        if count > MAX_OPTIONS:
            raise Malformed(f"more than {MAX_OPTIONS} options")
    # no End option: tolerated, the datagram ends the options


def decode_v4(data: bytes) -> V4Message:
    if not is_v4(data):
        raise Malformed("no BOOTP header with the DHCP magic cookie")
    msg = V4Message(
        op=data[0], htype=data[1], hlen=data[2], ciaddr=data[12:16], yiaddr=data[16:20],
        giaddr=data[24:28], chaddr=data[28 : 28 + data[2]],
    )
    _v4_options(data, OPTIONS_START, len(data), msg.options)
    overload = msg.options.get(OPT_OVERLOAD)
    if overload and len(overload) == 1:  # RFC 2132 9.3; RFC 3396 order: file, then sname
        if overload[0] & 1:
            _v4_options(data, FILE, FILE + FILE_LEN, msg.options)
        if overload[0] & 2:
            _v4_options(data, SNAME, SNAME + SNAME_LEN, msg.options)
    return msg


def _ipv4(raw: bytes | bytearray | None) -> str | None:
    if raw is None or len(raw) != 4 or not any(raw):
        return None
    return str(ipaddress.IPv4Address(bytes(raw)))


def _hex_id(raw: bytes | bytearray) -> str:
    return ":".join(f"{b:02x}" for b in raw[:MAX_ID_BYTES]) + (
        ":..." if len(raw) > MAX_ID_BYTES else ""
    )


def dns_name(raw: bytes | bytearray) -> str:
    """A DNS wire-format name (RFC 1035 3.1, no compression: RFC 4702/4704); may be partial."""
    labels, pos = [], 0
    while pos < len(raw):
        length = raw[pos]
        if length == 0:
            break
        if length > 63 or pos + 1 + length > len(raw):
            raise Malformed("bad label in a DNS name")
        labels.append(clean_text(bytes(raw[pos + 1 : pos + 1 + length])))
        pos += 1 + length
    return ".".join(label for label in labels if label)[:255]


def _fqdn_v4(raw: bytearray) -> str | None:
    """Option 81 (RFC 4702 2): flags, RCODE1, RCODE2, domain name (wire format if E set)."""
    if len(raw) < 3:
        return None
    name = raw[3:]
    if raw[0] & 0x04:
        try:
            return dns_name(name) or None
        except Malformed:
            return None
    return clean_text(bytes(name)) or None


def _user_classes(raw: bytearray) -> list[str]:
    """Option 77 (RFC 3004 4): length-prefixed instances; else one opaque string (Windows)."""
    items: list[str] = []
    pos = 0
    while pos < len(raw) and len(items) < MAX_ITEMS:
        length = raw[pos]
        if length == 0 or pos + 1 + length > len(raw):
            return [clean_text(bytes(raw))] if raw else []
        items.append(clean_text(bytes(raw[pos + 1 : pos + 1 + length])))
        pos += 1 + length
    return [item for item in items if item]


def _enterprises(raw: bytearray) -> list[str]:
    """Option 124 (RFC 3925 3): enterprise number (4), data-len (1), data; numbers only."""
    out: list[str] = []
    pos = 0
    while pos + 5 <= len(raw) and len(out) < MAX_ITEMS:
        out.append(str(int.from_bytes(raw[pos : pos + 4], "big")))
        pos += 5 + raw[pos + 4]
    return out


class _Facts:
    """Observations of one datagram, per host."""

    __slots__ = ("out", "ts")

    def __init__(self, ts: float) -> None:
        self.ts = ts
        self.out: list[Observation] = []

    def add(
        self, host: str | None, kind: str, value: str | None, confidence: float = 1.0,
        port: int | None = None,
    ) -> None:
        if host and value:
            self.out.append(Observation(f"dhcp.{kind}", host, value, self.ts, port, None,
                                        confidence))

    def fingerprint(self, host: str | None, field_name: str, value: str) -> None:
        for fp, groups in match_fingerprints(field_name, value):
            os_name = fp.os or groups.get("os", "")
            if os_name and groups.get("version"):
                os_name = f"{os_name} {groups['version']}"
            self.add(host, "os", os_name, fp.confidence)
            self.add(host, "device_type", fp.device_type, fp.confidence)
            self.add(host, "vendor", fp.vendor, fp.confidence)
            self.add(host, "model", fp.model or groups.get("model"), fp.confidence)


def _client_host_v4(msg: V4Message) -> str | None:
    if msg.htype == HWTYPE_ETHERNET and msg.hlen == 6 and any(msg.chaddr):
        return MAC_HOST_PREFIX + mac_text(msg.chaddr)
    return _ipv4(msg.ciaddr)


def v4_facts(msg: V4Message, sender: str, facts: _Facts) -> None:
    client = _client_host_v4(msg)
    opts = msg.options
    add = facts.add
    relay = _ipv4(msg.giaddr)
    add(relay, "role", "relay")
    add(client, "client_ip", _ipv4(msg.ciaddr))
    if msg.op == BOOTREPLY:
        server = _ipv4(opts.get(OPT_SERVER_ID)) or (sender if _host_ip(sender) else None)
        add(server, "role", "server", port=SERVER_PORT_V4)
        kind = msg.msg_type
        if kind == DHCPACK or kind is None:  # an ACK, or a plain BOOTP reply
            add(client, "assigned_ip", _ipv4(msg.yiaddr))
        elif kind == DHCPOFFER:
            add(client, "offered_ip", _ipv4(msg.yiaddr))
        if OPT_FQDN in opts:  # the name the server registered for the client
            add(client, "fqdn", _fqdn_v4(opts[OPT_FQDN]))
        return
    add(client, "role", "client")
    hostname = clean_text(bytes(opts[OPT_HOSTNAME])) if OPT_HOSTNAME in opts else None
    add(client, "hostname", hostname, CONF_HOSTNAME)
    if OPT_FQDN in opts:
        fqdn = _fqdn_v4(opts[OPT_FQDN])
        add(client, "fqdn", fqdn)
        if not hostname:
            add(client, "hostname", fqdn, CONF_FQDN_HOSTNAME)
    if OPT_VENDOR_CLASS in opts:
        vendor_class = clean_text(bytes(opts[OPT_VENDOR_CLASS]))
        add(client, "vendor_class", vendor_class)
        if vendor_class:
            facts.fingerprint(client, "vendor_class", vendor_class)
    if OPT_PRL in opts and opts[OPT_PRL]:
        prl = ",".join(str(code) for code in opts[OPT_PRL])
        add(client, "parameter_request_list", prl)
        facts.fingerprint(client, "prl", prl)
    if OPT_CLIENT_ID in opts and opts[OPT_CLIENT_ID]:
        add(client, "client_id", _hex_id(opts[OPT_CLIENT_ID]))
    add(client, "requested_ip", _ipv4(opts.get(OPT_REQUESTED_IP)))
    for item in _user_classes(opts.get(OPT_USER_CLASS, bytearray())):
        add(client, "user_class", item)
    for number in _enterprises(opts.get(OPT_VI_VENDOR_CLASS, bytearray())):
        add(client, "vendor_enterprise", number)
    if OPT_MUD_URL in opts:
        add(client, "mud_url", clean_text(bytes(opts[OPT_MUD_URL])))


# --- DHCPv6 ----------------------------------------------------------------------------
@dataclass(slots=True)
class V6Message:
    msg_type: int
    options: list[tuple[int, bytes]]
    peer: str | None = None  # innermost relay's peer-address: the client's address
    relayed: bool = False


def _v6_options(data: bytes, pos: int) -> list[tuple[int, bytes]]:
    """Options from ``pos`` to the end; Malformed unless they tile the data exactly."""
    out: list[tuple[int, bytes]] = []
    while pos < len(data):
        if pos + 4 > len(data):
            raise Malformed("DHCPv6 option header cut")
        code = int.from_bytes(data[pos : pos + 2], "big")
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if code == 0 or code > MAX_V6_OPTION_CODE:
            raise Malformed(f"DHCPv6 option code {code}")
        if pos + 4 + length > len(data):
            raise Malformed(f"DHCPv6 option {code} overruns")
        out.append((code, data[pos + 4 : pos + 4 + length]))
        pos += 4 + length
        if len(out) > MAX_OPTIONS:
            raise Malformed(f"more than {MAX_OPTIONS} options")
    return out


def decode_v6(data: bytes) -> V6Message:
    """A DHCPv6 message, relay messages unwrapped to the client/server message inside."""
    peer: str | None = None
    relayed = False
    for _ in range(MAX_RELAY_DEPTH + 1):
        if not data:
            raise Malformed("empty")
        msg_type = data[0]
        if msg_type in (RELAY_FORW, RELAY_REPL):
            if len(data) < V6_RELAY_HEADER:
                raise Malformed("relay header cut")
            options = _v6_options(data, V6_RELAY_HEADER)
            inner = [value for code, value in options if code == V6_RELAY_MSG]
            if not inner:
                raise Malformed("relay message without a Relay Message option")
            peer = str(ipaddress.IPv6Address(data[18:34]))
            relayed = True
            data = inner[0]
            continue
        if msg_type not in V6_CLIENT_MSGS and msg_type not in V6_SERVER_MSGS:
            raise Malformed(f"DHCPv6 message type {msg_type}")
        if len(data) < 4:
            raise Malformed("DHCPv6 header cut")
        options = _v6_options(data, 4)
        duids = [value for code, value in options if code in (V6_CLIENTID, V6_SERVERID)]
        if not duids or not all(_duid_ok(d) for d in duids):
            raise Malformed("no valid client or server DUID")
        return V6Message(msg_type, options, peer, relayed)
    raise Malformed(f"relay nesting deeper than {MAX_RELAY_DEPTH}")


def _duid_ok(duid: bytes) -> bool:
    return len(duid) >= 3 and int.from_bytes(duid[:2], "big") in (
        DUID_LLT, DUID_EN, DUID_LL, DUID_UUID
    )


def duid_mac(duid: bytes) -> str | None:
    """The Ethernet address inside a DUID-LLT or DUID-LL (RFC 8415 11.2, 11.4), if any."""
    kind = int.from_bytes(duid[:2], "big")
    if kind == DUID_LLT and len(duid) == 14 and int.from_bytes(duid[2:4], "big") == 1:
        return mac_text(duid[8:14])
    if kind == DUID_LL and len(duid) == 10 and int.from_bytes(duid[2:4], "big") == 1:
        return mac_text(duid[4:10])
    return None


def _v6_host(duid: bytes | None, address: str | None) -> str | None:
    if duid is not None:
        mac = duid_mac(duid)
        if mac is not None and mac != "00:00:00:00:00:00":
            return MAC_HOST_PREFIX + mac
    return address if address and _host_ip(address) else None


def _ia_addresses(value: bytes, header: int) -> Iterator[str]:
    """IAADDR options inside an IA_NA (header 12) or IA_TA (header 4)."""
    try:
        inner = _v6_options(value, header)
    except Malformed:
        return
    for code, data in inner:
        if code == V6_IAADDR and len(data) >= 16:
            yield str(ipaddress.IPv6Address(data[:16]))


def _v6_strings(value: bytes, skip: int) -> list[str]:
    """User class / vendor class data: 2-byte length-prefixed items after ``skip`` bytes."""
    out: list[str] = []
    pos = skip
    while pos + 2 <= len(value) and len(out) < MAX_ITEMS:
        length = int.from_bytes(value[pos : pos + 2], "big")
        item = clean_text(value[pos + 2 : pos + 2 + length])
        if item:
            out.append(item)
        pos += 2 + length
    return out


def v6_facts(msg: V6Message, sender: str, receiver: str, facts: _Facts) -> None:
    add = facts.add
    first: dict[int, bytes] = {}
    for code, value in msg.options:
        first.setdefault(code, value)
    from_client = msg.msg_type in V6_CLIENT_MSGS
    client_address = msg.peer or (sender if from_client else receiver)
    client_duid = first.get(V6_CLIENTID)
    client = _v6_host(client_duid, client_address)
    if msg.relayed:
        add(sender, "role", "relay" if from_client else "server",
            port=None if from_client else SERVER_PORT_V6)
    if V6_SERVERID in first and not from_client:
        server = sender if _host_ip(sender) and not msg.relayed else None
        add(server, "role", "server", port=SERVER_PORT_V6)
        add(server, "duid", _hex_id(first[V6_SERVERID]))
    if client_duid is not None:
        add(client, "duid", _hex_id(client_duid))
    if not from_client:
        kind = "assigned_ip" if msg.msg_type == REPLY else "offered_ip"
        if msg.msg_type in (REPLY, ADVERTISE):
            for code, value in msg.options:
                if code in (V6_IA_NA, V6_IA_TA):
                    for addr in _ia_addresses(value, 12 if code == V6_IA_NA else 4):
                        add(client, kind, addr)
        return
    add(client, "role", "client")
    if V6_FQDN in first and len(first[V6_FQDN]) > 1:
        try:
            fqdn = dns_name(first[V6_FQDN][1:])  # flags, then the name (RFC 4704 4)
        except Malformed:
            fqdn = ""
        add(client, "fqdn", fqdn)
        add(client, "hostname", fqdn, CONF_FQDN_HOSTNAME)
    if V6_ORO in first and first[V6_ORO]:
        oro = first[V6_ORO]
        codes = [str(int.from_bytes(oro[i : i + 2], "big")) for i in range(0, len(oro) - 1, 2)]
        add(client, "option_request", ",".join(codes))
    for item in _v6_strings(first.get(V6_USER_CLASS, b""), 0):
        add(client, "user_class", item)
    vendor = first.get(V6_VENDOR_CLASS, b"")
    if len(vendor) >= 4:
        add(client, "vendor_enterprise", str(int.from_bytes(vendor[:4], "big")))
        for item in _v6_strings(vendor, 4):
            add(client, "vendor_class", item)
            facts.fingerprint(client, "vendor_class", item)


# --- detection and the parser ----------------------------------------------------------
def _host_ip(text: str) -> bool:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    return not (ip.is_unspecified or ip.is_multicast or text == "255.255.255.255")


def probe(direction: Direction, data: bytes) -> Probe:
    """MATCH a DHCPv4 message (magic cookie) or a DHCPv6 message that decodes cleanly."""
    if is_v4(data):
        return Probe.MATCH
    if data and (data[0] in V6_CLIENT_MSGS or data[0] in V6_SERVER_MSGS
                 or data[0] in (RELAY_FORW, RELAY_REPL)):
        try:
            decode_v6(bytes(data))
        except Malformed:
            return Probe.NO
        return Probe.MATCH
    return Probe.NO


def datagram_facts(data: bytes, sender: str, receiver: str, ts: float) -> list[Observation]:
    """Observations of one DHCPv4 or DHCPv6 datagram; Malformed when it is neither."""
    facts = _Facts(ts)
    if is_v4(data):
        v4_facts(decode_v4(data), sender, facts)
    else:
        v6_facts(decode_v6(data), sender, receiver, facts)
    return facts.out


class DhcpParser(DatagramParser):
    """DHCP messages of one UDP flow (a broadcast flow may carry many clients)."""

    name = "dhcp"

    def __init__(self, flow: FlowKey) -> None:
        super().__init__(flow)
        self.skipped = 0  # datagrams that were not DHCP after the flow was confirmed
        self._facts: set[tuple[str, str, str, float]] = set()

    def _decode(self, direction: Direction, data: bytes, ts: float) -> Iterable[Observation]:
        if direction is Direction.TO_SERVER:
            sender, receiver = self.flow.client, self.flow.server
        else:
            sender, receiver = self.flow.server, self.flow.client
        try:
            observations = datagram_facts(bytes(data), sender, receiver, ts)
        except Malformed:
            if self.state is ParserState.CONFIRMED:
                self.skipped += 1
                return []
            raise
        return self._new(observations)

    def _new(self, observations: list[Observation]) -> list[Observation]:
        out: list[Observation] = []
        for obs in observations:
            key = (obs.host, obs.kind, obs.value, obs.confidence)
            if key in self._facts:
                continue
            if len(self._facts) < MAX_FACTS:
                self._facts.add(key)
            out.append(obs)
        return out


SPEC = ParserSpec(
    name="dhcp", transport="udp", probe=probe, factory=DhcpParser, port_hints=PORT_HINTS
)
