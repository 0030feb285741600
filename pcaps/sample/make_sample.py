"""Record pcaps/sample/hospital-sample.pcapng: a small hospital seen from a mirror port.

Usage (root):  python pcaps/sample/make_sample.py [--out DIR] [--keep-raw]
               python pcaps/sample/make_sample.py --truth-only

Every "device" is a network namespace ``medtap-sample-<name>`` with one veth (``eth0``,
vendor MAC set with ``ip link set dev eth0 address``) into the bridge of its VLAN in the
switch namespace ``medtap-sample-sw``; the core router ``medtap-sample-rtr`` has one
interface per VLAN (SVIs of an L3 switch: one Cisco MAC on all of them) and routes
between the VLANs. Real peers run inside the namespaces: dcmtk (``storescu``,
``findscu -W``, ``echoscu``, ``wlmscpfs``), pynetdicom (CT, CR, PACS), asyncio MLLP
clients/servers (HIS, RIS, monitor and pump gateways, pieces of pcaps/hl7/record.py),
a DNS responder and a tiny HTTP captive portal on the router.

Why no 802.1Q in the kernel path: the kernel this is recorded on has neither
CONFIG_VLAN_8021Q nor CONFIG_BRIDGE_VLAN_FILTERING (nor tc's vlan action), so each
VLAN is its own Linux bridge (br10, br20, br30, br99). The mirror is one
``tcpdump -i brNN`` per bridge (a promiscuous bridge device sees every frame it
forwards); the frames are then written, in timestamp order, into one pcapng
interface with the 802.1Q tag of the bridge they crossed inserted (a SPAN session
with "encapsulation replicate") and padded to the 64-byte tagged Ethernet minimum as a
NIC would on the wire. Nothing else in a frame is changed.

Traffic goes only between the namespaces made here; the router has no default route.
Content is fixed (data sets, messages, names, ICMP ids); times, ports, IP ids, TCP sequence
numbers and timestamps vary run to run. Namespaces and links are removed in ``finally``.
``--truth-only`` rewrites hospital-sample.truth.json from ``truth()`` below.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PCAPS = HERE.parent
NAME = "hospital-sample"
PREFIX = "medtap-sample-"
SW = PREFIX + "sw"
RTR = PREFIX + "rtr"


# ---- the hospital ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Host:
    name: str  # namespace medtap-sample-<name>
    vlan: int
    ip: str
    mac: str
    role: str  # one line for README / truth


VLANS = {10: "clinical", 20: "medical", 30: "imaging", 99: "guest"}
ROUTER_MAC = "e8:0a:b9:1c:4e:01"  # Cisco Systems, Inc
ROUTER_IPS = {vlan: f"10.{vlan}.0.1" for vlan in VLANS}
HOSTS = [
    Host("his", 10, "10.10.5.20", "3c:d9:2b:0a:05:14", "HIS (Dedalus ORBIS) on an HP server: "
         "HL7 receiver of device data, ADT/order sender"),
    Host("ris", 10, "10.10.5.40", "14:18:77:0a:05:28", "RIS on a Dell server: DICOM Modality "
         "Worklist (dcmtk wlmscpfs, port 11113), HL7 order receiver"),
    Host("piic", 20, "10.20.1.10", "00:09:fb:1c:2d:3e", "Philips IntelliVue Information "
         "Center iX: PCD-01 ORU^R01 for two monitors to the HIS, ADT receiver"),
    Host("spacecom", 20, "10.20.2.20", "00:12:21:4a:00:10", "B. Braun SpaceCom pump gateway: "
         "PCD-01 ORU^R01 for two Infusomat Space pumps to the HIS"),
    Host("pacs", 30, "10.30.0.10", "b8:ca:3a:1e:00:0a", "PACS archive on a Dell server "
         "(pynetdicom SCP with a GE implementation UID, port 104)"),
    Host("ct", 30, "10.30.1.11", "44:4b:5d:30:01:11", "GE Revolution CT: MWL query to the "
         "RIS, C-STORE to the PACS (pynetdicom)"),
    Host("mr", 30, "10.30.1.12", "08:00:06:30:01:12", "Siemens MAGNETOM Vida: MWL query to "
         "the RIS (dcmtk findscu -W), C-STORE to the PACS (dcmtk storescu)"),
    Host("cr", 30, "10.30.1.13", "88:b4:36:30:01:13", "Fujifilm FCR PROFECT CS: C-STORE to "
         "the PACS (pynetdicom)"),
    Host("laptop", 99, "10.99.0.57", "a0:02:a5:63:00:39", "guest laptop (Intel NIC): DNS and "
         "HTTP to the router's portal, C-ECHO to the PACS (a segmentation violation)"),
]
HOST = {h.name: h for h in HOSTS}


@dataclass(frozen=True, eq=False)
class Net:
    """One recorded network: namespaces ``<prefix><host>``, the switch ``<prefix>sw`` with a
    bridge per VLAN and the router ``<prefix>rtr`` with an SVI per VLAN (pcaps/policy reuses
    the machinery below with its own hosts and prefix)."""

    prefix: str
    hosts: tuple[Host, ...]
    vlans: dict[int, str]
    router_mac: str
    router_ips: dict[int, str]

    @property
    def sw(self) -> str:
        return self.prefix + "sw"

    @property
    def rtr(self) -> str:
        return self.prefix + "rtr"

    def ns(self, name: str) -> str:
        return self.prefix + name

    def namespaces(self) -> list[str]:
        return [self.sw, self.rtr, *(self.ns(h.name) for h in self.hosts)]


NET = Net(PREFIX, tuple(HOSTS), VLANS, ROUTER_MAC, ROUTER_IPS)

HL7_PORT, MWL_PORT, DICOM_PORT = 2575, 11113, 104
PACS_AE, RIS_AE = "PACS_ARCHIVE", "RIS_MWL"
GE_CT = ("1.2.840.113619.6.374", "REVO_CT_22")
FUJI_CR = ("1.2.392.200036.9125.5342.1", "FCR_A085")
CANARIES = ["CANARY", "CANARY^PATIENT", "CANARY-ID-4711", "CANARY^MOTHER", "CANARY^DOCTOR",
            "Vogel", "Kanarienweg", "555-0147", "19010101", "Allergie"]


# ---- HL7 content (fixed; style of pcaps/hl7/record.py) --------------------------------------
PID = ("PID|1||CANARY-ID-4711^^^HOSP^MR||CANARY^PATIENT^Vogel||19010101|F|||"
       "Kanarienweg 7^^Berlin^^10115^DE||+49-30-555-0147")
NK1 = "NK1|1|CANARY^MOTHER|MTH|Kanarienweg 7^^Berlin|+49-30-555-0147"
PV1 = "PV1|1|I|ICU^101^A|||||CANARY^DOCTOR"
PCD_PROFILE = "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"
ORBIS_SFT = "SFT|Dedalus HealthCare|08.04.32|ORBIS|ORB0804"
MONITORS = [("MX800", "DE40010001", "0009FBFFFE3A0001"), ("MX450", "DE40010002",
                                                         "0009FBFFFE3A0002")]
PUMPS = [("Infusomat Space", "34300011", "001221FFFE4A0011"),
         ("Infusomat Space", "34300012", "001221FFFE4A0012")]
PIIC_VERSION, SPACECOM_VERSION, ORBIS_VERSION = "C.03.21", "012U000050", "08.04.32"


def msg(*segments: str) -> bytes:
    return ("\r".join(segments) + "\r").encode("utf-8")


def pcd01_monitor(n: int, model: str, serial: str, eui: str) -> bytes:
    equip = f"{model}_{serial}^PHILIPS^{eui}^EUI-64"
    return msg(
        f"MSH|^~\\&|PIIC^0009FBFFFE1C2D3E^EUI-64|ICU-WEST|ORBIS|KLINIKUM|20240102{n:06d}||"
        f"ORU^R01^ORU_R01|PIIC{n:05d}|P|2.6|||AL|NE||UNICODE UTF-8|||{PCD_PROFILE}",
        f"SFT|Philips Medical Systems|{PIIC_VERSION}|IntelliVue Information Center iX|B312",
        PID, PV1,
        f"OBR|1|CANARY-ID-4711^HOSP|{equip}|69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC",
        f"OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||{equip}",
        f"OBX|2||70666^MDC_DEV_ECG_RESP_VMD^MDC|1.1.0.0|||||||X|||||||{equip}",
        f"OBX|3|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|{70 + n}|264864^MDC_DIM_BEAT_PER_MIN^"
        f"MDC|||||R|||||||{equip}",
        f"OBX|4|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|97|262688^MDC_DIM_PERCENT^MDC"
        f"|||||R|||||||{equip}",
        "NTE|1||CANARY free text about CANARY^PATIENT",
    )


def pcd01_pump(n: int, model: str, serial: str, eui: str) -> bytes:
    equip = f"{model}_{serial}^B. Braun^{eui}^EUI-64"
    return msg(
        f"MSH|^~\\&|SPACECOM|STATION-ICU-3|ORBIS|KLINIKUM|20240102{n:06d}||ORU^R01^ORU_R01|"
        f"SPC{n:05d}|P|2.6|||AL|NE||UNICODE UTF-8|||{PCD_PROFILE}",
        f"SFT|B. Braun Melsungen AG|{SPACECOM_VERSION}|SpaceCom 2|SC2",
        PID, PV1,
        f"OBR|1|CANARY-ID-4711^HOSP|{equip}|69985^MDC_DEV_PUMP_INFUS_MDS^MDC",
        f"OBX|1||69985^MDC_DEV_PUMP_INFUS_MDS^MDC|1.0.0.0|||||||X|||||||{equip}",
        f"OBX|2||69986^MDC_DEV_PUMP_INFUS_VMD^MDC|1.1.0.0|||||||X|||||||{equip}",
        f"OBX|3|NM|157784^MDC_FLOW_FLUID_PUMP^MDC|1.1.1.1|{20 + n}|265266^MDC_DIM_MILLI_L_PER_HR"
        f"^MDC|||||R|||||||{equip}",
    )


def adt(event: str, n: int) -> bytes:
    return msg(
        f"MSH|^~\\&|ORBIS|KLINIKUM|PIIC|ICU-WEST|20240102{n:06d}||ADT^{event}^ADT_A01|"
        f"ADT{n:05d}|P|2.5|||AL|NE|DEU|8859/1",
        ORBIS_SFT, f"EVN|{event}|20240102{n:06d}", PID, NK1, PV1, "AL1|1||^Allergie CANARY",
    )


def omi(n: int, modality: str) -> bytes:
    return msg(
        f"MSH|^~\\&|ORBIS|KLINIKUM|RIS|RADIOLOGIE|20240102{n:06d}||OMI^O23^OMI_O23|"
        f"ORD{n:05d}|P|2.5",
        ORBIS_SFT, PID, PV1, f"ORC|NW|CANARY-ORDER-{n}",
        f"OBR|1|CANARY-ORDER-{n}||{modality}-HEAD^{modality} Kopf^L",
        f"IPC|ACC{n:04d}|RP{n}|2.25.4711000000000000000000{700000 + n}|SPS{n}|{modality}",
    )


def hl7_modules():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(PCAPS / "hl7"))
    import record  # pcaps/hl7/record.py: mllp_server, client, frames

    return record


# ---- DICOM content (pieces of pcaps/dicom/make_dicom_pcaps.py) -----------------------------
def dicom_modules():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(PCAPS / "dicom"))
    import make_dicom_pcaps  # image(), as_file(), uid(), scp_ae(), store_scu(), DEVICES

    return make_dicom_pcaps


def worklist_item(n: int, modality: str, station_ae: str, station: str):  # type: ignore[no-untyped-def]
    from pydicom.dataset import Dataset

    mdp = dicom_modules()
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.AccessionNumber = f"ACC{n:04d}"
    ds.PatientName = "CANARY^PATIENT"
    ds.PatientID = "CANARY-ID-4711"
    ds.PatientBirthDate = "19010101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = mdp.uid(700000 + n)
    ds.RequestedProcedureID = f"RP{n}"
    ds.RequestedProcedureDescription = f"{modality} HEAD"
    step = Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = station_ae
    step.ScheduledProcedureStepStartDate = "20240102"
    step.ScheduledProcedureStepStartTime = "090000"
    step.ScheduledPerformingPhysicianName = "CANARY^DOCTOR"
    step.ScheduledProcedureStepID = f"SPS{n}"
    step.ScheduledStationName = station
    step.ScheduledProcedureStepDescription = f"{modality} HEAD W/O CONTRAST"
    ds.ScheduledProcedureStepSequence = [step]
    return ds


# ---- peers: run inside a namespace as ``make_sample.py peer <name> [args]`` -----------------
def peer_mllp_server(ip: str) -> None:
    rec = hl7_modules()

    async def serve() -> None:
        srv = await rec.mllp_server(ip, HL7_PORT)
        async with srv:
            await srv.serve_forever()

    asyncio.run(serve())


def peer_mllp_client(src: str, dst: str, which: str) -> None:
    rec = hl7_modules()
    if which == "piic":
        messages = [pcd01_monitor(i + 1, *MONITORS[i % 2]) for i in range(4)]
    elif which == "spacecom":
        messages = [pcd01_pump(i + 1, *PUMPS[i % 2]) for i in range(2)]
    elif which == "adt":
        messages = [adt("A01", 11), adt("A08", 12)]
    else:  # orders
        messages = [omi(21, "CT"), omi(22, "MR")]
    # one persistent connection per link, messages a little apart, each ACKed
    asyncio.run(rec.client(src, dst, HL7_PORT, rec.frames(*messages), gap=0.15,
                           wait_acks=len(messages)))


def peer_pacs() -> None:
    from pynetdicom import evt
    from pynetdicom.sop_class import (
        ComputedRadiographyImageStorage,
        CTImageStorage,
        MRImageStorage,
        Verification,
    )

    mdp = dicom_modules()
    ae = mdp.scp_ae(PACS_AE, [CTImageStorage, MRImageStorage, ComputedRadiographyImageStorage,
                              Verification])
    handlers = [(evt.EVT_C_STORE, lambda e: 0x0000), (evt.EVT_C_ECHO, lambda e: 0x0000)]
    ae.start_server((HOST["pacs"].ip, DICOM_PORT), block=True, evt_handlers=handlers)


def peer_ct() -> None:
    from pydicom.dataset import Dataset
    from pydicom.uid import ExplicitVRLittleEndian
    from pynetdicom import AE
    from pynetdicom.sop_class import ModalityWorklistInformationFind

    mdp = dicom_modules()
    ct = HOST["ct"]
    ae = AE(ae_title="CT_REVO_1")
    ae.implementation_class_uid, ae.implementation_version_name = GE_CT
    ae.add_requested_context(ModalityWorklistInformationFind, [ExplicitVRLittleEndian])
    assoc = ae.associate(HOST["ris"].ip, MWL_PORT, ae_title=RIS_AE, bind_address=(ct.ip, 0))
    if not assoc.is_established:
        raise SystemExit("CT: MWL association failed")
    query = Dataset()
    query.PatientName = ""
    query.PatientID = ""
    query.AccessionNumber = ""
    step = Dataset()
    step.Modality = "CT"
    step.ScheduledStationAETitle = "CT_REVO_1"
    step.ScheduledProcedureStepStartDate = ""
    query.ScheduledProcedureStepSequence = [step]
    for _status, _ids in assoc.send_c_find(query, ModalityWorklistInformationFind):
        pass
    assoc.release()
    time.sleep(0.3)
    images = [mdp.image("CT", 5100 + i) for i in range(3)]
    mdp.store_scu("CT", ct.ip, "CT_REVO_1", HOST["pacs"].ip, DICOM_PORT, PACS_AE, images,
                  impl=GE_CT)


def peer_cr() -> None:
    mdp = dicom_modules()
    mdp.store_scu("CR", HOST["cr"].ip, "FCR_CR1", HOST["pacs"].ip, DICOM_PORT, PACS_AE,
                  [mdp.image("CR", 5300)], impl=FUJI_CR)


def dns_answer(query: bytes, table: dict[str, str]) -> bytes | None:
    """A DNS response to a one-question A query; NXDOMAIN for unknown names."""
    if len(query) < 12:
        return None
    qid, _flags, qd = struct.unpack(">HHH", query[:6])
    pos, labels = 12, []
    while pos < len(query) and query[pos]:
        labels.append(query[pos + 1 : pos + 1 + query[pos]].decode("ascii", "replace"))
        pos += 1 + query[pos]
    question = query[12 : pos + 5]
    name = ".".join(labels).lower()
    addr = table.get(name)
    head = struct.pack(">HHHHHH", qid, 0x8580 if addr else 0x8583, 1, 1 if addr else 0, 0, 0)
    if not addr:
        return head + question
    return head + question + struct.pack(">HHHIH", 0xC00C, 1, 1, 300, 4) + socket.inet_aton(addr)


def peer_router() -> None:
    """Guest-VLAN services of the core router: DNS on udp/53 and a captive portal on tcp/80."""
    ip = ROUTER_IPS[99]
    names = {"portal.guest.lan": ip, "pacs.hospital.lan": HOST["pacs"].ip}
    body = (b"<html><head><title>Guest network</title></head><body>"
            b"<p>Welcome. Accept the terms of use to continue.</p></body></html>")
    page = (b"HTTP/1.1 200 OK\r\nServer: guest-portal\r\nContent-Type: text/html\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)

    class Dns(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            answer = dns_answer(data, names)
            if answer:
                self.transport.sendto(answer, addr)  # type: ignore[attr-defined]

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(page)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(Dns, local_addr=(ip, 53))
        srv = await asyncio.start_server(http, ip, 80)
        async with srv:
            await srv.serve_forever()

    asyncio.run(serve())


def peer_laptop_web() -> None:
    """DNS lookups and one HTTP GET to the guest portal, from the laptop."""
    router = ROUTER_IPS[99]
    for qid, name in ((0x1A2B, "portal.guest.lan"), (0x1A2C, "pacs.hospital.lan")):
        query = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
        query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
        query += struct.pack(">HH", 1, 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((HOST["laptop"].ip, 0))
            s.settimeout(2)
            s.sendto(query, (router, 53))
            s.recvfrom(512)
        if name.startswith("portal"):
            with socket.create_connection((router, 80), timeout=3,
                                          source_address=(HOST["laptop"].ip, 0)) as c:
                c.sendall(b"GET / HTTP/1.1\r\nHost: portal.guest.lan\r\nUser-Agent: Mozilla/5.0 "
                          b"(Windows NT 10.0; Win64; x64)\r\nAccept: */*\r\n"
                          b"Connection: close\r\n\r\n")
                while c.recv(4096):
                    pass
        time.sleep(0.2)


def icmp_checksum(data: bytes) -> int:
    data += bytes(len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def peer_ping(src: str, dst: str, ident: str, count: str = "2") -> None:
    """ICMP echo requests with a fixed id and payload (raw socket; the image has no ping)."""
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        s.bind((src, 0))
        s.settimeout(2)
        for seq in range(1, int(count) + 1):
            payload = bytes(range(0x10, 0x40))  # 48 bytes, like Linux ping's pattern
            head = struct.pack("!BBHHH", 8, 0, 0, int(ident), seq)
            packet = struct.pack("!BBHHH", 8, 0, icmp_checksum(head + payload), int(ident),
                                 seq) + payload
            s.sendto(packet, (dst, 0))
            while True:  # the raw socket also sees our own request on some paths
                reply, addr = s.recvfrom(2048)
                if addr[0] == dst and reply[20] == 0:
                    break
            time.sleep(0.3)


PEERS = {
    "ping": peer_ping,
    "mllp-server": peer_mllp_server,
    "mllp-client": peer_mllp_client,
    "pacs": peer_pacs,
    "ct": peer_ct,
    "cr": peer_cr,
    "router": peer_router,
    "laptop-web": peer_laptop_web,
}


# ---- network namespaces -------------------------------------------------------------------
def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=60)


def ns(name: str) -> str:
    return NET.ns(name)


def in_ns(namespace: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", namespace, *args, check=check)


def namespaces() -> list[str]:
    return NET.namespaces()


def build(net: Net = NET) -> None:
    sw, rtr = net.sw, net.rtr
    for n in net.namespaces():
        sh("ip", "netns", "add", n)
        # no IPv6 (no RS/MLD/DAD chatter that would differ per run), lo up for local sockets
        in_ns(n, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
              "net.ipv6.conf.default.disable_ipv6=1")
        sh("ip", "-n", n, "link", "set", "lo", "up")
    for vlan in net.vlans:
        sh("ip", "-n", sw, "link", "add", f"br{vlan}", "type", "bridge", "stp_state", "0")
        sh("ip", "-n", sw, "link", "set", f"br{vlan}", "up")
    for vlan in net.vlans:  # the router's SVI on each VLAN, one MAC for all (an L3 switch)
        port, svi = f"rtr-v{vlan}", f"vlan{vlan}"
        sh("ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", svi,
           "netns", rtr)
        sh("ip", "-n", sw, "link", "set", port, "master", f"br{vlan}", "up")
        sh("ip", "-n", rtr, "link", "set", "dev", svi, "address", net.router_mac)
        sh("ip", "-n", rtr, "addr", "add", f"{net.router_ips[vlan]}/16", "dev", svi)
        sh("ip", "-n", rtr, "link", "set", svi, "up")
    in_ns(rtr, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    for h in net.hosts:
        port = f"p-{h.name}"
        sh("ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0",
           "netns", net.ns(h.name))
        sh("ip", "-n", sw, "link", "set", port, "master", f"br{h.vlan}", "up")
        sh("ip", "-n", net.ns(h.name), "link", "set", "dev", "eth0", "address", h.mac)
        sh("ip", "-n", net.ns(h.name), "addr", "add", f"{h.ip}/16", "dev", "eth0")
        sh("ip", "-n", net.ns(h.name), "link", "set", "eth0", "up")
        sh("ip", "-n", net.ns(h.name), "route", "add", "default", "via", net.router_ips[h.vlan])


def teardown(procs: list[subprocess.Popen[bytes]], net: Net = NET) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for n in net.namespaces():
        sh("ip", "netns", "del", n, check=False)


def wait_listen(namespace: str, port: int, udp: bool = False) -> None:
    """Wait for a listener via ss (a probe connection would be captured)."""
    for _ in range(200):
        out = in_ns(namespace, "ss", "-lunH" if udp else "-ltnH", f"sport = :{port}").stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {namespace}:{port}")


def start(procs: list[subprocess.Popen[bytes]], host: str, *args: str, net: Net = NET) -> None:
    procs.append(subprocess.Popen(["ip", "netns", "exec", net.ns(host), *args],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def peer(host: str, *args: str, net: Net = NET, script: str = __file__) -> None:
    """Run ``make_sample.py peer ...`` (or ``script peer ...``) inside ``host``'s namespace,
    to the end."""
    cmd = ["ip", "netns", "exec", net.ns(host), sys.executable, str(Path(script).resolve()),
           "peer", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"peer {args} in {host} failed: {done.stderr[-2000:]}")


def run(host: str, *args: str, net: Net = NET) -> None:
    done = subprocess.run(["ip", "netns", "exec", net.ns(host), *args], capture_output=True,
                          text=True, timeout=60)
    if done.returncode:
        raise RuntimeError(f"{args[0]} in {host} failed ({done.returncode}): "
                           f"{done.stdout[-1000:]} {done.stderr[-1000:]}")


# ---- the recording ------------------------------------------------------------------------
def write_worklist(directory: Path) -> None:
    """The RIS's worklist (a CT and an MR item) as wlmscpfs data files in directory/RIS_MWL."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    mdp = dicom_modules()
    wl = directory / RIS_AE
    wl.mkdir(parents=True)
    (wl / "lockfile").touch()
    for n, (mod, ae, station) in enumerate((("CT", "CT_REVO_1", "CTSTATION01"),
                                            ("MR", "MR_VIDA_1", "MRC40123"))):
        item = worklist_item(21 + n, mod, ae, station)
        item.file_meta = FileMetaDataset()
        item.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        item.file_meta.MediaStorageSOPClassUID = "1.2.276.0.7230010.3.1.0.1"
        item.file_meta.MediaStorageSOPInstanceUID = mdp.uid(600100 + n)
        item.save_as(wl / f"item{n}.wl", enforce_file_format=True)


Dump = tuple[int, Path, "subprocess.Popen[bytes]"]


def start_mirror(tmp: Path, net: Net = NET) -> list[Dump]:
    """The mirror: one tcpdump per VLAN bridge, writing tmp/vlanNN.pcap."""
    dumps = []
    for vlan in net.vlans:
        path = tmp / f"vlan{vlan}.pcap"
        p = subprocess.Popen(
            ["ip", "netns", "exec", net.sw, "tcpdump", "-i", f"br{vlan}", "--immediate-mode",
             "-U", "-n", "-s", "0", "--time-stamp-precision=nano", "-w", str(path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert p.stderr is not None
        line = p.stderr.readline().decode()
        if "listening" not in line:
            raise RuntimeError(f"tcpdump on br{vlan} did not start: {line!r}")
        dumps.append((vlan, path, p))
    time.sleep(0.5)  # "listening" is printed just before the socket is live
    return dumps


def stop_mirror(dumps: list[Dump]) -> None:
    for _vlan, _path, p in dumps:
        p.send_signal(signal.SIGINT)
    for _vlan, _path, p in dumps:
        p.wait(timeout=10)


def record(out: Path, keep_raw: bool) -> dict[int, int]:
    mdp = dicom_modules()
    py, me = sys.executable, str(Path(__file__).resolve())
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix="medtap-sample-"))
    try:
        teardown([])  # leftovers of an interrupted run
        build()
        # -- servers
        write_worklist(tmp / "wlist")
        mr_files = [str(mdp.as_file(mdp.image("MR", 5200 + i), tmp / f"mr{i}.dcm"))
                    for i in range(2)]
        # -dhl: no reverse lookups of callers (they would go to the host's resolver)
        start(procs, "ris", "/usr/bin/wlmscpfs", "-dhl", "-dfp", str(tmp / "wlist"),
              str(MWL_PORT))
        start(procs, "ris", py, me, "peer", "mllp-server", HOST["ris"].ip)
        start(procs, "his", py, me, "peer", "mllp-server", HOST["his"].ip)
        start(procs, "piic", py, me, "peer", "mllp-server", HOST["piic"].ip)
        start(procs, "pacs", py, me, "peer", "pacs")
        procs.append(subprocess.Popen(["ip", "netns", "exec", RTR, py, me, "peer", "router"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_listen(ns("ris"), MWL_PORT)
        for host in ("ris", "his", "piic"):
            wait_listen(ns(host), HL7_PORT)
        wait_listen(ns("pacs"), DICOM_PORT)
        wait_listen(RTR, 80)
        wait_listen(RTR, 53, udp=True)
        # -- the mirror: one tcpdump per VLAN bridge
        dumps = start_mirror(tmp)
        # -- the morning's traffic
        peer("laptop", "ping", HOST["laptop"].ip, ROUTER_IPS[99], "4711")
        peer("his", "ping", HOST["his"].ip, HOST["piic"].ip, "4712")
        peer("his", "mllp-client", HOST["his"].ip, HOST["piic"].ip, "adt")
        peer("piic", "mllp-client", HOST["piic"].ip, HOST["his"].ip, "piic")
        peer("spacecom", "mllp-client", HOST["spacecom"].ip, HOST["his"].ip, "spacecom")
        peer("his", "mllp-client", HOST["his"].ip, HOST["ris"].ip, "orders")
        peer("ct", "ct")
        run("mr", "/usr/bin/findscu", "-W", "-aet", "MR_VIDA_1", "-aec", RIS_AE,
            "-k", "ScheduledProcedureStepSequence[0].Modality=MR",
            "-k", "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=MR_VIDA_1",
            "-k", "PatientName", "-k", "PatientID", "-k", "AccessionNumber",
            HOST["ris"].ip, str(MWL_PORT))
        time.sleep(0.3)
        run("mr", "/usr/bin/storescu", "-aet", "MR_VIDA_1", "-aec", PACS_AE, HOST["pacs"].ip,
            str(DICOM_PORT), *mr_files)
        peer("cr", "cr")
        peer("laptop", "laptop-web")
        run("laptop", "/usr/bin/echoscu", "-aet", "LAPTOP-GUEST", "-aec", PACS_AE,
            HOST["pacs"].ip, str(DICOM_PORT))
        time.sleep(0.5)  # last FIN/ACKs
        stop_mirror(dumps)
        per_vlan = write_mirror(out, [(vlan, path) for vlan, path, _p in dumps])
        if keep_raw:
            for _vlan, path, _p in dumps:
                shutil.copy(path, out.parent / path.name)
    finally:
        teardown(procs)
        shutil.rmtree(tmp, ignore_errors=True)
    return per_vlan


# ---- the mirror port: per-bridge pcaps -> one tagged pcapng interface ------------------------
def read_pcap_ns(path: Path) -> list[tuple[int, bytes, int]]:
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    if magic != 0xA1B23C4D:
        raise RuntimeError(f"{path}: expected a nanosecond little-endian pcap")
    linktype = struct.unpack("<I", data[20:24])[0]
    if linktype != 1:
        raise RuntimeError(f"{path}: link type {linktype}, expected Ethernet")
    pos, frames = 24, []
    while pos + 16 <= len(data):
        sec, nsec, caplen, wirelen = struct.unpack_from("<IIII", data, pos)
        frames.append((sec * 1_000_000_000 + nsec, data[pos + 16 : pos + 16 + caplen], wirelen))
        pos += 16 + caplen
    return frames


def tag(frame: bytes, vlan: int) -> bytes:
    """Insert an 802.1Q tag (PCP 0) after the MACs; pad to the 64-byte tagged minimum."""
    tagged = frame[:12] + struct.pack(">HH", 0x8100, vlan) + frame[12:]
    return tagged + bytes(max(0, 64 - len(tagged)))


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)


def _block(kind: int, body: bytes) -> bytes:
    return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def write_mirror(out: Path, captures: list[tuple[int, Path]], comment: str | None = None,
                 writer: str = "medtap pcaps/sample/make_sample.py") -> dict[int, int]:
    """Write the mirror pcapng; returns the number of frames per VLAN."""
    merged = []
    for order, (vlan, path) in enumerate(captures):
        for ts, frame, _wire in read_pcap_ns(path):
            merged.append((ts, order, tag(frame, vlan)))
    merged.sort(key=lambda r: (r[0], r[1]))
    if comment is None:
        comment = ("medtap sample hospital: real peers in network namespaces, VLANs "
                   + ", ".join(f"{v} {n}" for v, n in VLANS.items())
                   + "; see pcaps/sample/README.md")
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                 + _option(1, comment.encode()) + _option(4, writer.encode())
                 + _option(0, b""))
    idb = _block(1, struct.pack("<HHI", 1, 0, 262144) + _option(2, b"mirror0")
                 + _option(3, b"SPAN of core switch, VLANs 10/20/30/99 tagged")
                 + _option(9, b"\x09") + _option(0, b""))
    blocks = [shb, idb]
    for ts, _order, frame in merged:
        body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame))
        blocks.append(_block(6, body + frame + bytes(-len(frame) % 4)))
    out.write_bytes(b"".join(blocks))
    print(f"{out}: {len(merged)} frames, {out.stat().st_size} bytes")  # noqa: T201
    return {vlan: sum(1 for _ts, o, _f in merged if o == order)
            for order, (vlan, _path) in enumerate(captures)}


# ---- ground truth (what the peers were built and told to say; not parser output) -----------
def truth() -> dict[str, object]:
    mdp = dicom_modules()

    def dev(name: str, **fields: object) -> dict[str, object]:
        h = HOST[name]
        return {"name": name, "role": h.role, "ip": h.ip, "mac": h.mac, "vlan": h.vlan,
                **fields}

    def modality(name: str, key: str) -> dict[str, object]:
        _sop, _manufacturer, model, station, serial, software = mdp.DEVICES[key]
        vendor = {"CT": "GE Healthcare", "MR": "Siemens Healthineers", "CR": "Fujifilm"}[key]
        device_type = {"CT": "ct", "MR": "mr", "CR": "x-ray"}[key]  # the inventory vocabulary
        return dev(name, device_type=device_type, category="medical", vendor=vendor,
                   model=model, software_version=software, serial=serial, hostname=station)

    def flow(client: str, server: str, port: int | None, app: str | None,
             transport: str = "tcp") -> dict[str, object]:
        c, s = HOST[client], HOST[server]
        return {"client": c.ip, "server": s.ip, "server_port": port, "transport": transport,
                "app": app, "client_vlan": c.vlan, "server_vlan": s.vlan}

    def to_router(port: int | None, transport: str, what: str,
                  app: str | None = None) -> dict[str, object]:
        laptop = HOST["laptop"]
        return {"client": laptop.ip, "server": ROUTER_IPS[99], "server_port": port,
                "transport": transport, "app": app, "client_vlan": 99, "server_vlan": 99,
                "what": what}

    return {
        "description": "A small hospital seen from a SPAN port of its core L3 switch: VLAN 10 "
                       "clinical, 20 medical devices, 30 imaging, 99 guest. Recorded with real "
                       "peers in network namespaces by make_sample.py; see README.md.",
        # counted from the recording by make_sample.py (not by construction): for the
        # tshark/medtap agreement checks
        "packets": None,
        "packets_per_vlan": None,
        "vlans": sorted(VLANS),
        "devices": [
            dev("his", device_type="his", category="clinical-it", vendor="Dedalus",
                model="ORBIS", software_version=ORBIS_VERSION),
            dev("ris", device_type="ris", category="clinical-it"),
            dev("piic", device_type="medical-gateway", category="medical", vendor="Philips",
                model="IntelliVue Information Center", software_version=PIIC_VERSION),
            dev("spacecom", device_type="medical-gateway", category="medical",
                vendor="B. Braun", model="SpaceCom", software_version=SPACECOM_VERSION),
            dev("pacs", device_type="pacs", category="clinical-it", vendor="GE Healthcare"),
            modality("ct", "CT"),
            modality("mr", "MR"),
            modality("cr", "CR"),
            dev("laptop", category_not="medical"),  # says nothing about itself but DICOM AE
            {"name": "router", "role": "core L3 switch / router (SVIs on all VLANs, one MAC)",
             "ips": [ROUTER_IPS[v] for v in sorted(VLANS)], "mac": ROUTER_MAC,
             "vlans": sorted(VLANS), "device_type": "network-infrastructure",
             "category": "infrastructure",
             "is_router": True},
        ],
        "named_devices": [
            *({"id": f"device:eui64:{eui}", "device_type": "patient-monitor",
               "vendor": "Philips", "model": f"IntelliVue {model}", "serial": serial,
               "reached_via": HOST["piic"].ip} for model, serial, eui in MONITORS),
            *({"id": f"device:eui64:{eui}", "device_type": "infusion-pump",
               "vendor": "B. Braun", "model": model, "serial": serial,
               "reached_via": HOST["spacecom"].ip} for model, serial, eui in PUMPS),
        ],
        "routers": [ROUTER_MAC],
        "oui_vendors": {
            HOST["his"].mac: "Hewlett Packard", HOST["ris"].mac: "Dell Inc.",
            HOST["piic"].mac: "Philips Patient Monitoring",
            HOST["spacecom"].mac: "B.Braun Melsungen AG", HOST["pacs"].mac: "Dell Inc.",
            HOST["ct"].mac: "GE Healthcare", HOST["mr"].mac: "SIEMENS AG",
            HOST["cr"].mac: "FUJIFILM Corporation", HOST["laptop"].mac: "Intel Corporate",
            ROUTER_MAC: "Cisco Systems, Inc",
        },
        "expected_flows": [
            flow("his", "piic", HL7_PORT, "hl7"),
            flow("piic", "his", HL7_PORT, "hl7"),
            flow("spacecom", "his", HL7_PORT, "hl7"),
            flow("his", "ris", HL7_PORT, "hl7"),
            flow("ct", "ris", MWL_PORT, "dicom"),
            flow("mr", "ris", MWL_PORT, "dicom"),
            flow("ct", "pacs", DICOM_PORT, "dicom"),
            flow("mr", "pacs", DICOM_PORT, "dicom"),
            flow("cr", "pacs", DICOM_PORT, "dicom"),
            flow("laptop", "pacs", DICOM_PORT, "dicom"),
        ],
        "expected_cross_vlan_flows": [
            flow("his", "piic", HL7_PORT, "hl7"),
            flow("piic", "his", HL7_PORT, "hl7"),
            flow("spacecom", "his", HL7_PORT, "hl7"),
            flow("ct", "ris", MWL_PORT, "dicom"),
            flow("mr", "ris", MWL_PORT, "dicom"),
            flow("laptop", "pacs", DICOM_PORT, "dicom"),
        ],
        "segmentation_violations": [
            {**flow("laptop", "pacs", DICOM_PORT, "dicom"),
             "why": "guest VLAN reaches the PACS DICOM port (C-ECHO, association accepted)"},
        ],
        "other_flows": [  # and ARP on every VLAN (hosts and the router resolving each other)
            to_router(None, "icmp", "ICMP echo x2 to the router"),
            {**flow("his", "piic", None, None, "icmp"), "what": "ICMP echo x2 across VLANs"},
            to_router(53, "udp", "DNS A portal.guest.lan, pacs.hospital.lan", "dns"),
            to_router(80, "tcp", "HTTP GET / to the router's captive portal", "http"),
        ],
        "messages": {
            "hl7": {"ADT (HIS -> PIIC)": 2, "ORU^R01 PCD-01 (PIIC -> HIS)": 4,
                    "ORU^R01 PCD-01 (SpaceCom -> HIS)": 2, "OMI^O23 (HIS -> RIS)": 2,
                    "ACK": 10},
            "dicom": {"C-FIND MWL (CT, MR -> RIS)": 2, "C-STORE CT": 3, "C-STORE MR": 2,
                      "C-STORE CR": 1, "C-ECHO (laptop -> PACS)": 1},
        },
        "canaries": CANARIES,
    }


def write_truth_file(path: Path, doc: dict[str, Any], per_vlan: dict[int, int] | None) -> None:
    """Write ``doc`` as a truth file; packet counts come from the recording (``per_vlan``),
    or, for --truth-only, are kept from the file already there."""
    if per_vlan is None and path.exists():  # --truth-only: keep the recording's counts
        old = json.loads(path.read_text("utf-8"))
        doc["packets"], doc["packets_per_vlan"] = old.get("packets"), old.get("packets_per_vlan")
    elif per_vlan is not None:
        doc["packets"] = sum(per_vlan.values())
        doc["packets_per_vlan"] = {str(v): n for v, n in sorted(per_vlan.items())}
    path.write_text(json.dumps(doc, indent=1) + "\n", "utf-8")


def recorder_main(
    argv: list[str],
    *,
    description: str,
    capture: Path,
    truth: Callable[[], dict[str, Any]],
    record: Callable[[Path, bool], dict[int, int]],
    peers: dict[str, Callable[..., Any]],
) -> int:
    """The command line every namespace recording script shares: ``peer NAME ARGS`` runs one
    peer (inside its namespace), else record to --out (the truth file is rewritten only when
    recording to the committed capture), or --truth-only."""
    if argv[:1] == ["peer"]:
        peers[argv[1]](*argv[2:])
        return 0
    truth_path = capture.with_name(capture.stem + ".truth.json")
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", type=Path, default=capture)
    ap.add_argument("--keep-raw", action="store_true", help="also keep the per-bridge pcaps")
    ap.add_argument("--truth-only", action="store_true")
    args = ap.parse_args(argv)
    if args.truth_only:
        write_truth_file(truth_path, truth(), None)
        return 0
    if os.geteuid() != 0:
        print("needs root (network namespaces, tcpdump)", file=sys.stderr)  # noqa: T201
        return 1
    per_vlan = record(args.out, args.keep_raw)
    if args.out.resolve() == capture.resolve():
        write_truth_file(truth_path, truth(), per_vlan)
    return 0


def main(argv: list[str]) -> int:
    return recorder_main(
        argv,
        description=__doc__.split("\n")[0],
        capture=HERE / f"{NAME}.pcapng",
        truth=truth,
        record=record,
        peers=PEERS,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
