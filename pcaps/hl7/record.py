"""Record the HL7 test captures over loopback with a real asyncio MLLP server and client.

Run as root (tcpdump on lo):  python pcaps/hl7/record.py [outdir]
Each scenario starts tcpdump (-i lo, filtered on its port), waits until it is ready,
runs a real server and client on distinct 127.0.0.x addresses, and stops tcpdump with
SIGINT. Message content is fixed (no clock), so reruns give the same payloads;
timestamps, ports and sequence numbers differ. Every message carries canary patient
data (names, IDs, addresses, phones) that must never appear in medtap's output.
Sends nothing anywhere but loopback.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

VT, FS_CR = b"\x0b", b"\x1c\r"
PID = (
    "PID|1||CANARY-ID-4711^^^HOSP^MR||CANARY^PATIENT^Vogel||19700101|F|||"
    "Kanarienweg 7^^Berlin^^10115^DE||+49-30-555-0147"
)
PV1 = "PV1|1|I|ICU^101^A|||||CANARY^DOCTOR"
NK1 = "NK1|1|CANARY^MOTHER|MTH|Kanarienweg 7^^Berlin|+49-30-555-0147"
CANARIES = ["CANARY", "CANARY-ID-4711", "Kanarienweg", "555-0147", "Vogel", "98.6", "Allergie"]
PCD_PROFILE = "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"


def msg(*segments: str, sep: str = "\r") -> bytes:
    return (sep.join(segments) + sep).encode("utf-8")


def pcd01(
    n: int, eui: str = "0009FBFFFE0A1B2C", model: str = "MX800", serial: str = "DE12345678"
) -> bytes:
    equip = f"{model}_{serial}^PHILIPS^{eui}^EUI-64"
    return msg(
        f"MSH|^~\\&|PIIC^0009FB0000000001^EUI-64|ICU-WEST|EMR|HOSP|2024010203{n:04d}||"
        f"ORU^R01^ORU_R01|PCD{n:05d}|P|2.6|||AL|NE||UNICODE UTF-8|||{PCD_PROFILE}",
        "SFT|Philips Medical Systems|C.02.11|IntelliVue Information Center|B123",
        PID,
        PV1,
        f"OBR|1|CANARY-ID-4711^HOSP|{equip}|69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC",
        f"OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||{equip}",
        f"OBX|2||70666^MDC_DEV_ECG_RESP_VMD^MDC|1.1.0.0|||||||X|||||||{equip}",
        f"OBX|3|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|{60 + n}|264864^MDC_DIM_BEAT_PER_MIN^MDC"
        f"|||||R|||||||{equip}",
        f"OBX|4|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|98.6|262688^MDC_DIM_PERCENT^MDC"
        f"|||||R|||||||{equip}",
        "NTE|1||CANARY free text about CANARY^PATIENT",
    )


def pump(n: int) -> bytes:
    equip = "Plum 360_15550123^ICU Medical"
    return msg(
        f"MSH|^~\\&|MEDNET|PUMPGW|EMR|HOSP|2024010203{n:04d}||ORU^R01^ORU_R01|PMP{n:05d}|P|2.6"
        f"|||AL|NE|||||{PCD_PROFILE}",
        PID,
        "OBR|1||PUMP-0001^MEDNET|69985^MDC_DEV_PUMP_INFUS_MDS^MDC",
        f"OBX|1||69985^MDC_DEV_PUMP_INFUS_MDS^MDC|1.0.0.0|||||||X|||||||{equip}",
        f"OBX|2||69986^MDC_DEV_PUMP_INFUS_VMD^MDC|1.1.0.0|||||||X|||||||{equip}",
        "OBX|3|NM|157784^MDC_FLOW_FLUID_PUMP^MDC|1.1.1.1|98.6|ml/h|||||R",
    )


def adt(event: str, n: int) -> bytes:
    return msg(
        f"MSH|^~\\&|ORBIS|KLINIKUM|LAB|KLINIKUM|2024010203{n:04d}||ADT^{event}^ADT_A01|"
        f"ADT{n:05d}|P|2.5|||AL|NE|DEU|8859/1",
        f"EVN|{event}|2024010203{n:04d}",
        PID,
        NK1,
        PV1,
        "AL1|1||^Allergie CANARY",
    )


def lab_result(n: int) -> bytes:
    return msg(
        f"MSH|^~\\&|SWISSLAB|LABOR|ORBIS|KLINIKUM|2024010203{n:04d}||ORU^R01^ORU_R01|"
        f"LAB{n:05d}|P|2.5",
        "SFT|Nexus Swisslab|3.1|SWISSLAB LIS",
        PID,
        f"OBR|1|CANARY-ID-4711|L-{n}|2160-0^Creatinine^LN",
        "OBX|1|NM|2160-0^Creatinine^LN||98.6|mg/dL|||||F",
        "NTE|1||CANARY remark",
    )


def order(n: int) -> bytes:
    return msg(
        f"MSH|^~\\&|ORBIS|KLINIKUM|RIS|RADIOLOGIE|2024010203{n:04d}||OMI^O23^OMI_O23|"
        f"ORD{n:05d}|P|2.5",
        PID,
        PV1,
        f"ORC|NW|CANARY-ORDER-{n}",
        "OBR|1|CANARY-ORDER|x|CT-HEAD^CT Kopf^L",
        "IPC|1.2.3|4.5.6|CANARY|CT",
    )


def ack(message: bytes) -> bytes:
    """A real ACK for ``message``: MSH-3/4 and 5/6 swapped, MSA-2 = its MSH-10."""
    first = message.replace(b"\n", b"\r").split(b"\r", 1)[0].decode("latin-1")
    f = first.split("|")
    event = f[8].split("^")[1] if "^" in f[8] else ""
    return msg(
        f"MSH|^~\\&|{f[4]}|{f[5]}|{f[2]}|{f[3]}|20240102030999||ACK^{event}^ACK|"
        f"ACK{f[9]}|P|{f[11]}",
        f"MSA|AA|{f[9]}",
    )


# --- a real MLLP server ------------------------------------------------------------------
async def mllp_server(host: str, port: int, reply: bool = True) -> asyncio.base_events.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        try:
            while data := await reader.read(4096):
                buf += data
                while True:
                    start, end = buf.find(VT), buf.find(FS_CR)
                    if start < 0 or end < 0:
                        break
                    frame, buf = buf[start + 1 : end], buf[end + 2 :]
                    if reply and frame.startswith(b"MSH"):
                        writer.write(VT + ack(frame) + FS_CR)
                        await writer.drain()
                if len(buf) > 1 << 20:
                    break
        except ConnectionError:
            pass
        writer.close()

    return await asyncio.start_server(handle, host, port)


async def client(
    src: str, host: str, port: int, writes: list[bytes], gap: float = 0.02, wait_acks: int = 0
) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((src, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock)
    for chunk in writes:
        writer.write(chunk)
        await writer.drain()
        await asyncio.sleep(gap)
    got = b""
    while got.count(FS_CR) < wait_acks:
        data = await asyncio.wait_for(reader.read(4096), 2)
        if not data:
            break
        got += data
    await asyncio.sleep(0.05)
    writer.close()
    await writer.wait_closed()


def frames(*messages: bytes) -> list[bytes]:
    return [VT + m + FS_CR for m in messages]


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# --- scenarios ---------------------------------------------------------------------------
async def gateway() -> None:
    """PCD-01 monitor gateway .21 -> EMR .22:2575; one ORU split over many segments,
    three in one segment; an infusion-pump gateway .23 -> EMR .22:2575."""
    srv = await mllp_server("127.0.0.22", 2575)
    first = VT + pcd01(1) + FS_CR
    many = b"".join(frames(pcd01(2), pcd01(3), pcd01(4)))
    await client("127.0.0.21", "127.0.0.22", 2575, [*split(first, 97), many], wait_acks=4)
    await client("127.0.0.23", "127.0.0.22", 2575, frames(pump(1), pump(2)), wait_acks=2)
    srv.close()


async def his() -> None:
    """HIS .31 sends ADT A01/A08/A03 to LIS .32:2575 and an imaging order to RIS .33:2575;
    LIS .32 sends lab results back to HIS .31:2576 (LF separators, as some LIS do)."""
    s1 = await mllp_server("127.0.0.32", 2575)
    s2 = await mllp_server("127.0.0.33", 2575)
    s3 = await mllp_server("127.0.0.31", 2576)
    adts = frames(adt("A01", 1), adt("A08", 2), adt("A03", 3))
    await client("127.0.0.31", "127.0.0.32", 2575, adts, wait_acks=3)
    await client("127.0.0.31", "127.0.0.33", 2575, frames(order(1)), wait_acks=1)
    lf = [VT + lab_result(i).replace(b"\r", b"\n") + FS_CR for i in (1, 2)]
    await client("127.0.0.32", "127.0.0.31", 2576, lf, wait_acks=2)
    for s in (s1, s2, s3):
        s.close()


async def odd() -> None:
    """Non-standard port 6661 (MLLP), unframed HL7 on 7000 with \\n separators and
    non-ASCII text (latin-1 per MSH-18 and UTF-8)."""
    s1 = await mllp_server("127.0.0.42", 6661)
    s2 = await mllp_server("127.0.0.42", 7000, reply=False)
    await client("127.0.0.41", "127.0.0.42", 6661, frames(adt("A01", 9)), wait_acks=1)
    latin = msg(
        "MSH|^~\\&|KÜCHE|STÄDTISCHES KLINIKUM|X|Y|20240102||ADT^A03^ADT_A03|U1|P|2.5"
        "|||||DEU|8859/1",
        PID,
    ).replace("ü".encode(), b"\xfc").replace("Ü".encode(), b"\xdc").replace("Ä".encode(), b"\xc4")
    utf8 = msg(
        "MSH|^~\\&|LABOR-MÜNCHEN|STÄDTISCHES KLINIKUM|X|Y|20240102||ORU^R01^ORU_R01|U2|P|2.5"
        "|||||DEU|UNICODE UTF-8",
        PID,
        "OBX|1|NM|2160-0^Creatinine^LN||98.6|mg/dL",
        sep="\n",
    )
    await client("127.0.0.43", "127.0.0.42", 7000, [latin + utf8])
    s1.close()
    s2.close()


async def bad() -> None:
    """Robustness, each on its own connection to .52:2575: invalid MSH, a frame that never
    ends (bounded buffering), binary garbage, then one good message."""
    srv = await mllp_server("127.0.0.52", 2575, reply=False)
    await client("127.0.0.51", "127.0.0.52", 2575, [VT + b"MSH1234567\rPID|CANARY\r" + FS_CR])
    endless = [VT + b"MSH|^~\\&|NOEND|X|||||ORU^R01|1|P|2.5\r"] + [
        b"OBX|1|ST|x||CANARY " + b"y" * 1400 + b"\r"
    ] * 40
    await client("127.0.0.53", "127.0.0.52", 2575, endless, gap=0.002)
    garbage = bytes((i * 37 + 11) % 256 for i in range(3000))
    await client("127.0.0.54", "127.0.0.52", 2575, [garbage])
    await client("127.0.0.55", "127.0.0.52", 2575, frames(adt("A08", 7)))
    srv.close()


SCENARIOS: dict[str, tuple[str, Callable[[], Awaitable[None]]]] = {
    "hl7_pcd01_gateway": ("port 2575", gateway),
    "hl7_his_lis_ris": ("port 2575 or port 2576", his),
    "hl7_odd_framing": ("port 6661 or port 7000", odd),
    "hl7_robustness": ("port 2575", bad),
}


def record(name: str, bpf: str, scenario: Callable[[], Awaitable[None]], outdir: Path) -> None:
    out = outdir / f"{name}.pcap"
    proc = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "-s", "0", "-w", str(out), bpf],
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
    asyncio.run(scenario())
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    proc.wait(5)
    print(f"{out}: {out.stat().st_size} bytes")  # noqa: T201 - a command-line tool


def main() -> None:
    outdir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    for name, (bpf, scenario) in SCENARIOS.items():
        record(name, bpf, scenario, outdir)


if __name__ == "__main__":
    main()
