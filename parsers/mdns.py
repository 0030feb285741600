"""Multicast DNS (RFC 6762) and DNS-Based Service Discovery (RFC 6763) on UDP 5353.

A device announces its own records: A/AAAA for its host name (``NPI3C4F2A.local``), PTR
``_ipp._tcp.local`` -> ``<instance>._ipp._tcp.local``, SRV (instance -> host name and
port) and TXT key=value pairs (RFC 6763 §6). The message format is DNS; decoding is
``parsers.dns`` (loop-safe, bounded name compression).

Whose records are they (RFC 6762 §6, §8, §7.1):
- a response's records (all sections) are the sender's own, except that a Bonjour Sleep
  Proxy answers for sleeping hosts: when the addresses of an SRV target or host name are
  in the message and the sender is not among them, the facts go to that address (same IP
  family as the sender), at ``PROXY_FACTOR`` of the confidence;
- a query's authority section holds the sender's records while it probes (§8.2);
- a query's answer section holds *known answers*: other hosts' records. Never used.

Observations (host = the device's IP):
- ``mdns.hostname`` (claim): the owner of an A/AAAA record without ``.local``; 0.8 when
  the address is the sender's, 0.5 for another address of the sender's family.
- ``mdns.service`` (plain, port = the SRV port): a service type the host offers.
- ``mdns.device_type`` (claim): from the service type (``parsers/data/mdns_services.csv``,
  e.g. ``_ipp._tcp`` -> printer 0.6) or from a model identifier (``mdns_models.csv``).
- ``mdns.vendor`` / ``mdns.model`` (claims): TXT keys, one of each per instance, first
  present wins: vendor ``usb_MFG``, ``manufacturer``, ``mfg`` (0.7); model ``usb_MDL``,
  ``ty``, ``product`` (0.7, Apple Bonjour Printing Specification 1.2.1 §9), ``model``,
  ``md``, ``am`` (0.6). ``ty`` loses a leading vendor name, ``product`` its parentheses.
- ``mdns.dicom_ae_title`` (plain): TXT ``AETitle`` of a ``_dicom._tcp`` instance, else
  its instance name (OsiriX/Horos announce the AE title that way).
- ``mdns.hinfo`` (plain): HINFO CPU and OS strings.
- ``mdns.browse`` (plain): a service type the sender asks for (a client of printers...).

Never read: other TXT keys (``note`` is a free-text location, ``adminurl``, ``rp``,
``UUID``...), instance names (user-set, they may carry a person's name, "Anna's
iPhone"), known-answer records. Values are cleaned and truncated.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from parsers.base import DatagramParser, Direction, FlowKey, Malformed, Observation
from parsers.dns import (
    AUTHORITY,
    TYPE_HINFO,
    TYPE_PTR,
    TYPE_SRV,
    TYPE_TXT,
    Message,
    Name,
    Record,
    clean_text,
    name_text,
    parse_message,
    reverse_address,
)
from parsers.factlog import FactLog, sender_of
from parsers.knowledge import data_rows
from parsers.registry import ParserSpec, Probe

PORT = 5353
PORT_HINTS = frozenset({PORT})
MAX_BROWSE_PER_FLOW = 16  # ``mdns.browse`` service types kept per flow
MAX_TXT_KEYS = 64  # key=value strings read from one TXT record
MAX_VENDOR_HOSTS = 64  # hosts whose announced vendor a flow remembers (to trim ``ty``)

OWN_ADDRESS_CONFIDENCE = 0.8  # host name whose A/AAAA record holds the sender's address
OTHER_ADDRESS_CONFIDENCE = 0.5  # host name whose address is another one (proxy, multihomed)
PROXY_FACTOR = 0.7  # service facts attributed to another host than the sender
VENDOR_CONFIDENCE = 0.7
VENDOR_KEYS = ("usb_mfg", "manufacturer", "mfg")
MODEL_KEYS = (  # (TXT key, confidence), first present wins
    ("usb_mdl", 0.7),
    ("ty", 0.7),
    ("product", 0.7),
    ("model", 0.6),
    ("md", 0.6),
    ("am", 0.6),
)
AE_TITLE_KEY = "aetitle"
DICOM_SERVICE = "_dicom._tcp"

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class ServiceRow:
    device_type: str
    confidence: float


@dataclass(frozen=True, slots=True)
class ModelRow:
    pattern: re.Pattern[str]
    device_type: str
    vendor: str
    confidence: float


@cache
def services() -> dict[str, ServiceRow]:
    """Service type -> device type hint; a row without a type documents why there is none."""
    return {
        r["service"].lower(): ServiceRow(r["device_type"], float(r["confidence"] or 0))
        for r in data_rows("mdns_services.csv")
    }


@cache
def model_patterns() -> tuple[ModelRow, ...]:
    return tuple(
        ModelRow(re.compile(r["pattern"]), r["device_type"], r["vendor"], float(r["confidence"]))
        for r in data_rows("mdns_models.csv")
    )


# --- names ---------------------------------------------------------------------------
def _fold(name: Name) -> Name:
    return tuple(label.lower() for label in name)


def is_local(name: Name) -> bool:
    return bool(name) and name[-1].lower() == b"local"


def host_label(name: Name) -> str:
    """``NPI3C4F2A.local`` -> ``NPI3C4F2A`` (case kept: it is how the device spells it)."""
    labels = name[:-1] if is_local(name) else name
    return name_text(labels, lower=False)


def split_service(name: Name) -> tuple[str, Name] | None:
    """(``_ipp._tcp``, instance labels) of ``<instance>._ipp._tcp.local``; None otherwise.

    For a service-type name (``_ipp._tcp.local``, ``_universal._sub._ipp._tcp.local``) the
    instance is empty.
    """
    for i in range(len(name) - 1, 0, -1):
        proto = name[i].lower()
        if proto in (b"_tcp", b"_udp") and name[i - 1].startswith(b"_"):
            service = name_text(name[i - 1 : i + 1])
            instance = name[: i - 1]
            if len(instance) >= 2 and instance[-1].lower() == b"_sub":
                instance = ()
            return service, instance
    return None


def txt_pairs(strings: list[bytes]) -> dict[str, bytes]:
    """RFC 6763 §6.3-6.4: ``key=value``; keys case-insensitive, the first one wins."""
    out: dict[str, bytes] = {}
    for item in strings[:MAX_TXT_KEYS]:
        key, sep, value = item.partition(b"=")
        if not key or not sep:
            continue
        text = key.decode("ascii", errors="replace").lower()
        out.setdefault(text, value)
    return out


def model_value(key: str, raw: bytes, vendor: str | None) -> str:
    value = clean_text(raw)
    if key == "product" and value.startswith("(") and value.endswith(")"):
        value = value[1:-1].strip()
    if key in ("ty", "product") and vendor and value.lower().startswith(vendor.lower() + " "):
        value = value[len(vendor) + 1 :].strip()
    return value


# --- probe ---------------------------------------------------------------------------
def probe(direction: Direction, data: bytes) -> Probe:
    """MATCH a whole DNS-format message (opcode 0) with message ID 0 or a ``.local`` name.

    RFC 6762 §18.1: multicast messages carry ID 0; legacy unicast queries to port 5353
    carry an ID but ask for ``.local`` names.
    """
    try:
        msg = parse_message(bytes(data))
    except Malformed:
        return Probe.NO
    if msg.opcode != 0 or not (msg.questions or msg.records):
        return Probe.NO
    if msg.ident == 0:
        return Probe.MATCH
    names = [q.name for q in msg.questions] + [r.name for r in msg.records]
    return Probe.MATCH if any(is_local(n) for n in names) else Probe.NO


# --- parser --------------------------------------------------------------------------
class MdnsParser(DatagramParser):
    """One UDP conversation of mDNS; see the module docstring."""

    name = "mdns"

    def __init__(self, flow: FlowKey) -> None:
        super().__init__(flow)
        self.facts = FactLog()
        self.bad_messages = 0
        self._browsed: set[str] = set()
        self._vendors: dict[str, str] = {}  # host -> vendor it announced (to trim ``ty``)

    def _decode(self, direction: Direction, data: bytes, ts: float) -> Iterable[Observation]:
        out: list[Observation] = []
        try:
            msg = parse_message(bytes(data), exact=False)
            if msg.opcode == 0:
                sender, _ = sender_of(self.flow, direction)
                self._message(out, msg, sender, ts)
        except Malformed:
            if not self.pdus:
                raise
            self.bad_messages += 1  # one broken datagram does not blind a confirmed flow
            return []
        return out

    def _message(self, out: list[Observation], msg: Message, sender: str, ts: float) -> None:
        if msg.is_response:
            own = [r for r in msg.records if r.rclass & 0x7FFF == 1]
        else:
            own = [r for r in msg.records if r.section == AUTHORITY and r.rclass & 0x7FFF == 1]
            for question in msg.questions:
                self._browse(out, sender, question.name, ts)
        if own:
            _Announcement(self.facts, out, msg, sender, ts, self._vendors).read(own)

    def _browse(self, out: list[Observation], sender: str, name: Name, ts: float) -> None:
        split = split_service(name)
        if split is None or split[1]:
            return
        service = split[0]
        if service not in self._browsed:
            if len(self._browsed) >= MAX_BROWSE_PER_FLOW:
                return
            self._browsed.add(service)
        self.facts.add(out, "mdns.browse", sender, service, ts)


class _Announcement:
    """The facts of one message's own records."""

    def __init__(
        self,
        facts: FactLog,
        out: list[Observation],
        msg: Message,
        sender: str,
        ts: float,
        vendors: dict[str, str],
    ) -> None:
        self.facts, self.out, self.msg, self.ts = facts, out, msg, ts
        self.vendors = vendors
        self.sender = sender
        self.sender_ip: IP | None = _ip(sender)
        self.addresses: dict[Name, list[IP]] = {}  # host name (folded) -> addresses

    def emit(self, kind: str, host: str, value: str, conf: float, port: int | None = None) -> None:
        self.facts.add(self.out, kind, host, value, self.ts, port, round(conf, 3))

    def read(self, records: list[Record]) -> None:
        msg = self.msg
        names: dict[Name, Name] = {}  # folded host name -> as spelt
        for rec in records:
            ip = msg.address(rec)
            if ip is not None and rec.name:
                self.addresses.setdefault(_fold(rec.name), []).append(ip)
                names.setdefault(_fold(rec.name), rec.name)
            elif rec.rtype == TYPE_PTR:
                ip = reverse_address(rec.name)
                target = msg.rdata_name(rec)
                if ip is not None and target:
                    self.addresses.setdefault(_fold(target), []).append(ip)
                    names.setdefault(_fold(target), target)
        for folded, spelt in names.items():
            self._hostname(spelt, self.addresses[folded])
        instances: dict[Name, tuple[str, Name]] = {}  # folded instance name -> service, name
        srv: dict[Name, tuple[int, Name]] = {}
        txt: dict[Name, dict[str, bytes]] = {}
        for rec in records:
            if rec.rtype == TYPE_PTR:
                target = msg.rdata_name(rec)
                if split_service(rec.name) is not None:
                    self._register(instances, target)
            elif rec.rtype == TYPE_SRV:
                self._register(instances, rec.name)
                srv.setdefault(_fold(rec.name), msg.srv(rec))
            elif rec.rtype == TYPE_TXT:
                self._register(instances, rec.name)
                txt.setdefault(_fold(rec.name), txt_pairs(msg.txt(rec)))
            elif rec.rtype == TYPE_HINFO:
                self._hinfo(rec)
        owners: dict[Name, tuple[str, float]] = {}
        for folded in instances:  # vendors first: a ``ty`` elsewhere loses the vendor name
            found = srv.get(folded)
            owners[folded] = self._owner(found[1] if found else None)
            vendor = _vendor(txt.get(folded, {}))
            if vendor and len(self.vendors) < MAX_VENDOR_HOSTS:
                self.vendors.setdefault(owners[folded][0], vendor)
        for folded, (service, instance) in instances.items():
            found = srv.get(folded)
            host, factor = owners[folded]
            port = found[0] if found else None
            self._instance(host, factor, service, instance, port, txt.get(folded, {}))

    def _register(self, instances: dict[Name, tuple[str, Name]], name: Name) -> None:
        split = split_service(name)
        if split is not None and split[1]:
            instances.setdefault(_fold(name), (split[0], split[1]))

    def _owner(self, host_name: Name | None) -> tuple[str, float]:
        """The host whose service this is, and the factor on the confidence of its facts."""
        if host_name is None or self.sender_ip is None:
            return self.sender, 1.0
        addrs = self.addresses.get(_fold(host_name), [])
        if not addrs or self.sender_ip in addrs:
            return self.sender, 1.0
        same = [a for a in addrs if a.version == self.sender_ip.version]
        return (str(same[0]), PROXY_FACTOR) if same else (self.sender, 1.0)

    def _hostname(self, name: Name, addrs: list[IP]) -> None:
        value = host_label(name)
        if not value:
            return
        if self.sender_ip is None or self.sender_ip in addrs:
            self.emit("mdns.hostname", self.sender, value, OWN_ADDRESS_CONFIDENCE)
            return
        for addr in addrs:
            if addr.version == self.sender_ip.version:
                self.emit("mdns.hostname", str(addr), value, OTHER_ADDRESS_CONFIDENCE)

    def _hinfo(self, rec: Record) -> None:
        strings = self.msg.character_strings(rec, 2)
        if strings:
            host, _ = self._owner(rec.name)
            self.emit("mdns.hinfo", host, "; ".join(clean_text(s, 64) for s in strings), 1.0)

    def _instance(
        self,
        host: str,
        factor: float,
        service: str,
        instance: Name,
        port: int | None,
        txt: dict[str, bytes],
    ) -> None:
        self.emit("mdns.service", host, service, 1.0 * factor, port)
        row = services().get(service)
        if row is not None and row.device_type:
            self.emit("mdns.device_type", host, row.device_type, row.confidence * factor)
        if service == DICOM_SERVICE:
            raw = txt.get(AE_TITLE_KEY)
            title = clean_text(raw, 16) if raw else name_text(instance, lower=False)[:16]
            self.emit("mdns.dicom_ae_title", host, title.strip(), 1.0 * factor, port)
        vendor = _vendor(txt)
        if vendor:
            self.emit("mdns.vendor", host, vendor, VENDOR_CONFIDENCE * factor)
        known = vendor or self.vendors.get(host)
        for key, conf in MODEL_KEYS:
            raw = txt.get(key)
            model = model_value(key, raw, known) if raw else ""
            if model:
                self.emit("mdns.model", host, model, conf * factor)
                self._known_model(host, model, factor)
                break

    def _known_model(self, host: str, model: str, factor: float) -> None:
        for row in model_patterns():
            if row.pattern.search(model):
                if row.vendor:
                    self.emit("mdns.vendor", host, row.vendor, row.confidence * factor)
                if row.device_type:
                    self.emit("mdns.device_type", host, row.device_type, row.confidence * factor)
                return


def _vendor(txt: dict[str, bytes]) -> str | None:
    return next((clean_text(txt[k]) for k in VENDOR_KEYS if txt.get(k)), None)


def _ip(text: str) -> IP | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


SPEC = ParserSpec(
    name="mdns", transport="udp", probe=probe, factory=MdnsParser, port_hints=PORT_HINTS
)

__all__ = ["SPEC", "MdnsParser", "probe", "services", "split_service", "txt_pairs"]
