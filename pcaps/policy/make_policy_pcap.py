"""Record pcaps/policy/hospital-policy.pcapng: routed cross-VLAN flows for the policy tests.

Usage (root):  python pcaps/policy/make_policy_pcap.py [--out FILE] [--keep-raw]
               python pcaps/policy/make_policy_pcap.py --truth-only

The same machinery as pcaps/sample/make_sample.py, imported from it (namespaces, one
bridge per VLAN, the router with an SVI per VLAN, the per-bridge tcpdump mirror and the
merge into one 802.1Q-tagged pcapng interface), with its own hosts in namespaces
``medtap-pol-<name>``: real dcmtk/pynetdicom/asyncio-MLLP peers, a B. Braun infusion
pump with its own IP that reports PCD-01 itself, a guest laptop, and an "internet" host
(203.0.113.7, a documentation address) behind an uplink of the router that the mirror does
not see. The flows are chosen against pcaps/policy/policy.yaml: allowed ones, a HIS pushing
ADT into the medical VLAN (default deny), the pump reaching the guest VLAN and the internet
(rule pumps-never-leave-medical), repeated connections for deduplication, ICMP across VLANs.

Traffic goes only between the namespaces made here. Content is fixed; times, ephemeral
ports, IP ids, TCP sequence numbers and TLS key shares vary run to run. Namespaces, links
and processes are removed in ``finally``. ``--truth-only`` rewrites
hospital-policy.truth.json from ``truth()`` below: from what the peers were told to do,
never from medtap output (only the frame counts come from the recording).
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
PCAPS = HERE.parent
sys.path.insert(0, str(PCAPS / "sample"))
import make_sample as ms  # noqa: E402  (pcaps/sample/make_sample.py)

NAME = "hospital-policy"
PREFIX = "medtap-pol-"
Host = ms.Host


# ---- the hospital ---------------------------------------------------------------------------
def _sample(name: str, role: str) -> ms.Host:
    """A host of the sample hospital (same IP and MAC), with its role in this capture."""
    return dataclasses.replace(ms.HOST[name], role=role)


PUMP_MAC = "00:12:21:4a:03:1e"  # B.Braun Melsungen AG
HOSTS = (
    _sample("his", "HIS (Dedalus ORBIS) on an HP server: MLLP server on 2575 receiving PCD-01; "
            "pushes ADT A01/A08/A03 into the medical VLAN to the PIIC, pings it"),
    _sample("ris", "RIS on a Dell server: DICOM Modality Worklist (dcmtk wlmscpfs, port 11113); "
            "C-ECHO to the PACS (dcmtk echoscu)"),
    _sample("piic", "Philips IntelliVue Information Center iX (monitor gateway): PCD-01 ORU^R01 "
            "for two monitors to the HIS on 2575, ADT receiver"),
    _sample("spacecom", "B. Braun SpaceCom pump gateway: MLLP server on 2575 receiving the "
            "pump's PCD-01 (ACKs as SPACECOM)"),
    Host("pump", 20, "10.20.3.30", PUMP_MAC, "B. Braun Infusomat Space with its own IP: "
         "PCD-01 ORU^R01 about itself to SpaceCom; HTTP to a guest laptop; NTP and HTTPS to "
         "the internet"),
    _sample("pacs", "PACS archive on a Dell server (pynetdicom SCP with a GE implementation "
            "UID, port 104)"),
    _sample("ct", "GE Revolution CT: MWL query to the RIS, C-STORE to the PACS (pynetdicom)"),
    _sample("laptop", "guest laptop (Intel NIC): a service tool's HTTP server on 8080"),
)
HOST = {h.name: h for h in HOSTS}
# make_sample's DICOM peers (pacs, ct) read make_sample.HOST: the same addresses here
assert all(HOST[n].ip == ms.HOST[n].ip for n in ("ris", "pacs", "ct")), "reused peers"
NET = ms.Net(PREFIX, HOSTS, ms.VLANS, ms.ROUTER_MAC, ms.ROUTER_IPS)

# The internet: one host behind an uplink of the router; the SPAN covers the user VLANs only
INET = "inet"  # namespace medtap-pol-inet
INTERNET_IP, UPLINK_IP = "203.0.113.7", "203.0.113.1"  # RFC 5737 TEST-NET-3
INTERNET_MAC, UPLINK_MAC = "02:00:cb:00:71:07", "e8:0a:b9:1c:4e:fe"
CLOUD_NAME = "telemetry.example.net"  # SNI of the pump's HTTPS connection

HL7_PORT, MWL_PORT, DICOM_PORT = ms.HL7_PORT, ms.MWL_PORT, ms.DICOM_PORT
SERVICE_TOOL_PORT, NTP_PORT, HTTPS_PORT = 8080, 123, 443
PUMP_MODEL, PUMP_SERIAL, PUMP_VERSION = "Infusomat Space", "34300031", "686J"
PUMP_EUI = "001221FFFE4A031E"  # EUI-64 of the pump's MAC (MSH-3 universal id only)
POLICY_SERVICES = {"hl7": "tcp/2575", "mwl": "tcp/11113", "dicom": "tcp/104"}
CANARIES = ms.CANARIES


# ---- HL7 content ------------------------------------------------------------------------------
def pcd01_pump(n: int) -> bytes:
    """IHE PCD-01 from the pump itself: OBX-18 and PRT-10 name the model but carry no
    instance id of their own, so the facts describe the sender; PRT-20 its serial."""
    equip = f"{PUMP_MODEL}^B. Braun"
    prt = [""] * 21
    prt[:5] = ["PRT", "1", "UC", "", "AAP^Administering Device^HL70912"]
    prt[10], prt[20] = equip, PUMP_SERIAL
    return ms.msg(
        f"MSH|^~\\&|INFUSOMAT^{PUMP_EUI}^EUI-64|STATION-ICU-3|SPACECOM|KLINIKUM|"
        f"20240102{n:06d}||ORU^R01^ORU_R01|IFS{n:05d}|P|2.6|||AL|NE||UNICODE UTF-8|||"
        f"{ms.PCD_PROFILE}",
        f"SFT|B. Braun Melsungen AG|{PUMP_VERSION}|{PUMP_MODEL}|IFS{PUMP_VERSION}",
        ms.PID, ms.PV1,
        "OBR|1|CANARY-ID-4711^HOSP||69985^MDC_DEV_PUMP_INFUS_MDS^MDC",
        f"OBX|1||69985^MDC_DEV_PUMP_INFUS_MDS^MDC|1.0.0.0|||||||X|||||||{equip}",
        f"OBX|2||69986^MDC_DEV_PUMP_INFUS_VMD^MDC|1.1.0.0|||||||X|||||||{equip}",
        f"OBX|3|NM|157784^MDC_FLOW_FLUID_PUMP^MDC|1.1.1.1|{20 + n}|265266^MDC_DIM_MILLI_L_PER_HR"
        f"^MDC|||||R|||||||{equip}",
        "|".join(prt),
        "NTE|1||CANARY^PATIENT Kanarienweg 7",
    )


def hl7_batch(which: str) -> list[bytes]:
    """The messages of one MLLP connection."""
    if which.startswith("piic-"):  # piic-1: messages 1 and 2, piic-2: 3 and 4
        first = 2 * int(which[5:]) - 1
        return [ms.pcd01_monitor(n, *ms.MONITORS[(n - 1) % 2]) for n in (first, first + 1)]
    if which.startswith("adt-"):  # adt-A01 ...
        event = which[4:]
        return [ms.adt(event, {"A01": 11, "A08": 12, "A03": 13}[event])]
    if which == "pump":
        return [pcd01_pump(1), pcd01_pump(2)]
    raise ValueError(which)


# ---- other payloads ---------------------------------------------------------------------------
NTP_2024 = 3_913_056_000  # 2024-01-01T00:00:00Z in NTP seconds


def ntp_request() -> bytes:
    """SNTP client request (RFC 4330): LI 0, VN 4, mode 3; transmit timestamp set."""
    return b"\x23" + bytes(39) + struct.pack(">II", NTP_2024 + 3600, 0)


def ntp_reply(request: bytes) -> bytes:
    """Server reply (mode 4, stratum 2), fixed times; origin = the request's transmit time."""
    head = struct.pack(">BBbbII4s", 0x24, 2, 6, -20, 0x00000010, 0x00000020,
                       socket.inet_aton(UPLINK_IP))
    ref = struct.pack(">II", NTP_2024 + 3000, 0)
    now = struct.pack(">II", NTP_2024 + 3600, 0x80000000)
    return head + ref + request[40:48] + now + now


TOOL_PAGE = b'<?xml version="1.0"?><druglibrary site="ICU" version="2024-01"/>'
TOOL_REPLY = (b"HTTP/1.1 200 OK\r\nServer: Jetty(9.4.53.v20231009)\r\n"
              b"Content-Type: application/xml\r\nContent-Length: "
              + str(len(TOOL_PAGE)).encode() + b"\r\nConnection: close\r\n\r\n" + TOOL_PAGE)
TOOL_REQUEST = (b"GET /druglibrary/current.xml HTTP/1.1\r\nHost: 10.99.0.57:8080\r\n"
                b"Connection: close\r\n\r\n")


def banners_modules() -> ModuleType:
    sys.path.insert(0, str(PCAPS / "banners"))
    import make_banners  # self_signed(), tls_server(), tls_client(), client_ctx()

    return make_banners


# ---- peers: run inside a namespace as ``make_policy_pcap.py peer <name> [args]`` --------------
def peer_hl7(src: str, dst: str, which: str) -> None:
    rec = ms.hl7_modules()
    messages = hl7_batch(which)
    asyncio.run(rec.client(src, dst, HL7_PORT, rec.frames(*messages), gap=0.15,
                           wait_acks=len(messages)))


def peer_service_tool() -> None:
    """The guest laptop's service tool: answers every GET with the same small XML file."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(TOOL_REPLY)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def serve() -> None:
        srv = await asyncio.start_server(handle, HOST["laptop"].ip, SERVICE_TOOL_PORT)
        async with srv:
            await srv.serve_forever()

    asyncio.run(serve())


def peer_pump_http() -> None:
    with socket.create_connection((HOST["laptop"].ip, SERVICE_TOOL_PORT), timeout=3,
                                  source_address=(HOST["pump"].ip, 0)) as c:
        c.sendall(TOOL_REQUEST)
        while c.recv(4096):
            pass


def peer_internet(cert: str, key: str) -> None:
    """The internet host: SNTP on udp/123 and an HTTPS (TLS 1.3) endpoint on tcp/443."""
    mb = banners_modules()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    mb.tls_server(INTERNET_IP, HTTPS_PORT, ctx)  # a daemon thread
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((INTERNET_IP, NTP_PORT))
        while True:
            data, addr = s.recvfrom(512)
            if len(data) >= 48 and data[0] & 0x07 == 3:
                s.sendto(ntp_reply(data), addr)


def peer_pump_ntp() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST["pump"].ip, 0))
        s.settimeout(2)
        s.sendto(ntp_request(), (INTERNET_IP, NTP_PORT))
        s.recvfrom(512)


def peer_pump_https() -> None:
    mb = banners_modules()
    mb.tls_client(HOST["pump"].ip, INTERNET_IP, HTTPS_PORT,
                  mb.client_ctx(ssl.TLSVersion.TLSv1_3, ["http/1.1"]), CLOUD_NAME)


PEERS = {
    "ping": ms.peer_ping,
    "mllp-server": ms.peer_mllp_server,
    "pacs": ms.peer_pacs,
    "ct": ms.peer_ct,
    "hl7": peer_hl7,
    "service-tool": peer_service_tool,
    "pump-http": peer_pump_http,
    "internet": peer_internet,
    "pump-ntp": peer_pump_ntp,
    "pump-https": peer_pump_https,
}


# ---- the network ------------------------------------------------------------------------------
def add_internet() -> None:
    """The router's uplink (not mirrored) to the internet host's namespace."""
    inet, rtr = NET.ns(INET), NET.rtr
    ms.sh("ip", "netns", "add", inet)
    ms.in_ns(inet, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
             "net.ipv6.conf.default.disable_ipv6=1")
    ms.sh("ip", "-n", inet, "link", "set", "lo", "up")
    ms.sh("ip", "-n", rtr, "link", "add", "uplink", "type", "veth", "peer", "name", "eth0",
          "netns", inet)
    ms.sh("ip", "-n", rtr, "link", "set", "dev", "uplink", "address", UPLINK_MAC)
    ms.sh("ip", "-n", rtr, "addr", "add", f"{UPLINK_IP}/24", "dev", "uplink")
    ms.sh("ip", "-n", rtr, "link", "set", "uplink", "up")
    ms.sh("ip", "-n", inet, "link", "set", "dev", "eth0", "address", INTERNET_MAC)
    ms.sh("ip", "-n", inet, "addr", "add", f"{INTERNET_IP}/24", "dev", "eth0")
    ms.sh("ip", "-n", inet, "link", "set", "eth0", "up")
    ms.sh("ip", "-n", inet, "route", "add", "default", "via", UPLINK_IP)


def teardown(procs: list[subprocess.Popen[bytes]]) -> None:
    ms.teardown(procs, NET)  # only medtap-pol-* namespaces
    ms.sh("ip", "netns", "del", NET.ns(INET), check=False)


def peer(host: str, *args: str) -> None:
    ms.peer(host, *args, net=NET, script=__file__)


# ---- the recording ----------------------------------------------------------------------------
def record(out: Path, keep_raw: bool) -> dict[int, int]:
    mb = banners_modules()
    py, me = sys.executable, str(Path(__file__).resolve())
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix=PREFIX))
    ip = {name: h.ip for name, h in HOST.items()}
    try:
        teardown([])  # leftovers of an interrupted run
        ms.build(NET)
        add_internet()
        # -- servers
        ms.write_worklist(tmp / "wlist")
        cert, key = mb.self_signed({"cn": CLOUD_NAME, "o": "Example Telemetry"}, tmp, "cloud")
        ms.start(procs, "ris", "/usr/bin/wlmscpfs", "-dhl", "-dfp", str(tmp / "wlist"),
                 str(MWL_PORT), net=NET)
        for host in ("his", "piic", "spacecom"):
            ms.start(procs, host, py, me, "peer", "mllp-server", ip[host], net=NET)
        ms.start(procs, "pacs", py, me, "peer", "pacs", net=NET)
        ms.start(procs, "laptop", py, me, "peer", "service-tool", net=NET)
        ms.start(procs, INET, py, me, "peer", "internet", str(cert), str(key), net=NET)
        ms.wait_listen(NET.ns("ris"), MWL_PORT)
        for host in ("his", "piic", "spacecom"):
            ms.wait_listen(NET.ns(host), HL7_PORT)
        ms.wait_listen(NET.ns("pacs"), DICOM_PORT)
        ms.wait_listen(NET.ns("laptop"), SERVICE_TOOL_PORT)
        ms.wait_listen(NET.ns(INET), HTTPS_PORT)
        ms.wait_listen(NET.ns(INET), NTP_PORT, udp=True)
        # -- the mirror
        dumps = ms.start_mirror(tmp, NET)
        procs.extend(p for _vlan, _path, p in dumps)
        # -- the morning's traffic (see truth() for what each step is under the policy)
        peer("his", "ping", ip["his"], ip["piic"], "4712")
        peer("piic", "hl7", ip["piic"], ip["his"], "piic-1")
        peer("his", "hl7", ip["his"], ip["piic"], "adt-A01")
        peer("pump", "hl7", ip["pump"], ip["spacecom"], "pump")
        peer("ct", "ct")
        peer("his", "hl7", ip["his"], ip["piic"], "adt-A08")
        ms.run("ris", "/usr/bin/echoscu", "-aet", "RIS_QR", "-aec", ms.PACS_AE, ip["pacs"],
               str(DICOM_PORT), net=NET)
        peer("pump", "pump-http")
        peer("pump", "pump-ntp")
        peer("pump", "pump-https")
        peer("piic", "hl7", ip["piic"], ip["his"], "piic-2")
        peer("his", "hl7", ip["his"], ip["piic"], "adt-A03")
        peer("pump", "pump-http")
        time.sleep(0.5)  # last FIN/ACKs
        ms.stop_mirror(dumps)
        comment = ("medtap segmentation-policy capture: real peers in network namespaces, "
                   "VLANs " + ", ".join(f"{v} {n}" for v, n in ms.VLANS.items())
                   + "; internet host behind an unmirrored uplink; see pcaps/policy/README.md")
        per_vlan = ms.write_mirror(out, [(vlan, path) for vlan, path, _p in dumps],
                                   comment=comment,
                                   writer="medtap pcaps/policy/make_policy_pcap.py")
        if keep_raw:
            for _vlan, path, _p in dumps:
                shutil.copy(path, out.parent / path.name)
    finally:
        teardown(procs)
        shutil.rmtree(tmp, ignore_errors=True)
    return per_vlan


# ---- ground truth (what the peers were told to do; not medtap output) ------------------------
ZONE_OF_VLAN = {10: "clinical", 20: "medical", 30: "imaging", 99: "guest"}  # policy.yaml
DEFAULT_SEVERITY = "high"  # collector/policy.py DEFAULT_SEVERITY: policy.yaml sets none


def truth() -> dict[str, object]:
    sample = ms.truth()
    sample_devices = {d["name"]: d for d in sample["devices"]}  # type: ignore[union-attr]
    oui: dict[str, str] = sample["oui_vendors"]  # type: ignore[assignment]

    def dev(name: str, **fields: object) -> dict[str, object]:
        h = HOST[name]
        return {"name": name, "role": h.role, "ip": h.ip, "mac": h.mac, "vlan": h.vlan,
                "zone": ZONE_OF_VLAN[h.vlan], **fields}

    def from_sample(name: str) -> dict[str, object]:
        fields = {k: v for k, v in sample_devices[name].items()
                  if k not in ("name", "role", "ip", "mac", "vlan")}
        return dev(name, **fields)

    def end(name: str) -> tuple[str, int | None, str]:
        if name == "internet":
            return INTERNET_IP, None, "external"
        h = HOST[name]
        return h.ip, h.vlan, ZONE_OF_VLAN[h.vlan]

    def flow(client: str, server: str, service: str, app: str | None, connections: int,
             verdict: str, what: str) -> dict[str, object]:
        c_ip, c_vlan, c_zone = end(client)
        s_ip, s_vlan, s_zone = end(server)
        transport, _, port = service.partition("/")
        return {"client": c_ip, "server": s_ip, "service": service, "transport": transport,
                "server_port": int(port) if port else None, "app": app,
                "client_vlan": c_vlan, "server_vlan": s_vlan,
                "client_zone": c_zone, "server_zone": s_zone,
                "connections": connections, "verdict": verdict, "what": what}

    flows = [
        flow("piic", "his", "tcp/2575", "hl7", 2, "allow monitor-gateway-to-engine",
             "PCD-01 ORU^R01, 2 per connection, each ACKed"),
        flow("ct", "ris", "tcp/11113", "dicom", 1, "allow modalities-to-worklist",
             "MWL C-FIND (pynetdicom, GE implementation UID)"),
        flow("ris", "pacs", "tcp/104", "dicom", 1, "allow reading-rooms-query-pacs",
             "C-ECHO (dcmtk echoscu)"),
        flow("pump", "spacecom", "tcp/2575", "hl7", 1, "allow same zone (medical)",
             "PCD-01 ORU^R01 from the pump about itself, 2 messages, ACKed"),
        flow("ct", "pacs", "tcp/104", "dicom", 1, "allow same zone (imaging)",
             "C-STORE of 3 CT images"),
        flow("his", "piic", "tcp/2575", "hl7", 3, "deny default",
             "ADT^A01, ADT^A08, ADT^A03: one message per connection, ACKed"),
        flow("his", "piic", "icmp", None, 1, "deny default", "ICMP echo x2 (id 4712)"),
        flow("pump", "laptop", "tcp/8080", "http", 2, "deny pumps-never-leave-medical",
             "HTTP GET of a drug library from the guest laptop's service tool, twice"),
        flow("pump", "internet", "udp/123", "ntp", 1, "deny pumps-never-leave-medical",
             "SNTP request and reply"),
        flow("pump", "internet", "tcp/443", "tls", 1, "deny pumps-never-leave-medical",
             f"TLS 1.3 (SNI {CLOUD_NAME}), one request and response"),
    ]
    allowed = [f for f in flows if str(f["verdict"]).startswith("allow")]
    violations = []
    for f in flows:
        verdict = str(f["verdict"])
        if not verdict.startswith("deny"):
            continue
        rule = verdict.split()[1]
        violations.append({
            "rule": rule,
            "severity": "critical" if rule == "pumps-never-leave-medical" else DEFAULT_SEVERITY,
            "client": f["client"], "server": f["server"], "service": f["service"],
            "flows": f["connections"], "app": f["app"],
            "client_zone": f["client_zone"], "server_zone": f["server_zone"],
            "client_device_type": "infusion-pump" if f["client"] == HOST["pump"].ip else "his",
        })
    pump_fields = {"device_type": "infusion-pump", "category": "medical", "vendor": "B. Braun",
                   "model": PUMP_MODEL, "software_version": PUMP_VERSION, "serial": PUMP_SERIAL}
    return {
        "description": "Routed cross-VLAN flows of a small hospital against "
                       "pcaps/policy/policy.yaml: VLAN 10 clinical, 20 medical, 30 imaging, "
                       "99 guest, and an internet host behind the router's unmirrored uplink. "
                       "Recorded with real peers in network namespaces by make_policy_pcap.py; "
                       "see README.md.",
        "policy": "policy.yaml",
        # counted from the recording by make_policy_pcap.py (not by construction)
        "packets": None,
        "packets_per_vlan": None,
        "vlans": sorted(ms.VLANS),
        "devices": [
            from_sample("his"),
            from_sample("ris"),
            from_sample("piic"),
            dev("spacecom", device_type="medical-gateway", category="medical",
                vendor="B. Braun", model="SpaceCom"),
            dev("pump", **pump_fields),
            from_sample("pacs"),
            from_sample("ct"),
            dev("laptop", category_not="medical"),
            {"name": "router", "role": "core L3 switch / router (SVIs on all VLANs, one MAC; "
             "uplink to the internet not mirrored)",
             "ips": [ms.ROUTER_IPS[v] for v in sorted(ms.VLANS)], "mac": ms.ROUTER_MAC,
             "vlans": sorted(ms.VLANS), "device_type": "network-infrastructure",
             "category": "infrastructure", "is_router": True},
        ],
        # seen only behind the router (docs/report-format.md: ip:<ip>@vlan<N>)
        "routed_only_hosts": [
            {"name": "internet", "id": f"ip:{INTERNET_IP}@vlan{HOST['pump'].vlan}",
             "ip": INTERNET_IP, "vlan": HOST["pump"].vlan, "zone": "external",
             "role": "an internet host (documentation address) behind the router's uplink: "
                     "SNTP on udp/123, HTTPS (TLS 1.3, self-signed) on tcp/443"},
        ],
        "named_devices": [d for d in sample["named_devices"]  # type: ignore[union-attr]
                          if d["reached_via"] == HOST["piic"].ip],
        "routers": [ms.ROUTER_MAC],
        "oui_vendors": {  # the registry names (netaddr) of the MACs the hosts were given
            **{HOST[n].mac: oui[ms.HOST[n].mac] for n in HOST if n in ms.HOST},
            HOST["pump"].mac: "B.Braun Melsungen AG", ms.ROUTER_MAC: oui[ms.ROUTER_MAC]},
        "flows": flows,
        "expected_allowed_cross_zone_flows": [
            f for f in allowed if f["client_zone"] != f["server_zone"]],
        "expected_violations": violations,
        "messages": {
            "hl7": {"ORU^R01 PCD-01 (PIIC -> HIS)": 4, "ADT A01/A08/A03 (HIS -> PIIC)": 3,
                    "ORU^R01 PCD-01 (pump -> SpaceCom)": 2, "ACK": 9},
            "dicom": {"C-FIND MWL (CT -> RIS)": 1, "C-STORE CT": 3, "C-ECHO (RIS -> PACS)": 1},
        },
        "canaries": CANARIES,
    }


def main(argv: list[str]) -> int:
    return ms.recorder_main(
        argv,
        description=(__doc__ or "").split("\n")[0],
        capture=HERE / f"{NAME}.pcapng",
        truth=truth,
        record=record,
        peers=PEERS,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
