"""Record pcaps/tls/tls-clinical.pcapng: clinical flows in cleartext and over TLS, for issue 9.

Usage (root):  python pcaps/tls/make_tls_pcap.py [--out FILE] [--keep-raw]
               python pcaps/tls/make_tls_pcap.py --truth-only

The machinery of pcaps/sample/make_sample.py, imported from it (namespaces, one bridge per
VLAN, the router with an SVI per VLAN, the per-bridge tcpdump mirror and the merge into one
802.1Q-tagged pcapng interface), with hosts in namespaces ``medtap-tls-<name>`` and real
peers: dcmtk ``storescu``/``storescp`` with ``+tls`` and a CA and certificates made at
record time with the ``openssl`` command line, next to a cleartext ``storescu``; the MLLP
server and client of pcaps/hl7/record.py, run over Python's ``ssl`` (TLS 1.3 for a modern
gateway; TLS 1.0 at ``@SECLEVEL=0`` for a legacy one) next to cleartext MLLP; an HTTP FHIR
server (HAPI FHIR's ``X-Powered-By``) in cleartext and over TLS 1.2, and a Windows-CE-like
web server (pcaps/banners/make_banners.py) on the legacy gateway, reached from the guest VLAN.

Every TLS version in the truth is what the peers were told (``maximum_version``, an OpenSSL
config with ``MaxProtocol``, or two OpenSSL 3.0 stacks with no limit, which agree on TLS
1.3); the recording checks each dcmtk peer's own log line "Protocol : TLSv1.x" and fails
if a peer negotiated anything else. Nothing comes from medtap's output.

Traffic goes only between the namespaces made here. Content is fixed; times, ephemeral
ports, TCP sequence numbers, TLS randoms, keys and certificates vary run to run (keys and
certificates are made per run in a temporary directory and never committed). Namespaces,
links and processes are removed in ``finally``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import http.client
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
PCAPS = HERE.parent
sys.path.insert(0, str(PCAPS / "sample"))
import make_sample as ms  # noqa: E402  (pcaps/sample/make_sample.py)

NAME = "tls-clinical"
PREFIX = "medtap-tls-"
Host = ms.Host
# TLS 1.0 is what the legacy peers are told to speak; Python flags the enum member itself.
warnings.filterwarnings("ignore", "ssl.TLSVersion.TLSv1", DeprecationWarning)


def _sample(name: str, role: str) -> ms.Host:
    """A host of the sample hospital (same IP and MAC), with its role in this capture."""
    return dataclasses.replace(ms.HOST[name], role=role)


HOSTS = (
    _sample("his", "HIS: MLLP over TLS on 2575 (accepts TLS 1.0-1.3), cleartext MLLP on 6661; "
            "sends ADT to the PIIC and orders to the RIS in cleartext"),
    _sample("ris", "RIS: cleartext MLLP server on 2575 (orders from the HIS); dcmtk wlmscpfs "
            "Modality Worklist on 11113 (cleartext)"),
    Host("fhir", 10, "10.10.5.50", "3c:d9:2b:0a:05:32", "FHIR server (HAPI FHIR X-Powered-By): "
         "HTTP on 8080, HTTPS (TLS 1.2 at most) on 443"),
    Host("ws", 10, "10.10.7.7", "14:18:77:0a:07:07", "clinical workstation: FHIR over HTTP and "
         "over HTTPS"),
    _sample("piic", "Philips PIIC iX: PCD-01 to the HIS over TLS (1.3); ADT receiver in "
            "cleartext on 2575"),
    _sample("spacecom", "B. Braun SpaceCom, a legacy stack: PCD-01 to the HIS over TLS 1.0 "
            "(its client offers nothing newer) and in cleartext on 6661; a Windows CE web "
            "server on 80"),
    _sample("pacs", "PACS: dcmtk storescp on 104 (cleartext), 2762 and 11112 (TLS, mutual "
            "authentication with the hospital CA)"),
    _sample("ct", "GE CT: worklist query to the RIS (dcmtk findscu -W, cleartext), then "
            "dcmtk storescu +tls to the PACS on 2762 (dicom-tls), 3 images"),
    _sample("mr", "Siemens MR: worklist query to the RIS (cleartext), then dcmtk storescu in "
            "cleartext to the PACS on 104, 2 images"),
    _sample("cr", "Fujifilm CR: dcmtk storescu +tls to the PACS on 11112, its OpenSSL limited "
            "to TLS 1.2 (MaxProtocol), 1 image"),
    _sample("laptop", "guest laptop: HTTP GET to the SpaceCom's web server (a violation)"),
)
HOST = {h.name: h for h in HOSTS}
NET = ms.Net(PREFIX, HOSTS, ms.VLANS, ms.ROUTER_MAC, ms.ROUTER_IPS)

HL7_PORT, HL7_ALT_PORT = 2575, 6661  # 6661: another port HL7 interfaces commonly use
DICOM_PORT, DICOM_ALT_PORT, DICOM_TLS_PORT, MWL_PORT = 104, 11112, 2762, ms.MWL_PORT
FHIR_HTTP_PORT, HTTPS_PORT, WEB_PORT = 8080, 443, 80
PACS_AE = ms.PACS_AE
FHIR_SNI = "fhir.hospital.example"
HIS_SNI = "his.hospital.example"
HAPI_POWERED_BY = "HAPI FHIR 6.10.0 REST Server (FHIR Server; FHIR 4.0.1/R4)"
JETTY = "Jetty(9.4.53.v20231009)"
CANARIES = ms.CANARIES
LEGACY_CIPHERS = "DEFAULT:@SECLEVEL=0"  # OpenSSL 3 refuses TLS 1.0 at security level 1+
MAX_TLS12_CONF = """openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MaxProtocol = TLSv1.2
"""


# ---- HL7 content (make_sample's messages) -----------------------------------------------------
def hl7_batch(which: str) -> list[bytes]:
    if which == "piic":
        return [ms.pcd01_monitor(n, *ms.MONITORS[(n - 1) % 2]) for n in (1, 2, 3, 4)]
    if which == "spacecom-tls":
        return [ms.pcd01_pump(n, *ms.PUMPS[(n - 1) % 2]) for n in (1, 2)]
    if which == "spacecom":
        return [ms.pcd01_pump(n, *ms.PUMPS[(n - 1) % 2]) for n in (3, 4)]
    if which == "adt":
        return [ms.adt("A01", 11), ms.adt("A08", 12)]
    if which == "orders":
        return [ms.omi(21, "CT"), ms.omi(22, "MR")]
    raise ValueError(which)


def banners_modules() -> ModuleType:
    sys.path.insert(0, str(PCAPS / "banners"))
    import make_banners  # serve(), WinCeHandler, PrinterHandler, request(), tls_*()

    return make_banners


# ---- TLS contexts -------------------------------------------------------------------------------
def server_ctx(cert: str, key: str, legacy_ok: bool, maximum: str | None = None
               ) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if legacy_ok:  # a server that still accepts TLS 1.0 clients
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers(LEGACY_CIPHERS)
    if maximum:
        ctx.maximum_version = ssl.TLSVersion[maximum]
    return ctx


def client_ctx(ca: str, version: str | None) -> ssl.SSLContext:
    """Verifies the server against the hospital CA; ``version`` pins min and max."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.check_hostname = False  # certificates name DNS names the namespaces cannot resolve
    if version:
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion[version]
        if version == "TLSv1":
            ctx.set_ciphers(LEGACY_CIPHERS)
    return ctx


# ---- peers: run inside a namespace as ``make_tls_pcap.py peer <name> [args]`` -------------------
def peer_mllp_server(ip: str, port: str, cert: str = "", key: str = "") -> None:
    """pcaps/hl7/record.py's MLLP server, over TLS when a certificate is given."""
    rec = ms.hl7_modules()

    async def serve() -> None:
        if cert:
            # record.mllp_server() takes no ssl argument: hand it a start_server that adds
            # one, so its MLLP handler (deframing, ACKs) is the very one the other captures use
            real = asyncio.start_server
            ctx = server_ctx(cert, key, legacy_ok=True)
            asyncio.start_server = functools.partial(real, ssl=ctx)  # type: ignore[assignment]
            try:
                srv = await rec.mllp_server(ip, int(port))
            finally:
                asyncio.start_server = real  # type: ignore[assignment]
        else:
            srv = await rec.mllp_server(ip, int(port))
        async with srv:
            await srv.serve_forever()

    asyncio.run(serve())


def peer_hl7(src: str, dst: str, port: str, which: str, tls: str = "", ca: str = "") -> None:
    """pcaps/hl7/record.py's MLLP client, one connection, each message ACKed; ``tls`` is
    ``modern`` (no version limit) or an ``ssl.TLSVersion`` name pinned both ways."""
    rec = ms.hl7_modules()
    messages = hl7_batch(which)

    async def send() -> None:
        coro = rec.client(src, dst, int(port), rec.frames(*messages), gap=0.15,
                          wait_acks=len(messages))
        if not tls:
            await coro
            return
        # as for the server: record.client() opens its stream without ssl; add it
        ctx = client_ctx(ca, None if tls == "modern" else tls)
        real = asyncio.open_connection
        asyncio.open_connection = functools.partial(  # type: ignore[assignment]
            real, ssl=ctx, server_hostname=HIS_SNI)
        try:
            await coro
        finally:
            asyncio.open_connection = real  # type: ignore[assignment]

    asyncio.run(send())


def fhir_handler() -> type:
    """make_banners' HTTP handler with a FHIR server's headers (Jetty + HAPI FHIR)."""
    mb = banners_modules()

    class Handler(mb.PrinterHandler):  # type: ignore[name-defined,misc]
        banner = JETTY
        powered_by = HAPI_POWERED_BY

    return Handler


def peer_fhir(ip: str, cert: str, key: str) -> None:
    """FHIR server: HTTP on 8080 (Jetty + HAPI FHIR headers), TLS 1.2 at most on 443."""
    mb = banners_modules()
    mb.serve(fhir_handler(), ip, FHIR_HTTP_PORT)
    mb.tls_server(ip, HTTPS_PORT, server_ctx(cert, key, legacy_ok=False, maximum="TLSv1_2"))
    while True:
        time.sleep(3600)


def peer_wince(ip: str) -> None:
    """The legacy gateway's web server: ``Server: Microsoft-WinCE/7.00`` (make_banners)."""
    mb = banners_modules()
    mb.serve(mb.WinCeHandler, ip, WEB_PORT)
    while True:
        time.sleep(3600)


def peer_ws() -> None:
    """The workstation: FHIR search over HTTP, then over HTTPS (SNI fhir.hospital.example)."""
    mb = banners_modules()
    ws, fhir = HOST["ws"].ip, HOST["fhir"].ip
    conn = http.client.HTTPConnection(fhir, FHIR_HTTP_PORT, source_address=(ws, 0), timeout=5)
    mb.request(conn, "GET", "/fhir/Patient?identifier=CANARY-ID-4711", "HAPI-FHIR/6.10.0 "
               "(FHIR Client; FHIR 4.0.1/R4; apache)", f"{FHIR_SNI}:{FHIR_HTTP_PORT}")
    conn.close()
    time.sleep(0.2)
    mb.tls_client(ws, fhir, HTTPS_PORT, mb.client_ctx(ssl.TLSVersion.TLSv1_3, ["http/1.1"]),
                  FHIR_SNI)


def peer_laptop() -> None:
    mb = banners_modules()
    laptop, spacecom = HOST["laptop"].ip, HOST["spacecom"].ip
    conn = http.client.HTTPConnection(spacecom, WEB_PORT, source_address=(laptop, 0), timeout=5)
    mb.request(conn, "GET", "/", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", spacecom)
    conn.close()


PEERS = {
    "mllp-server": peer_mllp_server,
    "hl7": peer_hl7,
    "fhir": peer_fhir,
    "wince": peer_wince,
    "ws": peer_ws,
    "laptop": peer_laptop,
}


# ---- certificates (openssl command line, per run) -----------------------------------------------
def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_pki(d: Path) -> dict[str, tuple[str, str]]:
    """A hospital CA and an RSA certificate per TLS peer (dcmtk's BCP 195 suites need RSA)."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "ca.key"),
            "-out", str(d / "ca.crt"), "-days", "3650", "-sha256",
            "-subj", "/CN=Klinikum Musterstadt Device CA/O=Klinikum Musterstadt")
    names = {"pacs": "pacs.hospital.example", "ct": "ct-revo-1.hospital.example",
             "cr": "fcr-cr1.hospital.example", "his": HIS_SNI, "fhir": FHIR_SNI}
    out: dict[str, tuple[str, str]] = {}
    for name, cn in names.items():
        key, csr, crt = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt"
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                "-subj", f"/CN={cn}/O=Klinikum Musterstadt")
        openssl("x509", "-req", "-in", str(csr), "-CA", str(d / "ca.crt"), "-CAkey",
                str(d / "ca.key"), "-CAcreateserial", "-out", str(crt), "-days", "3650",
                "-sha256")
        out[name] = (str(crt), str(key))
    return out


# ---- recording ---------------------------------------------------------------------------------
def dcmtk(host: str, args: list[str], expect_tls: str | None, env: dict[str, str] | None = None
          ) -> None:
    """Run a dcmtk client to the end; with ``expect_tls`` its own log must name that protocol."""
    cmd = ["ip", "netns", "exec", NET.ns(host), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    log = done.stdout + done.stderr
    if done.returncode:
        raise RuntimeError(f"{args[0]} in {host} failed ({done.returncode}): {log[-1500:]}")
    if expect_tls is not None and f"Protocol    : {expect_tls}" not in log:
        raise RuntimeError(f"{args[0]} in {host}: expected {expect_tls}; log: {log[-1500:]}")


def peer(host: str, *args: str) -> None:
    ms.peer(host, *args, net=NET, script=__file__)


def record(out: Path, keep_raw: bool) -> dict[int, int]:
    mdp = ms.dicom_modules()
    py, me = sys.executable, str(Path(__file__).resolve())
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix=PREFIX))
    ip = {name: h.ip for name, h in HOST.items()}
    storescp = "/usr/bin/storescp"
    storescu = "/usr/bin/storescu"
    try:
        ms.teardown([], NET)  # leftovers of an interrupted run
        ms.build(NET)
        pki = make_pki(tmp)
        ca = str(tmp / "ca.crt")
        (tmp / "max12.cnf").write_text(MAX_TLS12_CONF)
        ms.write_worklist(tmp / "wlist")
        images = {  # make_dicom_pcaps' data sets, canaries in every one
            name: [str(mdp.as_file(mdp.image(name.upper(), first + i), tmp / f"{name}{i}.dcm"))
                   for i in range(count)]
            for name, first, count in (("ct", 5100, 3), ("mr", 5200, 2), ("cr", 5300, 1))
        }
        # -- servers
        for port, tls in ((DICOM_PORT, False), (DICOM_TLS_PORT, True), (DICOM_ALT_PORT, True)):
            store = tmp / f"store{port}"
            store.mkdir()
            tls_args = ["+tls", pki["pacs"][1], pki["pacs"][0], "+cf", ca] if tls else []
            ms.start(procs, "pacs", storescp, "-dhl", "-aet", PACS_AE, *tls_args, "-od",
                     str(store), str(port), net=NET)
        his_cert, his_key = pki["his"]
        ms.start(procs, "his", py, me, "peer", "mllp-server", ip["his"], str(HL7_PORT),
                 his_cert, his_key, net=NET)
        ms.start(procs, "his", py, me, "peer", "mllp-server", ip["his"], str(HL7_ALT_PORT),
                 net=NET)
        ms.start(procs, "piic", py, me, "peer", "mllp-server", ip["piic"], str(HL7_PORT),
                 net=NET)
        ms.start(procs, "ris", py, me, "peer", "mllp-server", ip["ris"], str(HL7_PORT), net=NET)
        ms.start(procs, "fhir", py, me, "peer", "fhir", ip["fhir"], *pki["fhir"], net=NET)
        ms.start(procs, "spacecom", py, me, "peer", "wince", ip["spacecom"], net=NET)
        # -dhl: no reverse lookups of callers (they would go to the host's resolver)
        ms.start(procs, "ris", "/usr/bin/wlmscpfs", "-dhl", "-dfp", str(tmp / "wlist"),
                 str(MWL_PORT), net=NET)
        for port in (DICOM_PORT, DICOM_TLS_PORT, DICOM_ALT_PORT):
            ms.wait_listen(NET.ns("pacs"), port)
        ms.wait_listen(NET.ns("ris"), MWL_PORT)
        for port in (HL7_PORT, HL7_ALT_PORT):
            ms.wait_listen(NET.ns("his"), port)
        ms.wait_listen(NET.ns("piic"), HL7_PORT)
        ms.wait_listen(NET.ns("ris"), HL7_PORT)
        ms.wait_listen(NET.ns("fhir"), FHIR_HTTP_PORT)
        ms.wait_listen(NET.ns("fhir"), HTTPS_PORT)
        ms.wait_listen(NET.ns("spacecom"), WEB_PORT)
        # -- the mirror
        dumps = ms.start_mirror(tmp, NET)
        procs.extend(p for _vlan, _path, p in dumps)
        # -- the morning's traffic (truth() says what each step is)
        peer("piic", "hl7", ip["piic"], ip["his"], str(HL7_PORT), "piic", "modern", ca)
        peer("spacecom", "hl7", ip["spacecom"], ip["his"], str(HL7_PORT), "spacecom-tls",
             "TLSv1", ca)
        peer("spacecom", "hl7", ip["spacecom"], ip["his"], str(HL7_ALT_PORT), "spacecom")
        peer("his", "hl7", ip["his"], ip["piic"], str(HL7_PORT), "adt")
        peer("his", "hl7", ip["his"], ip["ris"], str(HL7_PORT), "orders")
        for host, ae, modality in (("ct", "CT_REVO_1", "CT"), ("mr", "MR_VIDA_1", "MR")):
            dcmtk(host, ["/usr/bin/findscu", "-W", "-aet", ae, "-aec", ms.RIS_AE,
                         "-k", f"ScheduledProcedureStepSequence[0].Modality={modality}",
                         "-k", f"ScheduledProcedureStepSequence[0].ScheduledStationAETitle={ae}",
                         "-k", "PatientName", "-k", "PatientID", "-k", "AccessionNumber",
                         ip["ris"], str(MWL_PORT)], None)
        time.sleep(0.3)
        ct_cert, ct_key = pki["ct"]
        dcmtk("ct", [storescu, "-d", "+tls", ct_key, ct_cert, "+cf", ca, "-aet", "CT_REVO_1",
                     "-aec", PACS_AE, ip["pacs"], str(DICOM_TLS_PORT), *images["ct"]], "TLSv1.3")
        dcmtk("mr", [storescu, "-aet", "MR_VIDA_1", "-aec", PACS_AE, ip["pacs"],
                     str(DICOM_PORT), *images["mr"]], None)
        cr_cert, cr_key = pki["cr"]
        dcmtk("cr", [storescu, "-d", "+tls", cr_key, cr_cert, "+cf", ca, "-aet", "FCR_CR1",
                     "-aec", PACS_AE, ip["pacs"], str(DICOM_ALT_PORT), *images["cr"]],
              "TLSv1.2", env={"OPENSSL_CONF": str(tmp / "max12.cnf")})
        peer("ws", "ws")
        peer("laptop", "laptop")
        time.sleep(0.5)  # last FIN/ACKs
        ms.stop_mirror(dumps)
        comment = ("medtap encryption-in-transit capture: real peers in network namespaces, "
                   "VLANs " + ", ".join(f"{v} {n}" for v, n in ms.VLANS.items())
                   + "; see pcaps/tls/README.md")
        per_vlan = ms.write_mirror(out, [(vlan, path) for vlan, path, _p in dumps],
                                   comment=comment, writer="medtap pcaps/tls/make_tls_pcap.py")
        if keep_raw:
            for _vlan, path, _p in dumps:
                shutil.copy(path, out.parent / path.name)
    finally:
        ms.teardown(procs, NET)
        shutil.rmtree(tmp, ignore_errors=True)
    return per_vlan


# ---- ground truth: what the peers were told (never medtap output) -------------------------------
ZONE_OF_VLAN = {10: "clinical", 20: "medical", 30: "imaging", 99: "guest"}  # policy.yaml


def truth() -> dict[str, object]:
    def flow(client: str, server: str, port: int, protocol: str, security: str,
             connections: int, what: str, *, messages: int | None = None,
             acks: int | None = None, inferred: str | None = None,
             detected_app: str | None = None) -> dict[str, object]:
        c, s = HOST[client], HOST[server]
        return {"client": c.ip, "server": s.ip, "server_port": port, "protocol": protocol,
                "security": security, "connections": connections,
                "messages": messages, "acks": acks, "inferred_from": inferred,
                "app": detected_app, "client_zone": ZONE_OF_VLAN[c.vlan],
                "server_zone": ZONE_OF_VLAN[s.vlan], "what": what}

    flows = [
        flow("piic", "his", HL7_PORT, "HL7", "TLS 1.3", 1,
             "4 PCD-01 ORU^R01 + 4 ACKs inside TLS (two OpenSSL 3.0 stacks, no version limit)",
             inferred="port", detected_app="tls"),
        flow("spacecom", "his", HL7_PORT, "HL7", "TLS 1.0", 1,
             "2 PCD-01 + 2 ACKs inside TLS 1.0 (client pinned to TLSv1, SECLEVEL=0)",
             inferred="port", detected_app="tls"),
        flow("spacecom", "his", HL7_ALT_PORT, "HL7", "cleartext", 1,
             "2 PCD-01 ORU^R01 + 2 ACKs in cleartext MLLP", messages=2, acks=2,
             detected_app="hl7"),
        flow("his", "piic", HL7_PORT, "HL7", "cleartext", 1, "ADT A01, A08 + 2 ACKs",
             messages=2, acks=2, detected_app="hl7"),
        flow("his", "ris", HL7_PORT, "HL7", "cleartext", 1, "OMI^O23 x2 + 2 ACKs",
             messages=2, acks=2, detected_app="hl7"),
        flow("ct", "ris", MWL_PORT, "DICOM", "cleartext", 1,
             "dcmtk findscu -W: Modality Worklist C-FIND, one association",
             detected_app="dicom"),
        flow("mr", "ris", MWL_PORT, "DICOM", "cleartext", 1,
             "dcmtk findscu -W: Modality Worklist C-FIND, one association",
             detected_app="dicom"),
        flow("ct", "pacs", DICOM_TLS_PORT, "DICOM", "TLS 1.3", 1,
             "dcmtk storescu +tls (BCP 195 non-downgrading profile; both ends OpenSSL 3.0), "
             "3 CT images, one association", inferred="port", detected_app="tls"),
        flow("mr", "pacs", DICOM_PORT, "DICOM", "cleartext", 1,
             "dcmtk storescu, 2 MR images, one association", detected_app="dicom"),
        flow("cr", "pacs", DICOM_ALT_PORT, "DICOM", "TLS 1.2", 1,
             "dcmtk storescu +tls with OpenSSL MaxProtocol TLSv1.2, 1 CR image",
             inferred="port", detected_app="tls"),
        flow("ws", "fhir", FHIR_HTTP_PORT, "FHIR", "cleartext", 1,
             f"HTTP GET, response X-Powered-By: {HAPI_POWERED_BY}", detected_app="http"),
        flow("ws", "fhir", HTTPS_PORT, "FHIR", "TLS 1.2", 1,
             f"TLS 1.2 (server maximum), SNI {FHIR_SNI}", inferred="peer",
             detected_app="tls"),
    ]
    summary: dict[str, dict[str, int]] = {}
    for f in flows:
        s = summary.setdefault(str(f["protocol"]), {"connections": 0, "cleartext": 0,
                                                    "tls": 0, "outdated_tls": 0,
                                                    "cleartext_messages": 0,
                                                    "cleartext_acks": 0})
        s["connections"] += int(str(f["connections"]))
        if f["security"] == "cleartext":
            s["cleartext"] += int(str(f["connections"]))
            s["cleartext_messages"] += int(str(f["messages"] or 0))
            s["cleartext_acks"] += int(str(f["acks"] or 0))
        else:
            s["tls"] += int(str(f["connections"]))
            if f["security"] in ("TLS 1.0", "TLS 1.1"):
                s["outdated_tls"] += int(str(f["connections"]))
    return {
        "description": "Clinical flows in cleartext and over TLS between real peers in network "
                       "namespaces (dcmtk +tls, Python ssl around MLLP, HTTP/HTTPS FHIR); "
                       "VLAN 10 clinical, 20 medical, 30 imaging, 99 guest. See README.md.",
        "packets": None,
        "packets_per_vlan": None,
        "hosts": [{"name": h.name, "ip": h.ip, "mac": h.mac, "vlan": h.vlan,
                   "zone": ZONE_OF_VLAN[h.vlan], "role": h.role} for h in HOSTS],
        "clinical_flows": flows,
        "summary": summary,
        "other_flows": [
            {"client": HOST["laptop"].ip, "server": HOST["spacecom"].ip,
             "server_port": WEB_PORT, "app": "http",
             "what": "guest laptop GET / from the SpaceCom's Windows CE web server"},
        ],
        "policy": "policy.yaml",
        "violations": [
            {"rule": "gateways-to-his", "severity": "high", "client": HOST["spacecom"].ip,
             "server": HOST["his"].ip, "service": f"tcp/{HL7_ALT_PORT}",
             "why": "require: tls, and this HL7 flow was cleartext"},
            {"rule": "images-to-pacs", "severity": "medium", "client": HOST["mr"].ip,
             "server": HOST["pacs"].ip, "service": f"tcp/{DICOM_PORT}",
             "why": "require: tls, and this DICOM flow was cleartext"},
            {"rule": "default", "severity": "high", "client": HOST["laptop"].ip,
             "server": HOST["spacecom"].ip, "service": f"tcp/{WEB_PORT}",
             "why": "no rule allows guest to medical"},
        ],
        "controls": {
            HOST["spacecom"].ip: {
                "zone": "medical",
                "peers": sorted([HOST["his"].ip, HOST["laptop"].ip]),
                "services": sorted([f"out tcp/{HL7_PORT}", f"out tcp/{HL7_ALT_PORT}",
                                    f"in tcp/{WEB_PORT}"]),
                "violations": 2,
                "isolated_from_guest": False,
                "isolated_from_external": True,
                "outdated": ["Windows CE", "TLS 1.0"],
                "why": "Microsoft-WinCE/7.00 web server; its TLS client offers TLS 1.0 only",
            },
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
