"""DICOM Upper Layer stream parser (PS3.8 section 9) with DIMSE (PS3.7) and device attributes.

Reads, per flow: the association (A-ASSOCIATE-RQ/-AC/-RJ, release, abort; see ``pdu``),
the DIMSE command of every message (``dimse``), and from the first ``DATASET_CAP`` bytes of
each data set only the allow-listed device elements (``DATA_SET_TAGS``, read by
``dataset``). PDVs are reassembled per direction and presentation context up to those caps;
the rest of each data set (pixel data, patient attributes) is dropped unread, and P-DATA-TF
PDUs larger than ``KEEP_PDATA_MAX`` are not even buffered: only their first
``PDATA_PREFIX`` bytes are looked at.

Never read or emitted: group 0010 and every element not in ``DATA_SET_TAGS``, query keys of
C-FIND/C-MOVE/C-GET requests, user-identity secrets. Every fact is emitted once per flow.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from parsers.base import (
    DIRECTIONS,
    TO_SERVER,
    Direction,
    FlowKey,
    Frame,
    Malformed,
    Observation,
    StreamParser,
)
from parsers.dicom import dataset as ds
from parsers.dicom import fingerprints as fp
from parsers.dicom.dimse import STATUS_PENDING, STATUS_SUCCESS, Command, decode_command
from parsers.dicom.pdu import (
    A_ABORT,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    A_ASSOCIATE_RQ,
    A_RELEASE_RP,
    A_RELEASE_RQ,
    P_DATA_TF,
    PC_RESULTS,
    PDU_HEADER_LEN,
    PDU_NAMES,
    USER_IDENTITY_TYPES,
    Associate,
    abort_text,
    decode_associate,
    decode_reject,
    frame_length,
    pdv_items,
    reject_text,
)

log = logging.getLogger(__name__)

DATASET_CAP = 16 * 1024  # bytes read from the start of each data set; device elements are early
COMMAND_CAP = 4 * 1024  # bytes read of a command set; the elements read are its first ones
MAX_REASSEMBLY = 64 * 1024  # bytes held for all unfinished PDV messages of one flow
KEEP_PDATA_MAX = PDU_HEADER_LEN + 64 * 1024  # P-DATA-TF up to this size is buffered whole
PDATA_PREFIX = PDU_HEADER_LEN + 6 + DATASET_CAP  # what is read of a larger one
MAX_PDATA_LEN = 16 * 1024 * 1024  # a P-DATA-TF length beyond this is not DICOM (0xFFFFFFFF)
MAX_FACTS = 2048  # distinct facts remembered per flow for de-duplication
COMMAND_SET_START = b"\0\0\0\0\x04\0\0\0"  # (0000,0000) UL length 4, first in a command set
RESYNC_MIN = 12  # bytes needed to judge a resync candidate (PDU header + PDV header)

# Allow-list for data sets (PS3.6 tags); nothing else is ever decoded.
SOP_CLASS_UID = 0x00080016
MODALITY = 0x00080060
MANUFACTURER = 0x00080070
STATION_NAME = 0x00081010
MODEL_NAME = 0x00081090
DEVICE_SERIAL = 0x00181000
SOFTWARE_VERSIONS = 0x00181020
SCHEDULED_STEP_SEQUENCE = 0x00400100
SCHEDULED_STATION_AE = 0x00400001
PERFORMED_STATION_AE = 0x00400241
DATA_SET_TAGS = frozenset(
    {SOP_CLASS_UID, MODALITY, MANUFACTURER, STATION_NAME, MODEL_NAME, DEVICE_SERIAL,
     SOFTWARE_VERSIONS, PERFORMED_STATION_AE}
)
NESTED_TAGS = {SCHEDULED_STEP_SEQUENCE: frozenset({SCHEDULED_STATION_AE, MODALITY})}
DEVICE_ELEMENTS = {  # element -> evidence suffix
    MODALITY: "modality",
    MANUFACTURER: "manufacturer",
    STATION_NAME: "station_name",
    MODEL_NAME: "model_name",
    DEVICE_SERIAL: "serial_number",
    SOFTWARE_VERSIONS: "software_versions",
}

# Confidences (0..1) of classification claims, and why.
CONF_MANUFACTURER = 0.8  # the equipment names itself; a forwarding gateway could mislead
CONF_MANUFACTURER_UNKNOWN = 0.6  # as above, but the string is not in the vendor table
CONF_MODEL = 0.8  # (0008,1090) as the equipment writes it
CONF_SERIAL = 0.7  # (0018,1000) is the device serial; often blank or a placeholder
CONF_SOFTWARE = 0.6  # (0018,1020) may list several components; kept verbatim
CONF_STATION_HOSTNAME = 0.3  # station names are often, not always, the host name
CONF_MODALITY_ELEMENT = 0.6  # (0008,0060) of an image the sender stores itself
CONF_MODALITY_SOP = 0.5  # storage SOP class: senders may be workstations or gateways
CONF_UID_ROOT_VENDOR = 0.4  # the DICOM stack's maker; an OEM may ship another vendor's stack
CONF_PACS_QR = 0.6  # answers C-FIND/C-MOVE/C-GET of query/retrieve: archives do
CONF_PACS_STORE = 0.3  # accepts stores: a PACS, but workstations and routers do too
CONF_PACS_COMMIT = 0.5  # storage commitment SCP: an archive that promises safekeeping
CONF_RIS_MWL = 0.7  # answers modality worklist queries: RIS or a worklist broker
CONF_RIS_MPPS = 0.3  # MPPS SCP: RIS, PACS or a broker
CONF_MODALITY_CLIENT = 0.4  # asks for a worklist / reports MPPS / commits: an acquisition device
CONF_SCAN = 0.5  # nmap dicom-ping defaults; an old dcmtk echoscu with defaults looks the same
CONF_SCAN_CONFIRMED = 0.7  # ... and then closed without any DIMSE exchange

# nmap nselib/dicom.lua defaults used by dicom-ping / dicom-brute.
NMAP_PING = ("ECHOSCU", "ANY-SCP", "1.2.276.0.7230010.3.0.3.6.2", "OFFIS_DCMTK_362")
VERIFICATION = "1.2.840.10008.1.1"

_Key = tuple[Direction, int, bool]  # direction, presentation context id, command?


class DicomParser(StreamParser):
    """One DICOM association (or what is seen of it) on one TCP flow."""

    name = "dicom"

    def __init__(self, flow: FlowKey) -> None:
        super().__init__(flow)
        self.stats: dict[str, int] = {}
        self._facts: dict[tuple[str, str, str], float] = {}
        self._rq_direction = Direction.TO_SERVER  # set again by the A-ASSOCIATE-RQ seen
        self._proposed: dict[int, str] = {}  # context id -> abstract syntax
        self._accepted: dict[int, str] = {}  # context id -> transfer syntax
        self._frag: dict[_Key, bytearray] = {}
        self._held = 0  # bytes in _frag
        self._capped: set[_Key] = set()  # over a cap: drop fragments until the last one
        self._desync = dict.fromkeys(DIRECTIONS, False)  # PDVs lost: drop until a last one
        self._pending: dict[tuple[Direction, int], Command] = {}
        self._scan_pattern = False
        self._dimse_seen = False

    @property
    def buffered(self) -> int:
        return super().buffered + self._held

    # ---- who is who -------------------------------------------------------------------
    def _requestor(self) -> str:
        to_server = self._rq_direction is TO_SERVER
        return self.flow.client if to_server else self.flow.server

    def _acceptor(self) -> str:
        to_server = self._rq_direction is TO_SERVER
        return self.flow.server if to_server else self.flow.client

    def _sender(self, direction: Direction) -> str:
        return self._requestor() if direction is self._rq_direction else self._acceptor()

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    def _obs(
        self,
        suffix: str,
        host: str,
        value: str,
        ts: float,
        confidence: float = 1.0,
        raw: str | None = None,
    ) -> Iterator[Observation]:
        """One fact, once per flow (again only if a later sighting is more certain)."""
        if not value:
            return
        key = (suffix, host, value)
        known = self._facts.get(key)
        if known is not None and known >= confidence:
            return
        if known is None and len(self._facts) >= MAX_FACTS:
            self._count("facts_dropped")
            return
        self._facts[key] = confidence
        port = self.flow.server_port if host == self.flow.server else None
        yield Observation(f"dicom.{suffix}", host, value, ts, port, raw, confidence)

    # ---- framing ----------------------------------------------------------------------
    def _frame(self, direction: Direction, buf: bytearray) -> Frame | None:
        if len(buf) < PDU_HEADER_LEN:
            return None
        if buf[1]:
            raise Malformed("PDU reserved byte is not zero")
        size = frame_length(buf[0], int.from_bytes(buf[2:6], "big"), MAX_PDATA_LEN)
        if buf[0] != P_DATA_TF or size <= KEEP_PDATA_MAX:
            return Frame(size)
        if len(buf) < PDATA_PREFIX:
            return None  # wait for the prefix that is read; the rest is skipped unbuffered
        return Frame(size, keep=False)

    def _skipped(
        self, direction: Direction, head: bytes, size: int, ts: float
    ) -> Iterable[Observation]:
        self._count("pdata_skipped")
        return list(self._pdata(direction, head[:PDATA_PREFIX], size, ts))

    def _decode(self, direction: Direction, pdu: bytes, ts: float) -> Iterable[Observation]:
        kind = pdu[0]
        if kind == P_DATA_TF:
            return list(self._pdata(direction, pdu, len(pdu), ts))
        if kind in (A_ASSOCIATE_RQ, A_ASSOCIATE_AC):
            return list(self._associate(direction, decode_associate(pdu), ts))
        sender = self._sender(direction)
        if kind == A_ASSOCIATE_RJ:
            text = reject_text(*decode_reject(pdu))
            return list(self._obs("association_rejected", sender, text, ts))
        if kind == A_ABORT:
            return list(self._obs("abort", sender, abort_text(pdu[8], pdu[9]), ts))
        if kind in (A_RELEASE_RQ, A_RELEASE_RP):
            return list(self._obs("release", sender, PDU_NAMES[kind], ts))
        raise Malformed(f"PDU type 0x{kind:02x}")  # unreachable: _frame checked it

    def _resync_offset(self, buf: bytearray) -> int | None:
        """A P-DATA-TF header whose first PDV item fits it, or a release/abort PDU."""
        for i in range(max(0, len(buf) - RESYNC_MIN + 1)):
            kind = buf[i]
            if kind < P_DATA_TF or kind > A_ABORT or buf[i + 1]:
                continue
            length = int.from_bytes(buf[i + 2 : i + 6], "big")
            if kind != P_DATA_TF:
                if length == 4 and buf[i + 6 : i + 8] == b"\0\0":
                    return i
                continue
            pdv = int.from_bytes(buf[i + 6 : i + 10], "big")
            ctx, header = buf[i + 10], buf[i + 11]
            if 6 <= length <= MAX_PDATA_LEN and 2 <= pdv <= length - 4 and ctx & 1 and header < 4:
                return i
        return None

    def gap(self, direction: Direction, size: int) -> None:
        super().gap(direction, size)
        if self._lost_sync[direction]:
            self._drop_messages(direction)

    def eof(self, direction: Direction) -> list[Observation]:
        out = super().eof(direction)
        if self._scan_pattern and not self._dimse_seen and direction is self._rq_direction:
            # dicom-ping associates and hangs up; a real echoscu sends a C-ECHO-RQ first.
            out += self._obs(
                "device_type", self._requestor(), "dicom-scanner", 0.0, CONF_SCAN_CONFIRMED
            )
        return out

    # ---- association ------------------------------------------------------------------
    def _associate(self, direction: Direction, a: Associate, ts: float) -> Iterator[Observation]:
        if a.pdu_type == A_ASSOCIATE_RQ:
            self._rq_direction = direction
            self._proposed = {pc.context_id: pc.abstract_syntax for pc in a.contexts}
        me = self._sender(direction)
        yield from self._obs("calling_ae_title", self._requestor(), a.calling_ae, ts)
        yield from self._obs("called_ae_title", self._acceptor(), a.called_ae, ts)
        if a.protocol_version != 1:
            yield from self._obs("protocol_version", me, str(a.protocol_version), ts)
        yield from self._obs("implementation_class_uid", me, a.implementation_class_uid, ts)
        yield from self._obs("implementation_version_name", me, a.implementation_version_name, ts)
        if a.max_pdu_length is not None:
            yield from self._obs("max_pdu_length", me, str(a.max_pdu_length), ts)
        if a.async_ops is not None:
            yield from self._obs("async_ops_window", me, f"{a.async_ops[0]}/{a.async_ops[1]}", ts)
        for role in a.roles:
            value = f"{role.sop_class} scu={int(role.scu)} scp={int(role.scp)}"
            yield from self._obs("role_selection", me, value, ts)
        if a.user_identity_type is not None:
            kind = USER_IDENTITY_TYPES.get(a.user_identity_type, str(a.user_identity_type))
            yield from self._obs("user_identity_type", me, kind, ts)
        if a.user_identity_ac:
            yield from self._obs("user_identity_response", me, "server-response", ts)
        yield from self._implementation(me, a.implementation_class_uid, ts)
        if a.pdu_type == A_ASSOCIATE_RQ:
            for pc in a.contexts:
                yield from self._obs("abstract_syntax", me, pc.abstract_syntax, ts)
                for ts_uid in pc.transfer_syntaxes:
                    yield from self._obs("proposed_transfer_syntax", me, ts_uid, ts)
            yield from self._scan(a, ts)
            return
        for pc in a.contexts:
            abstract = self._proposed.get(pc.context_id, "")
            if pc.result == 0 and pc.transfer_syntaxes:
                self._accepted[pc.context_id] = pc.transfer_syntaxes[0]
                yield from self._obs("accepted_abstract_syntax", me, abstract, ts)
                yield from self._obs("transfer_syntax", me, pc.transfer_syntaxes[0], ts)
            elif abstract and pc.result is not None:
                why = PC_RESULTS.get(pc.result, str(pc.result))
                yield from self._obs("rejected_abstract_syntax", me, f"{abstract} {why}", ts)

    def _implementation(self, host: str, uid: str, ts: float) -> Iterator[Observation]:
        root = fp.uid_root(uid) if uid else None
        if root is None:
            return
        if root.kind == "toolkit":
            yield from self._obs("toolkit", host, root.name, ts)  # a library, not a vendor
        else:
            yield from self._obs("vendor", host, root.name, ts, CONF_UID_ROOT_VENDOR, uid)

    def _scan(self, a: Associate, ts: float) -> Iterator[Observation]:
        pattern = (a.calling_ae, a.called_ae, a.implementation_class_uid,
                   a.implementation_version_name)
        only_echo = [pc.abstract_syntax for pc in a.contexts] == [VERIFICATION]
        if pattern == NMAP_PING and only_echo:
            self._scan_pattern = True
            host = self._requestor()
            yield from self._obs("scan", host, "nmap dicom-ping defaults", ts, CONF_SCAN)
            yield from self._obs("device_type", host, "dicom-scanner", ts, CONF_SCAN)

    # ---- P-DATA-TF --------------------------------------------------------------------
    def _pdata(
        self, direction: Direction, pdu: bytes, size: int, ts: float
    ) -> Iterator[Observation]:
        """PDV items of one P-DATA-TF PDU of ``size`` bytes, of which ``pdu`` is a prefix."""
        partial = len(pdu) < size
        seen_all = not partial
        for ctx, header, fragment, stop in pdv_items(pdu, len(pdu) if partial else None):
            if stop > size:
                raise Malformed("PDV item overruns the PDU")
            if stop > len(pdu):  # cut by the prefix: the rest of this item is skipped
                seen_all = stop == size
                yield from self._pdv(direction, ctx, header, fragment, False, ts)
                break
            yield from self._pdv(direction, ctx, header, fragment, True, ts)
        else:
            seen_all = True if not partial else seen_all
        if partial and not seen_all:
            self._count("pdv_lost")
            self._drop_messages(direction)

    def _drop_messages(self, direction: Direction) -> None:
        """PDV bytes of ``direction`` were lost: forget unfinished messages, wait for a last."""
        for key in [k for k in self._frag if k[0] is direction]:
            self._held -= len(self._frag.pop(key))
        self._capped = {k for k in self._capped if k[0] is not direction}
        self._pending = {k: v for k, v in self._pending.items() if k[0] is not direction}
        self._desync[direction] = True

    def _pdv(
        self, direction: Direction, ctx: int, header: int, fragment: bytes, whole: bool, ts: float
    ) -> Iterator[Observation]:
        is_command, last = bool(header & 1), bool(header & 2)
        if self._desync[direction]:
            fresh = is_command and fragment.startswith(COMMAND_SET_START)
            if not (fresh and whole):
                if last and whole:
                    self._desync[direction] = False  # the next PDV starts a message
                return
            self._desync[direction] = False  # a command set's first bytes: a message starts
        key = (direction, ctx, is_command)
        if key in self._capped:
            if last:
                self._capped.discard(key)
            return
        cap = COMMAND_CAP if is_command else DATASET_CAP
        buf = self._frag.get(key)
        if buf is None:
            buf = self._frag[key] = bytearray()
        room = min(cap - len(buf), MAX_REASSEMBLY - self._held)
        take = fragment[: max(room, 0)]
        buf += take
        self._held += len(take)
        if not (last or len(fragment) > room or not whole):
            return
        data = bytes(buf)
        self._held -= len(buf)
        del self._frag[key]
        if not (last and whole):
            self._capped.add(key)  # the rest of this message is dropped unread
            self._count("command_capped" if is_command else "dataset_capped")
            if last:
                self._capped.discard(key)
        if is_command:
            yield from self._command(direction, ctx, data, ts)
        else:
            yield from self._data_set(direction, ctx, data, ts)

    # ---- DIMSE ------------------------------------------------------------------------
    def _command(
        self, direction: Direction, ctx: int, data: bytes, ts: float
    ) -> Iterator[Observation]:
        cmd = decode_command(data)
        if cmd is None:
            self._count("command_errors")
            return
        self._dimse_seen = True
        if cmd.has_data_set:
            self._pending[(direction, ctx)] = cmd
        else:
            self._pending.pop((direction, ctx), None)
        sender = self._sender(direction)
        sop = cmd.sop_class or self._proposed.get(ctx, "")
        yield from self._obs("command", sender, f"{cmd.name} {sop}".strip(), ts)
        known = fp.sop_class(sop)
        service = known.service if known else "unknown"
        if cmd.field == 0x0100 or cmd.field == 0x8100:  # N-EVENT-REPORT flows SCP -> SCU
            role = "scp" if cmd.is_request else "scu"
        else:
            role = "scu" if cmd.is_request else "scp"
        yield from self._obs("role", sender, f"{service} {role}", ts)
        failed = cmd.status not in (None, STATUS_SUCCESS, *STATUS_PENDING)
        if failed:
            yield from self._obs("status", sender, f"{cmd.name} 0x{cmd.status or 0:04X}", ts)
        yield from self._command_claims(direction, cmd, service, known, ts)

    def _command_claims(
        self,
        direction: Direction,
        cmd: Command,
        service: str,
        known: fp.SopClass | None,
        ts: float,
    ) -> Iterator[Observation]:
        """Device-type claims from who asks for and who answers which service."""
        by_acceptor = direction is not self._rq_direction
        sender = self._sender(direction)
        ok = cmd.status in (STATUS_SUCCESS, *STATUS_PENDING)
        if cmd.name == "C-STORE-RQ" and not by_acceptor and not cmd.move_originator:
            if known and known.device_type:
                yield from self._obs("device_type", sender, known.device_type, ts,
                                     CONF_MODALITY_SOP)
        elif cmd.name == "C-STORE-RSP" and by_acceptor and ok:
            yield from self._obs("device_type", sender, "pacs", ts, CONF_PACS_STORE)
        elif cmd.is_request or not by_acceptor or not ok:
            client_services = ("mwl", "mpps", "storage-commitment")
            if cmd.is_request and not by_acceptor and service in client_services:
                yield from self._obs(
                    "device_type", sender, "imaging-modality", ts, CONF_MODALITY_CLIENT
                )
        elif service in ("qr-find", "qr-move", "qr-get"):
            yield from self._obs("device_type", sender, "pacs", ts, CONF_PACS_QR)
        elif service == "mwl":
            yield from self._obs("device_type", sender, "ris", ts, CONF_RIS_MWL)
        elif service == "mpps":
            yield from self._obs("device_type", sender, "ris", ts, CONF_RIS_MPPS)
        elif service == "storage-commitment":
            yield from self._obs("device_type", sender, "pacs", ts, CONF_PACS_COMMIT)

    def _data_set(
        self, direction: Direction, ctx: int, data: bytes, ts: float
    ) -> Iterator[Observation]:
        cmd = self._pending.pop((direction, ctx), None)
        if cmd is None:
            self._count("dataset_without_command")
            return
        transfer = self._accepted.get(ctx)
        syntax = ds.syntax_of(transfer) or ds.guess_syntax(data)
        if syntax is ds.Syntax.DEFLATED:
            self._count("dataset_deflated")
            return
        by_acceptor = direction is not self._rq_direction
        own_store = cmd.name == "C-STORE-RQ" and not by_acceptor and not cmd.move_originator
        own_mpps = cmd.name in ("N-CREATE-RQ", "N-SET-RQ") and not by_acceptor
        mwl_answer = cmd.name == "C-FIND-RSP" and by_acceptor
        if not (own_store or own_mpps or mwl_answer):
            return  # query keys, forwarded images, retrieved data: not about the sender
        found = ds.read_elements(data, syntax, DATA_SET_TAGS, NESTED_TAGS)
        if found.error and found.error != "truncated":
            self._count("dataset_errors")
        sender = self._sender(direction)
        values = {key: ds.text(raw[0]) for key, raw in found.values.items() if raw}
        if mwl_answer:
            for raw in found.values.get((SCHEDULED_STEP_SEQUENCE, SCHEDULED_STATION_AE), []):
                yield from self._obs("scheduled_station_ae_title", sender, ds.text(raw), ts)
            for raw in found.values.get((SCHEDULED_STEP_SEQUENCE, MODALITY), []):
                yield from self._obs("scheduled_modality", sender, ds.text(raw), ts)
            return
        performed = values.get((0, PERFORMED_STATION_AE), "")
        yield from self._obs("performed_station_ae_title", sender, performed, ts)
        for tag, suffix in DEVICE_ELEMENTS.items():
            yield from self._obs(suffix, sender, values.get((0, tag), ""), ts)
        yield from self._device_claims(sender, values, ts)

    def _device_claims(
        self, sender: str, values: dict[tuple[int, int], str], ts: float
    ) -> Iterator[Observation]:
        modality = values.get((0, MODALITY), "")
        device_type = fp.modality_device_type(modality) if modality else None
        if device_type:
            yield from self._obs("device_type", sender, device_type, ts, CONF_MODALITY_ELEMENT,
                                 modality)
        manufacturer = values.get((0, MANUFACTURER), "")
        if manufacturer:
            vendor = fp.vendor_of_manufacturer(manufacturer)
            if vendor:
                yield from self._obs("vendor", sender, vendor, ts, CONF_MANUFACTURER, manufacturer)
            else:
                yield from self._obs("vendor", sender, manufacturer, ts,
                                     CONF_MANUFACTURER_UNKNOWN)
        yield from self._obs("model", sender, values.get((0, MODEL_NAME), ""), ts, CONF_MODEL)
        yield from self._obs("serial", sender, values.get((0, DEVICE_SERIAL), ""), ts,
                             CONF_SERIAL)
        yield from self._obs("software_version", sender, values.get((0, SOFTWARE_VERSIONS), ""),
                             ts, CONF_SOFTWARE)
        yield from self._obs("hostname", sender, values.get((0, STATION_NAME), ""), ts,
                             CONF_STATION_HOSTNAME)
