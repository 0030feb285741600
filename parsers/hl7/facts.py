"""From allow-listed field values to facts: evidence, roles and classification claims.

Input is a *view* of one cut message: its allow-listed segments in order, each a map
from field position to repetitions of decoded components (built either by the cutter
or by hl7apy, see ``signature``). Output facts name their subject symbolically
(``SENDER``, ``RECEIVER`` or a named device ``device:eui64:<HEX>`` /
``device:serial:<vendor>:<serial>``) so one interpretation serves every flow and
every message with the same signature. Claim kinds follow ``parsers.vocabulary``.

Where a device is named without an instance identifier (OBX-18 = "Hospira Plum A+",
as in the tapirx captures), the facts go to the sender, with lower confidence: the
sender is the device itself or the gateway that speaks for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parsers.hl7.mdc import Knowledge
from parsers.vocabulary import NAMED_DEVICE_PREFIX

SENDER, RECEIVER = "sender", "receiver"
EUI_TYPES = frozenset({"EUI-64", "EUI64"})
UNNAMED_DEVICE_FACTOR = 0.75  # claims about a device that has no id of its own go to the sender
_HEX16 = re.compile(r"^[0-9A-Fa-f]{16}$")
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]")

Components = list[str]
Repetitions = list[Components]
SegmentView = tuple[str, dict[int, Repetitions]]
View = tuple[SegmentView, ...]


@dataclass(frozen=True, slots=True)
class Fact:
    subject: str  # SENDER, RECEIVER or "device:..."
    kind: str  # "hl7.<field>"
    value: str  # for hl7.reached_via: SENDER, replaced by the sender's IP
    raw: str | None = None
    confidence: float = 1.0


@dataclass(frozen=True, slots=True)
class Interpretation:
    facts: tuple[Fact, ...]
    message_type: str  # "ORU^R01", "ACK", "FHS" ...
    is_ack: bool


def _c(comps: Components, i: int) -> str:
    return comps[i] if i < len(comps) else ""


def _joined(comps: Components) -> str:
    text = "^".join(comps)
    return text.rstrip("^")


def _first(seg: SegmentView, pos: int) -> Components:
    reps = seg[1].get(pos)
    return reps[0] if reps else []


class _Builder:
    def __init__(self, knowledge: Knowledge) -> None:
        self.k = knowledge
        self._facts: dict[tuple[str, str, str], Fact] = {}
        self.named_devices: set[str] = set()

    def add(
        self, subject: str, kind: str, value: str, raw: str | None = None, conf: float = 1.0
    ) -> None:
        if value:
            raw = raw if raw != value else None
            fact = Fact(subject, f"hl7.{kind}", value, raw, round(conf, 3))
            key = (subject, fact.kind, value)
            old = self._facts.get(key)
            if old is None or old.confidence < fact.confidence:
                self._facts[key] = fact  # one fact per key, the strongest claim wins

    @property
    def facts(self) -> list[Fact]:
        return list(self._facts.values())

    def hd(self, subject: str, kind: str, comps: Components) -> str:
        value = _c(comps, 0) or _c(comps, 1)
        self.add(subject, kind, value, _joined(comps))
        return value

    def claims(
        self,
        subject: str,
        device_type: str,
        vendor: str,
        model: str,
        conf: float,
    ) -> None:
        self.add(subject, "device_type", device_type, conf=conf)
        self.add(subject, "vendor", vendor, conf=conf)
        self.add(subject, "model", model, conf=conf)

    def equipment(self, comps: Components, kind: str = "equipment_id") -> str:
        """One EI naming a device; returns the subject its facts went to."""
        entity, namespace = _c(comps, 0), _c(comps, 1)
        universal, utype = _c(comps, 2), _c(comps, 3).upper()
        eui = ""
        if utype in EUI_TYPES and _HEX16.match(universal):
            eui = universal.upper()
        elif _HEX16.match(entity) and (namespace.upper() in EUI_TYPES or utype in EUI_TYPES):
            eui = entity.upper()
        label = entity or universal
        hit = self.k.match("equipment", label) or self.k.match("equipment", namespace)
        vendor = hit.vendor if hit else ""
        if not vendor and namespace and namespace.upper() not in EUI_TYPES:
            ns_hit = self.k.match("oui", namespace)
            vendor = ns_hit.vendor if ns_hit else namespace
        oui = self.k.oui_vendor(eui) if eui else None
        if oui and not vendor:
            vendor = oui[0]
        serial = ""
        if "_" in entity and hit is not None:
            serial = entity.split("_", 1)[1]
        if eui:
            subject = f"{NAMED_DEVICE_PREFIX}eui64:{eui}"
        elif serial and vendor:
            subject = f"{NAMED_DEVICE_PREFIX}serial:{_SAFE_ID.sub('_', vendor)}:{serial}"
        else:
            subject = SENDER
        factor = 1.0 if subject != SENDER else UNNAMED_DEVICE_FACTOR
        self.add(subject, kind, label, _joined(comps), 1.0)
        if subject != SENDER:
            self.named_devices.add(subject)
            self.add(subject, "reached_via", SENDER)
            if eui:
                self.add(subject, "eui64", eui)
        if hit:
            self.claims(subject, hit.device_type, hit.vendor, hit.model, hit.confidence * factor)
        if vendor:
            self.add(subject, "vendor", vendor, conf=0.7 * factor)
        if oui:
            self.add(subject, "vendor", oui[0], oui[1], conf=0.8 * factor)
        if serial:
            self.add(subject, "serial", serial, conf=0.7 * factor)
        return subject

    def mdc(self, subject: str, comps: Components) -> None:
        code = self.k.mdc.get(_c(comps, 0))
        if code is None:
            return
        factor = 1.0 if subject != SENDER else UNNAMED_DEVICE_FACTOR
        self.add(subject, "mdc_code", code.code, _joined(comps))
        self.add(subject, "device_type", code.device_type, conf=code.confidence * factor)


# message code -> (role of the sender, role of the receiver, claim for sender, for receiver)
_ROLES: dict[str, tuple[str, str, tuple[str, float] | None, tuple[str, float] | None]] = {
    "ADT": ("adt-source", "adt-receiver", ("his", 0.5), None),
    "SIU": ("scheduling-source", "scheduling-receiver", ("his", 0.3), None),
    "MDM": ("document-source", "document-receiver", None, None),
    "DFT": ("billing-source", "billing-receiver", ("his", 0.3), None),
    "BAR": ("billing-source", "billing-receiver", ("his", 0.3), None),
    "ORM": ("order-placer", "order-filler", ("his", 0.3), None),
    "OMG": ("order-placer", "order-filler", ("his", 0.3), None),
    "OML": ("order-placer", "order-filler", ("his", 0.3), ("lis", 0.4)),
    "OMI": ("order-placer", "order-filler", ("his", 0.3), ("ris", 0.4)),
    "ORL": ("order-filler", "order-placer", ("lis", 0.4), None),
    "ORI": ("order-filler", "order-placer", ("ris", 0.4), None),
    "OUL": ("result-sender", "result-receiver", ("lis", 0.5), None),
    "RDE": ("pharmacy-order-placer", "pharmacy-order-receiver", None, None),
    "RGV": ("infusion-order-placer", "infusion-order-consumer", None, ("medical-gateway", 0.4)),
    "QBP": ("query-sender", "query-responder", None, None),
    "QRY": ("query-sender", "query-responder", None, None),
    "RSP": ("query-responder", "query-sender", None, None),
    "ACK": ("acknowledger", "", None, None),
}


def interpret(view: View, knowledge: Knowledge) -> Interpretation:
    """Facts for one cut message (see module docstring)."""
    b = _Builder(knowledge)
    header = view[0]
    name = header[0]
    if name != "MSH":
        b.hd(SENDER, "sending_application", _first(header, 3))
        b.hd(SENDER, "sending_facility", _first(header, 4))
        b.hd(RECEIVER, "receiving_application", _first(header, 5))
        b.hd(RECEIVER, "receiving_facility", _first(header, 6))
        b.add(SENDER, "role", "batch-sender")
        return Interpretation(tuple(b.facts), name, False)

    app = b.hd(SENDER, "sending_application", _first(header, 3))
    b.hd(SENDER, "sending_facility", _first(header, 4))
    b.hd(RECEIVER, "receiving_application", _first(header, 5))
    b.hd(RECEIVER, "receiving_facility", _first(header, 6))
    mt = _first(header, 9)
    code, event = _c(mt, 0).upper(), _c(mt, 1).upper()
    message_type = f"{code}^{event}" if event else code
    b.add(SENDER, "message_type", message_type, _joined(mt))
    b.add(SENDER, "version", _c(_first(header, 12), 0))
    for rep in header[1].get(18, []):
        b.add(SENDER, "charset", _c(rep, 0))
    profiles = [_c(rep, 0) for rep in header[1].get(21, [])]
    for rep, profile in zip(header[1].get(21, []), profiles, strict=True):
        b.add(SENDER, "message_profile", profile, _joined(rep))

    last_device = SENDER
    is_ack = code == "ACK"
    for seg in view[1:]:
        seg_name, fields = seg
        if seg_name == "SFT":
            vendor = _c(_first(seg, 1), 0)
            version = _c(_first(seg, 2), 0)
            product = _c(_first(seg, 3), 0)
            b.add(SENDER, "sft_vendor", vendor, _joined(_first(seg, 1)))
            b.add(SENDER, "sft_version", version)
            b.add(SENDER, "sft_product", product)
            canonical = knowledge.match("oui", vendor) if vendor else None
            b.add(SENDER, "vendor", canonical.vendor if canonical else vendor, vendor, conf=0.4)
            b.add(SENDER, "software_version", version, conf=0.5)
        elif seg_name == "OBR":
            last_device = b.equipment(_first(seg, 3))
        elif seg_name in ("OBX", "EQU"):
            pos = 18 if seg_name == "OBX" else 1
            subject = last_device
            for rep in fields.get(pos, []):
                subject = b.equipment(rep)
            if 3 in fields:
                b.mdc(subject, _first(seg, 3))
        elif seg_name == "PRT":
            subject = SENDER
            for rep in fields.get(10, []):
                subject = b.equipment(rep)
            for rep in fields.get(16, []):
                b.add(subject, "prt_udi", _c(rep, 0), _joined(rep))
                hit = knowledge.match("equipment", _c(rep, 0))
                if hit:
                    f = 1.0 if subject != SENDER else UNNAMED_DEVICE_FACTOR
                    b.claims(subject, hit.device_type, hit.vendor, hit.model, hit.confidence * f)
            serial = _c(_first(seg, 20), 0)
            b.add(subject, "serial", serial, conf=0.8)
            b.mdc(subject, _first(seg, 22))
        elif seg_name == "MSA":
            b.add(SENDER, "ack_code", _c(_first(seg, 1), 0).upper())
            is_ack = True

    # Roles and the claims they support.
    pcd = any(p.upper().startswith("IHE_PCD") or "PCD" in p.upper() for p in profiles)
    device_data = pcd or bool(b.named_devices) or any(f.kind == "hl7.mdc_code" for f in b.facts)
    if code == "ORU":
        if event in ("R40", "R41"):
            b.add(SENDER, "role", "alarm-source")
            b.add(RECEIVER, "role", "alarm-manager")
            b.add(SENDER, "device_type", "medical-gateway", conf=0.5)
        elif device_data:
            b.add(SENDER, "role", "device-data-sender")
            b.add(RECEIVER, "role", "device-data-consumer")
            b.add(SENDER, "device_type", "medical-gateway", conf=0.6 if b.named_devices else 0.4)
        else:
            b.add(SENDER, "role", "result-sender")
            b.add(RECEIVER, "role", "result-receiver")
            b.add(SENDER, "device_type", "lis", conf=0.3)
    elif code in _ROLES:
        sender_role, receiver_role, s_claim, r_claim = _ROLES[code]
        b.add(SENDER, "role", sender_role)
        if receiver_role:
            b.add(RECEIVER, "role", receiver_role)
        if s_claim:
            b.add(SENDER, "device_type", s_claim[0], conf=s_claim[1])
        if r_claim:
            b.add(RECEIVER, "device_type", r_claim[0], conf=r_claim[1])
    elif is_ack:
        b.add(SENDER, "role", "acknowledger")
    hit = knowledge.match("msh3", app) if app else None
    if hit:
        b.claims(SENDER, hit.device_type, hit.vendor, hit.model, hit.confidence)
    return Interpretation(tuple(b.facts), message_type, is_ack)
