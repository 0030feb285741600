"""Record the banner/fingerprint test captures: real HTTP and TLS peers over loopback, and
crafted SYNs (scapy) for the passive OS fingerprints.

Run as root (tcpdump on lo):  python pcaps/banners/make_banners.py [outdir]
Only the crafted SYN capture:  python pcaps/banners/make_banners.py --crafted-only [outdir]
Only rewrite truth files:      python pcaps/banners/make_banners.py --truth-only [outdir]

Loopback scenarios start tcpdump (``-i lo --immediate-mode -U``, filtered on the scenario's
ports), wait until it listens, run a real server (``http.server``, ``ssl``) and real client
sockets bound to distinct 127.0.0.x addresses, and stop tcpdump by its PID with SIGINT.
Loopback frames carry MAC 00:00:00:00:00:00, which would merge every endpoint into one
device in ``medtap analyze``; so, and only so, each frame's Ethernet addresses are then
rewritten to ``02:00:00:00:00:<last octet of its IP>`` (locally administered). No other
byte changes. Certificates are generated at run time with ``cryptography`` (fictitious
product, self-signed) and never committed. Every request carries canary patient data in
the URL query and body that must never appear in medtap's output.
Sends nothing anywhere but loopback; the crafted capture is written with PcapWriter.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CANARIES = ["CANARY", "CANARY-ID-4711", "Kanarienweg", "555-0147", "Vogel"]
PRINTER_SERVER = (
    "HP HTTP Server; HP LaserJet Pro M404dn - W1A53A; Serial Number: PHBQC00000; "
    "Built:Mon Jan 01, 2024 12:00:00PM {002_2401A}"
)
WINCE_SERVER = "Microsoft-WinCE/7.00"
XP_UA = "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1; .NET CLR 2.0.50727)"
CE_UA = "Mozilla/4.0 (compatible; MSIE 6.0; Windows CE; IEMobile 7.11)"
DEVICE_SUBJECT = {
    "cn": "VitaScope 7 Patient Monitor",
    "o": "Medtap Fictional Medical GmbH",
    "ou": "Critical Care",
    "serial": "VS7-000123",
}
# The inventory names a company once, without its legal form (agent/classify.canonical_vendor).
INVENTORY_VENDOR = "Medtap Fictional Medical"
CLIENT_SUBJECT = {"cn": "infusion-gw-01.icu.hospital.example", "o": "Medtap Fictional Medical GmbH"}
PACS_SUBJECT = {"cn": "pacs.hospital.example", "o": "Klinikum Musterstadt"}


# --- HTTP peers ------------------------------------------------------------------------------
class PrinterHandler(BaseHTTPRequestHandler):
    """An HP-printer-like embedded web server (Server header as nmap-service-probes lists)."""

    protocol_version = "HTTP/1.1"
    banner = PRINTER_SERVER
    powered_by: str | None = None

    def version_string(self) -> str:
        return self.banner

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        pass

    def _headers(self, code: int, length: int | None, chunked: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/html")
        self.send_header("Set-Cookie", "session=CANARY-ID-4711")
        if self.powered_by:
            self.send_header("X-Powered-By", self.powered_by)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        if self.path.startswith("/chunked"):
            self._headers(200, None, chunked=True)
            for part in (b"<html>CANARY^PATIENT ", b"Kanarienweg 7, +49-30-555-0147</html>"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\nX-Trailer: CANARY\r\n\r\n")
            return
        if self.path.startswith("/status"):
            self._headers(304, None)
            return
        body = b"<html><body>Patient CANARY-ID-4711 Vogel, +49-30-555-0147</body></html>"
        self._headers(200, len(body))
        self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802
        self._headers(200, 4096)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._headers(204, None)


class WinCeHandler(PrinterHandler):
    banner = WINCE_SERVER
    powered_by = "ASP.NET"


def serve(handler: type[BaseHTTPRequestHandler], host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def request(conn: http.client.HTTPConnection, method: str, path: str, ua: str, host: str,
            body: bytes | None = None) -> None:
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", host)
    conn.putheader("User-Agent", ua)
    conn.putheader("Cookie", "mrn=CANARY-ID-4711")
    conn.putheader("Referer", "http://ehr.hospital.example/patient?name=CANARY^PATIENT")
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    resp.read()


def http_scenario() -> None:
    """XP client .62 -> printer-like server .61:8080, keep-alive: GET (canary query), HEAD,
    POST (canary body), chunked GET, 304, GET; CE client .63 -> WinCE server .65:8081 with a
    named Host, chunked response with X-Powered-By."""
    printer = serve(PrinterHandler, "127.0.0.61", 8080)
    wince = serve(WinCeHandler, "127.0.0.65", 8081)
    try:
        conn = http.client.HTTPConnection("127.0.0.61", 8080, source_address=("127.0.0.62", 0))
        request(conn, "GET", "/patients?mrn=CANARY-ID-4711&name=Vogel", XP_UA, "127.0.0.61:8080")
        request(conn, "HEAD", "/", XP_UA, "127.0.0.61:8080")
        request(conn, "POST", "/upload?id=CANARY-ID-4711", XP_UA, "127.0.0.61:8080",
                b'{"patient": "CANARY^PATIENT", "address": "Kanarienweg 7"}')
        request(conn, "GET", "/chunked", XP_UA, "127.0.0.61:8080")
        request(conn, "GET", "/status", XP_UA, "127.0.0.61:8080")
        request(conn, "GET", "/patients?mrn=CANARY-ID-4711", XP_UA, "127.0.0.61:8080")
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.65", 8081, source_address=("127.0.0.63", 0))
        request(conn, "GET", "/chunked?bed=CANARY", CE_UA, "bedside-07.icu.hospital.example:8081")
        conn.close()
        time.sleep(0.1)
    finally:
        printer.shutdown()
        wince.shutdown()


# --- TLS peers -------------------------------------------------------------------------------
def self_signed(subject: dict[str, str], directory: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    oids = {"cn": NameOID.COMMON_NAME, "o": NameOID.ORGANIZATION_NAME,
            "ou": NameOID.ORGANIZATIONAL_UNIT_NAME, "serial": NameOID.SERIAL_NUMBER}
    key = ec.generate_private_key(ec.SECP256R1())
    dn = x509.Name([x509.NameAttribute(oids[k], v) for k, v in subject.items()])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(dn)
        .issuer_name(dn)
        .public_key(key.public_key())
        .serial_number(0x5EED)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )
    return cert_path, key_path


def tls_server(host: str, port: int, ctx: ssl.SSLContext) -> Callable[[], None]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4)
    stop = threading.Event()

    def loop() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(4096)
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nCANARY-ID-4711")
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()

    def close() -> None:
        stop.set()
        thread.join(2)
        sock.close()

    return close


def tls_client(src: str, host: str, port: int, ctx: ssl.SSLContext, sni: str) -> None:
    raw = socket.create_connection((host, port), source_address=(src, 0))
    with ctx.wrap_socket(raw, server_hostname=sni) as tls:
        tls.sendall(b"GET /patient?mrn=CANARY-ID-4711 HTTP/1.1\r\nHost: x\r\n\r\n")
        tls.recv(4096)


def client_ctx(maximum: ssl.TLSVersion, alpn: list[str]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = maximum
    ctx.set_alpn_protocols(alpn)
    return ctx


def tls12_scenario() -> None:
    """Device .71:2762 (DICOM TLS port) with a self-signed TLS 1.2 certificate naming a
    fictitious patient monitor, asking for a client certificate; gateway .72 offers up to
    TLS 1.2 with SNI and ALPN and presents its own self-signed certificate (mutual TLS)."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        srv_cert, srv_key = self_signed(DEVICE_SUBJECT, d, "device")
        cli_cert, cli_key = self_signed(CLIENT_SUBJECT, d, "gateway")
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.maximum_version = ssl.TLSVersion.TLSv1_2
        sctx.load_cert_chain(srv_cert, srv_key)
        sctx.verify_mode = ssl.CERT_OPTIONAL
        sctx.load_verify_locations(cli_cert)
        sctx.set_alpn_protocols(["http/1.1"])
        close = tls_server("127.0.0.71", 2762, sctx)
        try:
            cctx = client_ctx(ssl.TLSVersion.TLSv1_2, ["http/1.1"])
            cctx.load_cert_chain(cli_cert, cli_key)
            tls_client("127.0.0.72", "127.0.0.71", 2762, cctx, "vitascope-7.icu.hospital.example")
            time.sleep(0.1)
        finally:
            close()


def tls13_scenario() -> None:
    """Workstation .73 -> PACS web .74:443, TLS 1.3, ALPN h2/http/1.1, SNI pacs.hospital.example
    (the certificate is encrypted in TLS 1.3: only ClientHello/ServerHello are readable)."""
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = self_signed(PACS_SUBJECT, Path(tmp), "pacs")
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.minimum_version = ssl.TLSVersion.TLSv1_3
        sctx.load_cert_chain(cert, key)
        sctx.set_alpn_protocols(["http/1.1"])
        close = tls_server("127.0.0.74", 443, sctx)
        try:
            tls_client("127.0.0.73", "127.0.0.74", 443,
                       client_ctx(ssl.TLSVersion.TLSv1_3, ["h2", "http/1.1"]),
                       "pacs.hospital.example")
            time.sleep(0.1)
        finally:
            close()


# --- recording -------------------------------------------------------------------------------
def record(out: Path, bpf: str, scenario: Callable[[], None]) -> None:
    raw = out.with_suffix(".raw.pcap")
    proc = subprocess.Popen(
        ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-s", "0", "-w", str(raw), bpf],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    os.set_blocking(proc.stderr.fileno(), False)
    deadline = time.time() + 5
    seen = b""
    while b"listening" not in seen and time.time() < deadline:
        time.sleep(0.05)
        seen += proc.stderr.read() or b""
    time.sleep(0.5)  # "listening" is printed just before the filter is live
    try:
        scenario()
    finally:
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        proc.wait(5)
    rewrite_macs(raw, out)
    raw.unlink()
    print(f"{out}: {out.stat().st_size} bytes")  # noqa: T201 - a command-line tool


def loopback_mac(ip: str) -> str:
    return f"02:00:00:00:00:{int(ip.rsplit('.', 1)[1]):02x}"


def rewrite_macs(src: Path, dst: Path) -> None:
    """Per-IP Ethernet addresses on loopback frames; nothing else changes."""
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapWriter, rdpcap

    writer = PcapWriter(str(dst), linktype=1, sync=True)
    for pkt in rdpcap(str(src)):
        if pkt.haslayer(Ether) and pkt.haslayer(IP):
            pkt[Ether].src = loopback_mac(pkt[IP].src)
            pkt[Ether].dst = loopback_mac(pkt[IP].dst)
        writer.write(pkt)
    writer.close()


# --- crafted SYNs ----------------------------------------------------------------------------
# (ip, mac, observed ttl, window, options as scapy tuples, what it is, published source)
SYNS: list[tuple[str, str, int, int, list[tuple[str, object]], str, str]] = [
    ("10.50.0.11", "02:00:00:00:50:11", 127, 64240,
     [("MSS", 1460), ("NOP", None), ("WScale", 8), ("NOP", None), ("NOP", None),
      ("SAckOK", b"")], "Windows", "Windows 10: FoxIO JA4T.md 64240_2-1-3-1-1-4_1460_8"),
    ("10.50.0.12", "02:00:00:00:50:12", 126, 65535,
     [("MSS", 1460), ("NOP", None), ("NOP", None), ("SAckOK", b"")],
     "Windows", "Windows XP: p0f 3 p0f.fp s:win:Windows:XP *:128:0:*:65535,0:mss,nop,nop,sok"),
    ("10.50.0.13", "02:00:00:00:50:13", 63, 64240,
     [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (2710, 0)), ("NOP", None),
      ("WScale", 7)], "Linux", "FoxIO JA4T.md: 64240_2-4-8-1-3_1460_7"),
    ("10.50.0.14", "02:00:00:00:50:14", 64, 65535,
     [("MSS", 1460), ("NOP", None), ("WScale", 6), ("NOP", None), ("NOP", None),
      ("Timestamp", (94510, 0)), ("SAckOK", b""), ("EOL", None), ("EOL", None)],
     "macOS/iOS", "FoxIO JA4T.md: 65535_2-1-3-1-1-8-4-0-0_1460_6"),
    ("10.50.0.15", "02:00:00:00:50:15", 31, 32768, [("MSS", 1460)],
     "Windows CE", "p0f 2.0.8 p0f.fp: 32768:32:1:44:M1460:.:Windows:CE 3"),
    ("10.50.0.16", "02:00:00:00:50:16", 60, 16384,
     [("MSS", 1460), ("NOP", None), ("WScale", 0), ("NOP", None), ("NOP", None),
      ("Timestamp", (0, 0))], "QNX", "p0f 2.0.8 p0f.fp: 16384:64:0:60:M1460,N,W0,N,N,T0:.:QNX:6.x"),
    ("10.50.0.17", "02:00:00:00:50:17", 52, 1024, [("MSS", 1460)],
     "Nmap (scanner)", "p0f 3 p0f.fp s:!:NMap:SYN scan; FoxIO JA4T.md Nmap 1024_2_1460_00"),
    ("10.50.0.18", "02:00:00:00:50:18", 200, 4321, [("MSS", 1400), ("NOP", None)],
     "", "no published signature: an unknown stack gets a signature and no family"),
]
SERVER = ("10.50.0.2", "02:00:00:00:50:02")


def crafted_syns(out: Path) -> list[dict[str, object]]:
    """One SYN per host to port 104 (plus one IPv6 Linux SYN), then the server's RST."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapWriter

    writer = PcapWriter(str(out), linktype=1, sync=True)
    t = 1_704_067_200.0
    for i, (ip, mac, ttl, window, options, _, _) in enumerate(SYNS):
        sport = 40000 + i
        syn = (Ether(src=mac, dst=SERVER[1]) / IP(src=ip, dst=SERVER[0], ttl=ttl, id=1000 + i)
               / TCP(sport=sport, dport=104, flags="S", seq=1000 * (i + 1), window=window,
                     options=options))
        rst = (Ether(src=SERVER[1], dst=mac) / IP(src=SERVER[0], dst=ip, ttl=64, id=2000 + i)
               / TCP(sport=104, dport=sport, flags="RA", seq=0, ack=1000 * (i + 1) + 1, window=0))
        for pkt, dt in ((syn, 0.0), (rst, 0.0001)):
            pkt.time = t + i + dt
            writer.write(pkt)
    v6 = (Ether(src="02:00:00:00:50:19", dst=SERVER[1])
          / IPv6(src="fd00:50::19", dst="fd00:50::2", hlim=64)
          / TCP(sport=40100, dport=443, flags="S", seq=777, window=64800,
                options=[("MSS", 1440), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None),
                         ("WScale", 7)]))
    v6.time = t + 20
    writer.write(v6)
    writer.close()
    print(f"{out}: {out.stat().st_size} bytes")  # noqa: T201
    return [
        {"ip": ip, "mac": mac, "os_family": family, "published": source}
        for ip, mac, _, _, _, family, source in SYNS
    ]


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    outdir = Path(args[0]) if args else Path(__file__).parent
    syn_hosts = crafted_syns(outdir / "tcp_syn_os.pcap")
    write_json(outdir / "tcp_syn_os.truth.json", syn_truth(syn_hosts))
    if "--crafted-only" in sys.argv:
        return
    if "--truth-only" not in sys.argv:
        record(outdir / "http_banners.pcap", "tcp port 8080 or tcp port 8081", http_scenario)
        record(outdir / "tls12_device_cert.pcap", "tcp port 2762", tls12_scenario)
        record(outdir / "tls13.pcap", "tcp port 443", tls13_scenario)
    for name, truth in TRUTHS.items():
        write_json(outdir / f"{name}.truth.json", truth)


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# --- ground truth: what the peers were built to be, never medtap output ----------------------
def syn_truth(hosts: list[dict[str, object]]) -> dict[str, object]:
    return {
        "description": "Crafted SYNs (scapy) from 8 stacks to 10.50.0.2:104, each answered by "
        "RST; values from the published signatures named per host; plus one IPv6 Linux SYN.",
        "devices": [{"ip": h["ip"], "mac": h["mac"]} for h in hosts],
        "observations": [
            {"kind": "tcp.os_family", "host": str(h["ip"]), "value": str(h["os_family"])}
            for h in hosts if h["os_family"]
        ] + [
            {"kind": "tcp.ja4t", "host": "10.50.0.11", "value": "64240_2-1-3-1-1-4_1460_8"},
            {"kind": "tcp.ja4t", "host": "10.50.0.14", "value": "65535_2-1-3-1-1-8-4-0-0_1460_6"},
            {"kind": "tcp.ja4t", "host": "10.50.0.17", "value": "1024_2_1460_00"},
            {"kind": "tcp.os_family", "host": "fd00:50::19", "value": "Linux"},
        ],
        "no_os_family": ["10.50.0.18", "10.50.0.2"],
        "hosts": hosts,
        "canaries": [],
    }


TRUTHS: dict[str, dict[str, object]] = {
    "http_banners": {
        "description": "Real http.server peers on loopback. XP-UA client 127.0.0.62 keeps one "
        "HTTP/1.1 connection to a printer-like server 127.0.0.61:8080 (GET with canary query, "
        "HEAD, POST with canary body, chunked GET with trailer, 304, GET); Windows-CE-UA client "
        "127.0.0.63 asks the WinCE server 127.0.0.65:8081 (X-Powered-By) with Host "
        "bedside-07.icu.hospital.example and gets a chunked reply.",
        "devices": [
            {"ip": "127.0.0.61", "mac": "02:00:00:00:00:3d", "device_type": "printer",
             "vendor": "HP", "model": "LaserJet Pro M404dn"},
            {"ip": "127.0.0.62", "mac": "02:00:00:00:00:3e", "os": "Windows XP"},
            {"ip": "127.0.0.63", "mac": "02:00:00:00:00:3f", "os": "Windows CE"},
            {"ip": "127.0.0.65", "mac": "02:00:00:00:00:41", "os": "Windows CE",
             "hostname": "bedside-07.icu.hospital.example"},
        ],
        "observations": [
            {"kind": "http.user_agent", "host": "127.0.0.62", "value": XP_UA},
            {"kind": "http.os", "host": "127.0.0.62", "value": "Windows XP"},
            {"kind": "http.server", "host": "127.0.0.61", "value": PRINTER_SERVER},
            {"kind": "http.device_type", "host": "127.0.0.61", "value": "printer"},
            {"kind": "http.vendor", "host": "127.0.0.61", "value": "HP"},
            {"kind": "http.model", "host": "127.0.0.61", "value": "LaserJet Pro M404dn"},
            {"kind": "http.host", "host": "127.0.0.61", "value": "127.0.0.61:8080"},
            {"kind": "http.user_agent", "host": "127.0.0.63", "value": CE_UA},
            {"kind": "http.os", "host": "127.0.0.63", "value": "Windows CE"},
            {"kind": "http.server", "host": "127.0.0.65", "value": WINCE_SERVER},
            {"kind": "http.x_powered_by", "host": "127.0.0.65", "value": "ASP.NET"},
            {"kind": "http.os", "host": "127.0.0.65", "value": "Windows CE"},
            {"kind": "http.host", "host": "127.0.0.65",
             "value": "bedside-07.icu.hospital.example:8081"},
            {"kind": "http.hostname", "host": "127.0.0.65",
             "value": "bedside-07.icu.hospital.example"},
        ],
        "messages": {"127.0.0.62": 6, "127.0.0.61": 6, "127.0.0.63": 1, "127.0.0.65": 1},
        "canaries": CANARIES,
    },
    "tls12_device_cert": {
        "description": "Real ssl peers on loopback: gateway 127.0.0.72 -> device "
        "127.0.0.71:2762, TLS 1.2 forced, SNI vitascope-7.icu.hospital.example, ALPN "
        "http/1.1, mutual TLS with self-signed certificates generated at record time.",
        "devices": [
            {"ip": "127.0.0.71", "mac": "02:00:00:00:00:47",
             "vendor": INVENTORY_VENDOR, "hostname": "vitascope-7.icu.hospital.example"},
            {"ip": "127.0.0.72", "mac": "02:00:00:00:00:48", "vendor": INVENTORY_VENDOR,
             "hostname": CLIENT_SUBJECT["cn"]},
        ],
        "observations": [
            {"kind": "tls.sni", "host": "127.0.0.71", "value": "vitascope-7.icu.hospital.example"},
            {"kind": "tls.version", "host": "127.0.0.71", "value": "TLS 1.2"},
            {"kind": "tls.alpn", "host": "127.0.0.71", "value": "http/1.1"},
            {"kind": "tls.alpn_offered", "host": "127.0.0.72", "value": "http/1.1"},
            {"kind": "tls.cert_subject_cn", "host": "127.0.0.71", "value": DEVICE_SUBJECT["cn"]},
            {"kind": "tls.cert_subject_o", "host": "127.0.0.71", "value": DEVICE_SUBJECT["o"]},
            {"kind": "tls.cert_subject_ou", "host": "127.0.0.71", "value": DEVICE_SUBJECT["ou"]},
            {"kind": "tls.cert_subject_serial", "host": "127.0.0.71",
             "value": DEVICE_SUBJECT["serial"]},
            {"kind": "tls.cert_issuer_cn", "host": "127.0.0.71", "value": DEVICE_SUBJECT["cn"]},
            {"kind": "tls.cert_self_signed", "host": "127.0.0.71", "value": "true"},
            {"kind": "tls.vendor", "host": "127.0.0.71", "value": DEVICE_SUBJECT["o"]},
            {"kind": "tls.hostname", "host": "127.0.0.71",
             "value": "vitascope-7.icu.hospital.example"},
            {"kind": "tls.cert_subject_cn", "host": "127.0.0.72", "value": CLIENT_SUBJECT["cn"]},
            {"kind": "tls.hostname", "host": "127.0.0.72", "value": CLIENT_SUBJECT["cn"]},
        ],
        "canaries": CANARIES,
    },
    "tls13": {
        "description": "Real ssl peers on loopback: 127.0.0.73 -> 127.0.0.74:443, TLS 1.3, "
        "SNI pacs.hospital.example, ALPN h2,http/1.1 offered (http/1.1 chosen, encrypted).",
        "devices": [
            {"ip": "127.0.0.74", "mac": "02:00:00:00:00:4a", "hostname": "pacs.hospital.example"},
        ],
        "observations": [
            {"kind": "tls.sni", "host": "127.0.0.74", "value": "pacs.hospital.example"},
            {"kind": "tls.version", "host": "127.0.0.74", "value": "TLS 1.3"},
            {"kind": "tls.alpn_offered", "host": "127.0.0.73", "value": "h2,http/1.1"},
        ],
        # TLS 1.3 encrypts EncryptedExtensions (the chosen ALPN) and the Certificate:
        "no_kinds": ["tls.alpn", "tls.cert_subject_cn", "tls.cert_subject_o"],
        "canaries": CANARIES + [PACS_SUBJECT["o"]],
    },
}


if __name__ == "__main__":
    main()
