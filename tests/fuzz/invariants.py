"""What every fuzz target checks besides "nothing raised": the output contract.

* ``check_observations``: every observation is an ``Observation`` of an allow-listed kind
  for the parser that made it (``ALLOWED_KINDS``), with text fields that are ``str`` and
  no ``CANARY`` anywhere in them.
* ``check_bounded``: a parser's buffers and memo tables stay within their named limits
  (``MAX_BUFFERED``, ``MAX_FACTS``...), whatever it was fed.
* ``scrub``: the harness removes every ``CANARY`` the fuzzer wrote itself, then places its
  own canaries only where patient data lives (HL7 PID/NK1/PV1/NTE segments and OBX-5,
  HTTP request targets and bodies, DICOM group 0010 elements): a canary in the output then
  is a leak, never a fuzzer's legitimate manufacturer name.

A violation raises ``InvariantError`` (an ``AssertionError``), which atheris reports as a
crash and the replay tests as a failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from parsers.base import MAX_BUFFERED, Observation, StreamParser

CANARY = b"CANARY"
_CANARY_ANY_CASE = re.compile(rb"(?i)canary")


class InvariantError(AssertionError):
    """A fuzz target's contract was broken (not a crash of the code under test)."""


def _kinds(prefix: str, *fields: str) -> frozenset[str]:
    return frozenset(f"{prefix}.{f}" for f in fields)


# Every kind each parser may emit: from the parsers' docstrings and code, and every kind seen
# in pcaps/. A new kind is a reviewed addition here, not something an input can invent.
ALLOWED_KINDS: dict[str, frozenset[str]] = {
    "dicom": _kinds(
        "dicom", "abort", "abstract_syntax", "accepted_abstract_syntax", "association_rejected",
        "async_ops_window", "called_ae_title", "calling_ae_title", "command", "device_type",
        "hostname", "implementation_class_uid", "implementation_version_name", "manufacturer",
        "max_pdu_length", "modality", "model", "model_name", "performed_station_ae_title",
        "proposed_transfer_syntax", "protocol_version", "rejected_abstract_syntax", "release",
        "role", "role_selection", "scan", "scheduled_modality", "scheduled_station_ae_title",
        "serial", "serial_number", "software_version", "software_versions", "station_name",
        "status", "toolkit", "transfer_syntax", "user_identity_response", "user_identity_type",
        "vendor",
    ),
    "hl7": _kinds(
        "hl7", "ack_code", "charset", "device_type", "equipment_id", "eui64", "mdc_code",
        "message_profile", "message_type", "model", "prt_udi", "reached_via",
        "receiving_application", "receiving_facility", "role", "sending_application",
        "sending_facility", "serial", "sft_product", "sft_vendor", "sft_version",
        "software_version", "vendor", "version",
    ),
    "http": _kinds(
        "http", "device_type", "host", "hostname", "model", "os", "server", "user_agent",
        "vendor", "x_powered_by",
    ),
    "tls": _kinds(
        "tls", "alert", "alpn", "alpn_offered", "cert_issuer_cn", "cert_issuer_o",
        "cert_self_signed", "cert_subject_cn", "cert_subject_o", "cert_subject_ou",
        "cert_subject_serial", "cipher", "client_hello_format", "client_versions", "hostname",
        "ja3", "ja3_full", "ja3s", "ja3s_full", "ja4", "model", "sni", "vendor", "version",
    ),
    "dhcp": _kinds(
        "dhcp", "assigned_ip", "client_id", "client_ip", "device_type", "duid", "fqdn",
        "hostname", "model", "mud_url", "offered_ip", "option_request", "os",
        "parameter_request_list", "requested_ip", "role", "user_class", "vendor",
        "vendor_class", "vendor_enterprise",
    ),
    "intellivue": _kinds(
        "intellivue", "announced_ip", "data_export_port", "device_type", "location", "mac",
        "model", "part_number", "role", "serial", "software_version", "system_id",
        "system_type", "vendor", "wireless",
    ),
    "carescape": _kinds(
        "carescape", "announced_ip", "device_type", "location", "role", "vendor",
    ),
    "netbios": _kinds("netbios", "device_type", "hostname", "mac", "role", "workgroup"),
    "mdns": _kinds(
        "mdns", "browse", "device_type", "dicom_ae_title", "hinfo", "hostname", "model",
        "service", "vendor",
    ),
    "dns": _kinds("dns", "hostname", "name", "os_hint", "query")
    | _kinds("llmnr", "hostname", "name", "os_hint", "query"),
    "ssdp": _kinds(
        "ssdp", "device_type", "device_urn", "location", "server", "service_urn",
        "user_agent", "uuid",
    ),
    "snmp": _kinds(
        "snmp", "agent_software", "device_type", "enterprise", "hostname", "model", "os",
        "role", "serial", "software_version", "sys_descr", "sys_object_id", "vendor",
    ),
    "lldp": _kinds(
        "lldp", "asset_id", "capabilities", "capabilities_supported", "chassis_id",
        "device_type", "firmware_revision", "hardware_revision", "hostname",
        "management_address", "manufacturer", "med_device_class", "med_network_policy",
        "model", "model_name", "mud_url", "native_vlan", "os", "port_description", "port_id",
        "serial", "serial_number", "software_revision", "software_version",
        "system_description", "system_name", "vendor", "vlan_name",
    ),
    "cdp": _kinds(
        "cdp", "address", "capabilities", "device_id", "device_type", "hostname",
        "management_address", "model", "native_vlan", "os", "platform", "port_id",
        "software_version", "software_version_string", "system_name", "vendor", "voice_vlan",
        "vtp_domain",
    ),
    "tcp_syn": _kinds("tcp", "ja4t", "os_family", "os_label", "syn_signature"),
}
# C0, DEL, C1 and the Unicode line/paragraph separators: they forge lines in logs, syslog
# and CSV, and move terminals. Observation text goes to all of those.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_TEXT = 4096  # no observation field is anywhere near this long; a longer one is a leak


def check_observations(parser: str, observations: Iterable[object]) -> None:
    """Raise InvariantError unless every item is an allow-listed, canary-free Observation."""
    allowed = ALLOWED_KINDS[parser]
    for obs in observations:
        if not isinstance(obs, Observation):
            raise InvariantError(f"{parser}: emitted {type(obs).__name__}, not an Observation")
        if obs.kind not in allowed:
            raise InvariantError(f"{parser}: kind {obs.kind!r} is not allow-listed")
        texts: list[object] = [obs.kind, obs.host, obs.value]
        if obs.raw is not None:
            texts.append(obs.raw)
        for text in texts:
            if not isinstance(text, str):
                raise InvariantError(f"{parser}: {obs.kind} has a {type(text).__name__} field")
            if len(text) > MAX_TEXT:
                raise InvariantError(f"{parser}: {obs.kind} field of {len(text)} characters")
            if "canary" in text.lower():
                raise InvariantError(f"{parser}: canary patient data in {obs.kind}")
            bad = _CONTROL.search(text)
            if bad:
                raise InvariantError(
                    f"{parser}: control character U+{ord(bad.group()):04X} in {obs.kind}")
        if not 0.0 <= obs.confidence <= 1.0:
            raise InvariantError(f"{parser}: {obs.kind} confidence {obs.confidence}")
        if obs.port is not None and not 0 <= obs.port <= 65535:
            raise InvariantError(f"{parser}: {obs.kind} port {obs.port}")


def scrub(data: bytes) -> bytes:
    """The fuzzer's bytes without any canary of its own (same length: framing holds)."""
    return _CANARY_ANY_CASE.sub(b"CANARZ", data) if b"anary" in data.lower() else data


# --- canary placement: only where a protocol carries patient data ------------------------------
# HL7: a segment starts after CR or LF (the cutter splits on both). PID, NK1, PV1 and NTE are
# never allow-listed; an OBX gets a complete OBX before it whose OBX-5 holds the canary.
_HL7_PATIENT = re.compile(rb"(?<=[\r\n])(PID|NK1|PV1|NTE)\|")
_HL7_OBX = re.compile(rb"(?<=[\r\n])OBX\|")
HL7_OBX5 = b"OBX|1|ST|150456^MDC_PULS_OXIM_SAT_O2^MDC||CANARY-OBX5-VALUE\r"


def hl7_canaries(data: bytes) -> bytes:
    data = _HL7_PATIENT.sub(rb"\1|1||CANARY-ID-4711^^^HOSP||CANARY^PATIENT^X|", data)
    return _HL7_OBX.sub(HL7_OBX5.replace(b"\\", b"\\\\") + b"OBX|", data)


# HTTP: a message start (start of a direction, or right after a blank line) that is a request
# line gets a query with the canary; the bytes right after a header block (a body, or the next
# message) get a canary line in front of them when the fuzzer put a body there.
_HTTP_REQUEST = re.compile(rb"(?<=\r\n\r\n)([A-Z]{3,7} /[^ ?\r\n]*)")
_HTTP_FIRST = re.compile(rb"\A([A-Z]{3,7} /[^ ?\r\n]*)")
HTTP_QUERY = rb"\1?patient=CANARY-ID-4711"


def http_canaries(data: bytes, stream_start: bool) -> bytes:
    """``stream_start``: ``data`` is the first of its direction (a message starts there)."""
    if stream_start:
        data = _HTTP_FIRST.sub(HTTP_QUERY, data)
    return _HTTP_REQUEST.sub(HTTP_QUERY, data)


# --- bounded memory ----------------------------------------------------------------------------


def _size(value: Any) -> int:
    return len(value) if hasattr(value, "__len__") else 0


def check_bounded(parser: object) -> None:
    """Each named limit of the parser holds (see every parser's MAX_* constants)."""
    name = getattr(parser, "name", type(parser).__name__)
    problems: list[str] = []

    def limit(what: str, size: int, bound: int) -> None:
        if size > bound:
            problems.append(f"{what} holds {size} > {bound}")

    if isinstance(parser, StreamParser):
        for direction, buf in parser._buf.items():
            limit(f"buffer {direction.value}", len(buf), MAX_BUFFERED)
    module = type(parser).__module__
    if name == "dicom":
        from parsers.dicom import parser as dp

        p: Any = parser
        limit("_held", p._held, dp.MAX_REASSEMBLY)
        limit("_frag", sum(len(b) for b in p._frag.values()), dp.MAX_REASSEMBLY)
        limit("_facts", len(p._facts), dp.MAX_FACTS)
        limit("_proposed", len(p._proposed), 256)
        limit("_accepted", len(p._accepted), 256)
        limit("_pending", len(p._pending), 2 * 256)  # (direction, context id byte)
        limit("_capped", len(p._capped), 2 * 256 * 2)
        limit("_frag keys", len(p._frag), 2 * 256 * 2)
    elif name == "hl7":
        from parsers.hl7 import parser as hp
        from parsers.hl7 import signature as sig

        p = parser
        limit("_seen", len(p._seen), hp.MAX_FACTS_PER_FLOW)
        for d, sat in p._satisfied.items():
            limit(f"_satisfied {d.value}", len(sat), hp.MAX_SATISFIED_PER_DIRECTION)
        cache = p.cache
        limit("cache._entries", len(cache._entries), sig.MAX_SIGNATURES)
        limit("cache._frames", len(cache._frames), sig.MAX_FRAME_KEYS)
        limit("cache._shapes", len(cache._shapes), sig.MAX_SHAPES)
    elif name == "http":
        from parsers import http

        p = parser
        limit("_facts", len(p._facts), http.MAX_FACTS)
        limit("_methods", len(p._methods), http.MAX_PENDING)
        for d, side in p._side.items():
            limit(f"messages {d.value}", side.messages, http.MAX_MESSAGES + 1)
    elif name == "tls":
        from parsers import tls

        p = parser
        limit("_facts", len(p._facts), tls.MAX_FACTS)
        for d, side in p._side.items():
            limit(f"handshake {d.value}", len(side.handshake), tls.MAX_HANDSHAKE + tls.MAX_RECORD)
    elif name == "dhcp":
        from parsers import dhcp

        limit("_facts", len(parser._facts), dhcp.MAX_FACTS)  # type: ignore[attr-defined]
    elif name in ("intellivue", "carescape"):
        from parsers.vendor import base

        limit("_seen", len(parser._seen), base.MAX_FACTS_PER_FLOW)  # type: ignore[attr-defined]
    elif name == "snmp":
        from parsers import snmp

        p = parser
        limit("_entity", len(p._entity), snmp.MAX_TABLE_ROWS)
        limit("_hr", len(p._hr), snmp.MAX_TABLE_ROWS)
        limit("_vendor", len(p._vendor), 2)
    elif name == "mdns":
        from parsers import mdns

        p = parser
        limit("_browsed", len(p._browsed), mdns.MAX_BROWSE_PER_FLOW)
        limit("_vendors", len(p._vendors), mdns.MAX_VENDOR_HOSTS)
    elif name == "dns":
        from parsers import dns

        limit("_queries", len(parser._queries), dns.MAX_QUERY_NAMES_PER_FLOW)  # type: ignore[attr-defined]
    facts = getattr(parser, "facts", None)
    if facts is not None and hasattr(facts, "_seen"):
        from parsers import factlog

        limit("facts._seen", len(facts._seen), factlog.MAX_FACTS_PER_FLOW)
    if problems:
        raise InvariantError(f"{name} ({module}): " + "; ".join(problems))
