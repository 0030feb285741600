"""medtap's DICOM and HL7 parsers against Wireshark's dissectors, read through pyshark.

Issues 3 and 4 ask for this cross-check "through pyshark" (the user's chosen Wireshark wrapper);
``test_dicom_pcaps.py`` and ``test_hl7_captures.py`` make a similar check with tshark called
directly. For every DICOM and HL7 capture with ground truth in ``pcaps/`` and the public ones in
``../shared/pcaps/public/`` (skipped when absent), the capture is read with
``pyshark.FileCapture(..., decode_as={"tcp.port==N": proto}, keep_packets=False)`` for every server
port N (the destinations of the SYNs), and the facts Wireshark shows are compared, as sets of
``(kind, host, value)``, with the observations medtap's parser emits for the same capture:

* DICOM: calling and called AE titles, implementation class UIDs and version names (from the
  A-ASSOCIATE-RQ and -AC), the abstract syntaxes proposed, and DIMSE commands with the SOP class
  they name (``dicom.calling_ae_title`` ... ``dicom.command``).
* HL7: MSH-3/4/5/6/9/12 of every message (``hl7.sending_application``, ``hl7.sending_facility``,
  ``hl7.receiving_application``, ``hl7.receiving_facility``, ``hl7.message_type``,
  ``hl7.version``).

Wireshark shows fields as sent; medtap reports them as values. Where the two differ on purpose
(AE title padding, HL7 fields cut to the component medtap reports, unframed HL7 that Wireshark
does not dissect) the test normalises exactly that, next to a comment that says why; nothing else.

pyshark drives tshark through asyncio. Each capture gets its own event loop, passed in as
``eventloop`` (so pyshark does not install a process-wide child watcher on a shared loop); tshark
is closed by ``apply_on_packets`` (see ``dissect`` for why not by iteration), then the capture and
the loop; the ``no_tshark_left`` fixture checks that no tshark child, running or zombie, survives.
pyshark's default PDML output is used, not ``use_json=True``: in tshark's JSON the DICOM fields
sit in subtrees keyed by their text labels (``"A-ASSOCIATE request WARD3_WS --> ECHO_SCP": {...}``)
and the DIMSE tags exist only as such keys (``"(0000,0100) ... Command Field  C-ECHO-RQ": ""``);
pyshark 0.6's JSON layer shows just ``dicom.pdu.type`` and ``dicom.pdu.len`` of each PDU. PDML
keeps every item, in order, with its ``show`` text, and pyshark flattens it per field name.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.utils import PcapReader

from parsers.base import Observation
from parsers.hl7 import Hl7Parser, SignatureCache, load_knowledge
from tests import dicom_feed, hl7_feed

REPO = Path(__file__).resolve().parents[1]
PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "pcaps" / "public"
DICOM_CAPTURES = sorted((REPO / "pcaps" / "dicom").glob("*.pcap"))
HL7_CAPTURES = sorted((REPO / "pcaps" / "hl7").glob("*.pcap"))
PUBLIC_DICOM = [PUBLIC / f"tapirx__dicom_arq_{n}.pcap" for n in (
    "1_find_testclient", "2_get_testclient", "3_find_bogus_local", "4_get_bogus_local")]
PUBLIC_HL7 = [PUBLIC / f"{n}.pcap" for n in (
    "ndpi__hl7", "tapirx__HL7-ADT", "tapirx__HL7-ADT-UDI-OBX", "tapirx__HL7-ADT-UDI-PRT",
    "tapirx__HL7-ORM", "tapirx__HL7-ORU")]

pytestmark = [
    pytest.mark.tshark,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed"),
]
pyshark = pytest.importorskip("pyshark")

Fact = tuple[str, str, str]  # (kind without the "dicom."/"hl7." prefix, host, value)


# ---- capture plumbing ------------------------------------------------------------------------
Endpoints = frozenset[tuple[str, int]]


def scan(path: Path) -> tuple[set[int], dict[Endpoints, bytes]]:
    """Server ports (destinations of the SYNs) and the first payload byte of each connection.

    A capture that starts mid-connection (the tapirx DICOM files have no handshake) falls back
    to the destination of its first TCP payload, which in those files is the A-ASSOCIATE-RQ to
    port 104.
    """
    syns: set[int] = set()
    first_payload: int | None = None
    first_byte: dict[Endpoints, bytes] = {}
    with PcapReader(str(path)) as reader:
        for pkt in reader:
            if not pkt.haslayer(TCP):
                continue
            tcp = pkt[TCP]
            flags = int(tcp.flags)
            if flags & 0x02 and not flags & 0x10:
                syns.add(int(tcp.dport))
            ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
            if ip is None:
                continue
            # scapy leaves Ethernet trailer padding in the TCP payload: cut to the IP length.
            size = int(ip.len) - int(ip.ihl) * 4 if isinstance(ip, IP) else int(ip.plen)
            payload = bytes(tcp.payload)[: size - int(tcp.dataofs) * 4]
            if not payload:
                continue
            if first_payload is None:
                first_payload = int(tcp.dport)
            ends = frozenset({(str(ip.src), int(tcp.sport)), (str(ip.dst), int(tcp.dport))})
            first_byte.setdefault(ends, payload[:1])
    assert first_payload is not None, f"{path.name}: no TCP payload"
    return syns or {first_payload}, first_byte


def tshark_children() -> list[str]:
    """tshark processes (running or zombie) whose parent is this test process."""
    proc = Path("/proc")
    me, found = os.getpid(), []
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited meanwhile
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        state, ppid = text[text.rindex(")") + 2 :].split()[:2]
        if int(ppid) == me and name.startswith("tshark"):
            found.append(f"{stat.parent.name} {name} {state}")
    return found


@pytest.fixture
def no_tshark_left() -> Iterator[None]:
    yield
    if Path("/proc/self/stat").exists():  # Linux; elsewhere the check is skipped
        assert tshark_children() == []


def dissect(path: Path, proto: str, ports: set[int], on_packet: Callable[[Any], None]) -> None:
    """Calls ``on_packet`` with each packet of ``path`` that carries ``proto``, with ``proto``
    forced on every port in ``ports``.

    Forcing matters beyond non-standard ports: on ``split_header`` (first segment = the 6-byte
    PDU header) Wireshark's DICOM heuristic never picks the flow up, while with decode-as its
    reassembly decodes every PDU there (checked with tshark 4.0).

    ``apply_on_packets`` (pyshark's documented synchronous API) rather than iterating: it closes
    tshark exactly once. Iteration cleans the process up in the generator and again in
    ``close()``; when tshark has just exited at end of file, the first clean-up's ``kill()``
    polls and reaps it (``Popen.send_signal`` polls first) before asyncio's child watcher does,
    the watcher then reports exit status 255 ("Unknown child process pid"), and the second
    clean-up raises ``TSharkCrashException`` on it (in about one run of this file in three).
    """
    loop = asyncio.new_event_loop()
    try:
        capture = pyshark.FileCapture(
            str(path),
            keep_packets=False,
            decode_as={f"tcp.port=={port}": proto for port in sorted(ports)},
            # The display filter goes in as a plain tshark option: given as ``display_filter``,
            # pyshark first runs ``tshark -v`` to pick -Y or -R, which costs as much as the
            # dissection itself (tshark loads every dissector either way).
            custom_parameters=["-Y", proto],
            eventloop=loop,
        )
        try:
            capture.apply_on_packets(on_packet)  # kills, waits for and reaps tshark at the end
        finally:
            capture.close()  # a no-op after that, unless apply_on_packets never started tshark
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def shows(layer: Any, name: str) -> list[str]:
    """The ``show`` text of every occurrence of field ``name`` in a layer, in order
    (``""`` names the unnamed text items)."""
    container = layer.get_field(name)
    return [f.show for f in container.all_fields] if container is not None else []


def our_facts(obs: list[Observation], prefix: str, kinds: tuple[str, ...],
              value: Callable[[Observation], str | None] = lambda o: o.value) -> set[Fact]:
    facts = set()
    for o in obs:
        kind = o.kind.removeprefix(prefix)
        if kind in kinds and (v := value(o)) is not None:
            facts.add((kind, o.host, v))
    return facts


def explain(ours: set[Fact], theirs: set[Fact]) -> str:
    return (f"only medtap: {sorted(ours - theirs)}\n"
            f"only Wireshark: {sorted(theirs - ours)}")


def ids(path: Path) -> str:
    return path.stem


# ---- DICOM -----------------------------------------------------------------------------------
DICOM_KINDS = ("calling_ae_title", "called_ae_title", "implementation_class_uid",
               "implementation_version_name", "abstract_syntax", "command")
# Wireshark labels a UID it knows "<name> (<uid>)" and shows an unknown one bare.
UID_IN_LABEL = re.compile(r"\(([0-9.]+)\)$")
# Text items of a command set: "(gggg,eeee)  <length> <tag name>  <value>".
COMMAND_FIELD = re.compile(r"^\(0000,0100\)\s+\d+\s+Command Field\s+(\S+)$")
SOP_CLASS = re.compile(r"^\(0000,000[23]\)\s+\d+\s+(?:Affected|Requested) SOP Class UID\s+"
                       r"([0-9.]+)")
ASSOCIATE_RQ, ASSOCIATE_AC, P_DATA = "0x01", "0x02", "0x04"


def uid(label: str) -> str:
    m = UID_IN_LABEL.search(label.strip())
    return m.group(1) if m else label.strip()


def wireshark_dicom_facts(path: Path, ports: set[int]) -> set[Fact]:
    facts: set[Fact] = set()

    def on_packet(pkt: Any) -> None:
        src, dst = pkt.ip.src, pkt.ip.dst
        for layer in pkt.get_multiple_layers("dicom"):  # one per PDU
            pdu = shows(layer, "dicom.pdu.type")[0]
            if pdu in (ASSOCIATE_RQ, ASSOCIATE_AC):
                client, server = (src, dst) if pdu == ASSOCIATE_RQ else (dst, src)
                # AE titles are 16 bytes padded with spaces, which PS3.5 says are not
                # significant; Wireshark shows the padding, medtap reports the title.
                for title in shows(layer, "dicom.assoc.ae.calling"):
                    facts.add(("calling_ae_title", client, title.strip()))
                for title in shows(layer, "dicom.assoc.ae.called"):
                    facts.add(("called_ae_title", server, title.strip()))
                for value in shows(layer, "dicom.userinfo.uid"):
                    facts.add(("implementation_class_uid", src, value))
                for value in shows(layer, "dicom.userinfo.version"):
                    facts.add(("implementation_version_name", src, value))
            if pdu == ASSOCIATE_RQ:  # the AC answers by context id, it names no syntax
                for label in shows(layer, "dicom.pctx.abss.syntax"):
                    facts.add(("abstract_syntax", src, uid(label)))
            if pdu == P_DATA:
                facts.update(dimse_commands(shows(layer, ""), src))

    dissect(path, "dicom", ports, on_packet)
    return facts


def dimse_commands(items: list[str], sender: str) -> set[Fact]:
    """One fact "<command> <SOP class UID>" (as medtap's ``dicom.command`` value, e.g.
    "C-ECHO-RQ 1.2.840.10008.1.1") per command set, from Wireshark's text items for its tags.

    The UID is the Affected (or Requested) SOP Class UID of the command set; PDML lists a PDV's
    tags after its "PDV, ..." item, in order. medtap falls back to the presentation context's
    abstract syntax when a command set names no class; no capture here has one (asserted).
    """
    facts: set[Fact] = set()
    command = sop = ""

    def flush() -> None:
        if command:
            assert sop, f"{command} names no SOP class: compare the context's abstract syntax"
            facts.add(("command", sender, f"{command} {sop}"))

    for item in items:
        if item.startswith("PDV"):
            flush()
            command = sop = ""
        elif m := COMMAND_FIELD.match(item):
            command = m.group(1)
        elif m := SOP_CLASS.match(item):
            sop = m.group(1)
    flush()
    return facts


def medtap_dicom_facts(path: Path) -> set[Fact]:
    obs = [o for f in dicom_feed.feed_pcap(path) for o in f.observations]
    return our_facts(obs, "dicom.", DICOM_KINDS)


@pytest.mark.usefixtures("no_tshark_left")
@pytest.mark.parametrize("path", DICOM_CAPTURES + PUBLIC_DICOM, ids=ids)
def test_dicom_agrees_with_wireshark(path: Path) -> None:
    if not path.exists():
        pytest.skip("shared public captures not present")
    ports, _ = scan(path)
    theirs = wireshark_dicom_facts(path, ports)
    ours = medtap_dicom_facts(path)
    assert {k for k, _, _ in theirs} >= {"calling_ae_title", "abstract_syntax"}
    assert ours == theirs, explain(ours, theirs)


# ---- HL7 -------------------------------------------------------------------------------------
HL7_KINDS = ("sending_application", "sending_facility", "receiving_application",
             "receiving_facility", "message_type", "version")
MSH_FIELDS = {3: ("sending_application", "src"), 4: ("sending_facility", "src"),
              5: ("receiving_application", "dst"), 6: ("receiving_facility", "dst"),
              9: ("message_type", "src"), 12: ("version", "src")}
FIELD_NUMBER = re.compile(r"^field (\d+):")
MLLP_START = b"\x0b"


def msh_segments(layer: Any) -> Iterator[dict[int, str]]:
    """Fields (Wireshark's numbering, which for MSH is HL7's: field 2 is MSH-2) of each MSH.

    PDML nests ``hl7.field`` items in their ``hl7.segment``; pyshark flattens a layer into one
    list per field name, so segments are told apart by field 1, which is the segment's name.
    Wireshark lists only non-empty fields.
    """
    container = layer.get_field("hl7.field")
    segment: dict[int, str] | None = None
    for field in container.all_fields if container is not None else []:
        m = FIELD_NUMBER.match(field.showname or "")
        assert m, field.showname
        number = int(m.group(1))
        if number == 1:
            if segment is not None and segment[1] == "MSH":
                yield segment
            segment = {}
        assert segment is not None
        segment[number] = field.show
    if segment is not None and segment[1] == "MSH":
        yield segment


def wireshark_hl7_facts(path: Path, ports: set[int]) -> tuple[set[Fact], set[Fact], set[Endpoints]]:
    """Facts as medtap reports values, facts as medtap keeps the field in ``raw``, and the
    connections Wireshark dissected HL7 on."""
    values: set[Fact] = set()
    fields: set[Fact] = set()
    dissected: set[Endpoints] = set()

    def on_packet(pkt: Any) -> None:
        hosts = {"src": pkt.ip.src, "dst": pkt.ip.dst}
        dissected.add(frozenset({(pkt.ip.src, int(pkt.tcp.srcport)),
                                 (pkt.ip.dst, int(pkt.tcp.dstport))}))
        for layer in pkt.get_multiple_layers("hl7"):
            for msh in msh_segments(layer):
                for n, (kind, end) in MSH_FIELDS.items():
                    if n in msh:
                        values.add((kind, hosts[end], hl7_value(kind, msh[n], msh[2])))
                        fields.add((kind, hosts[end], msh[n]))

    dissect(path, "hl7", ports, on_packet)
    return values, fields, dissected


def hl7_value(kind: str, field: str, encoding: str) -> str:
    """medtap's value for one MSH field as Wireshark shows it (whole, as sent).

    Wireshark splits fields, not components; medtap reports one value per field by its HL7
    data type and keeps the whole field in ``raw`` when it differs (compared separately). So
    the field is cut at the component separator MSH-2 declares: HD (MSH-3..6) and VID
    (MSH-12) keep their first component (namespace ID, version ID), MSG (MSH-9) its first two
    (message code ^ trigger event; "ADT^A01^ADT_A01" -> "ADT^A01", and the third, the message
    structure, is left out). medtap's other rules (MSG upper-cased, HD universal ID when the
    namespace is empty, ``raw`` re-joined with "^" without trailing empty components, escape
    sequences decoded) are not exercised by these captures and so not normalised: a capture
    that needs one fails here, and the rule is added then, with its reason.
    """
    comps = field.split(encoding[0])
    return "^".join(comps[:2]) if kind == "message_type" else comps[0]


def medtap_hl7_obs(path: Path, skip: set[Endpoints]) -> list[Observation]:
    cache = SignatureCache(load_knowledge())
    flows = hl7_feed.feed_pcap(path, lambda key: Hl7Parser(key, cache))
    return [o for f in flows
            if frozenset({(f.key.client, f.key.client_port),
                          (f.key.server, f.key.server_port)}) not in skip
            for o in f.observations]


@pytest.mark.usefixtures("no_tshark_left")
@pytest.mark.parametrize("path", HL7_CAPTURES + PUBLIC_HL7, ids=ids)
def test_hl7_msh_agrees_with_wireshark(path: Path) -> None:
    if not path.exists():
        pytest.skip("shared public captures not present")
    ports, first_byte = scan(path)
    values, fields, dissected = wireshark_hl7_facts(path, ports)
    assert values, "Wireshark dissected no HL7"
    # Wireshark's HL7 dissector reads MLLP only: it waits for the 0x1C 0x0D end of block and
    # hands a block that does not start with 0x0B to the data dissector (packet-hl7.c,
    # dissect_hl7). medtap also reads unframed HL7, which some gateways send (issue 4; in
    # hl7_odd_framing, port 7000). Such connections are left out of the comparison, after
    # checking that Wireshark indeed decoded nothing on them.
    unframed = {ends for ends, byte in first_byte.items() if byte != MLLP_START}
    assert not dissected & unframed
    obs = medtap_hl7_obs(path, skip=unframed)
    ours = our_facts(obs, "hl7.", HL7_KINDS)
    assert ours == values, explain(ours, values)
    ours_raw = our_facts(obs, "hl7.", HL7_KINDS, lambda o: o.raw or o.value)
    assert ours_raw == fields, explain(ours_raw, fields)
