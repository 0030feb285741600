"""Record the DICOM test captures in pcaps/dicom/ with real peers over loopback.

Usage (root, for tcpdump on ``lo`` and port 104):  python pcaps/dicom/make_dicom_pcaps.py [case...]

Peers: dcmtk (/usr/bin/echoscu, storescu, storescp, findscu, wlmscpfs) and pynetdicom SCUs and
SCPs; two small socket-level senders (``split_header``, ``many_pdus``) built from pynetdicom's
own PDU encoder talk to a real pynetdicom SCP. Every data set is made here with pydicom:
64x64 images (one 256x256 for the bulk-PDU path), fixed UIDs, realistic device attributes,
and canary patient attributes (CANARY^PATIENT / CANARY-ID-4711) that tests assert never
reach an observation. Traffic only ever goes to 127.0.0.0/8.

Each capture is recorded with
``tcpdump -i lo --immediate-mode -U -w <case>.pcap tcp port <port>``: started,
waited for until it reports it is listening, the peers run, then stopped with SIGINT.
Packet timing varies run to run; the ``<case>.truth.json`` files list facts, not times.
``--truth-only`` rewrites the truth files from ``TRUTH`` below without recording.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    ModalityWorklistInformationFind,
    MRImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    UltrasoundImageStorage,
    Verification,
)

HERE = Path(__file__).resolve().parent
DCMTK = Path("/usr/bin")
CANARY_NAME = "CANARY^PATIENT"
CANARY_ID = "CANARY-ID-4711"
CANARIES = [CANARY_NAME, CANARY_ID, "CANARY^MOTHER", "19010101"]
log = logging.getLogger("make_dicom_pcaps")

# Device personas: (modality, SOP class, manufacturer, model, station, serial, software)
DEVICES = {
    "CT": (CTImageStorage, "GE MEDICAL SYSTEMS", "Revolution CT", "CTSTATION01", "CT-SN-0001",
           "revo_ct_22.1"),
    "MR": (MRImageStorage, "SIEMENS", "MAGNETOM Vida", "MRC40123", "MR-SN-40123",
           "syngo MR XA50"),
    "US": (UltrasoundImageStorage, "Philips Medical Systems", "EPIQ 7G", "EPIQ7-US3",
           "US-SN-7777", "7.0.5.412"),
    "CR": (ComputedRadiographyImageStorage, "FUJIFILM Corporation", "FCR PROFECT CS",
           "FCR-CR1", "CR-SN-0042", "A08.5"),
}


def uid(n: int) -> str:
    return f"2.25.4711000000000000000000{n:06d}"


def image(modality: str, n: int, size: int = 64) -> Dataset:
    sop, manufacturer, model, station, serial, software = DEVICES[modality]
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = sop
    ds.SOPInstanceUID = uid(n)
    ds.StudyDate = ds.SeriesDate = "20240101"
    ds.StudyTime = "120000"
    ds.AccessionNumber = "ACC0001"
    ds.Modality = modality
    ds.Manufacturer = manufacturer
    ds.InstitutionName = "MEDTAP TEST HOSPITAL"
    ds.ReferringPhysicianName = "CANARY^DOCTOR"
    ds.StationName = station
    ds.ManufacturerModelName = model
    ds.PatientName = CANARY_NAME
    ds.PatientID = CANARY_ID
    ds.PatientBirthDate = "19010101"
    ds.PatientSex = "O"
    ds.PatientMotherBirthName = "CANARY^MOTHER"
    ds.DeviceSerialNumber = serial
    ds.SoftwareVersions = software
    ds.StudyInstanceUID = uid(900000 + n // 100)
    ds.SeriesInstanceUID = uid(800000 + n // 10)
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = n % 1000
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = (np.arange(size * size, dtype="<u2") % 4096).tobytes()
    return ds


def as_file(ds: Dataset, path: Path, syntax: str = ExplicitVRLittleEndian) -> Path:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(path, enforce_file_format=True)
    return path


# ---- recording -----------------------------------------------------------------------------
@contextmanager
def tcpdump(name: str, port: int) -> Iterator[None]:
    out = HERE / f"{name}.pcap"
    # --immediate-mode: without it this kernel's TPACKET_V3 ring hands tcpdump nothing
    # before SIGINT ("0 packets captured", every packet "received by filter").
    cmd = ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-s", "0", "-w", str(out),
           f"tcp port {port}"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "tcpdump: listening on lo, ..." once the socket is bound
    if "listening" not in line:
        proc.kill()
        raise RuntimeError(f"tcpdump did not start: {line!r}")
    try:
        yield
    finally:
        time.sleep(0.3)  # last FIN/ACKs
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        log.info("%s: %d bytes", out.name, out.stat().st_size)


@contextmanager
def dcmtk_server(args: list[str], port: int) -> Iterator[None]:
    proc = subprocess.Popen([*args, str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port("127.0.0.1", port)
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def wait_port(host: str, port: int) -> None:
    """Wait for a listener without connecting to it (a probe connection would be captured)."""
    for _ in range(100):
        out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True,
                             text=True).stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port}")


def run(*args: str) -> None:
    subprocess.run(list(args), check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60)


def scp_ae(title: str, contexts: list[str], max_pdu: int = 16382) -> AE:
    ae = AE(ae_title=title)
    ae.maximum_pdu_size = max_pdu
    ae.implementation_class_uid = "1.2.840.113619.6.475"  # a GE-rooted archive
    ae.implementation_version_name = "GE_PACS_7"
    for c in contexts:
        ae.add_supported_context(c, [ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                                     ExplicitVRBigEndian])
    return ae


@contextmanager
def pynetdicom_server(
    ae: AE, host: str, port: int, handlers: list[tuple[object, Callable[..., object]]]
) -> Iterator[None]:
    server = ae.start_server((host, port), block=False, evt_handlers=handlers)
    try:
        yield
    finally:
        server.shutdown()


def store_scu(modality: str, bind: str, title: str, host: str, port: int, called: str,
              images: list[Dataset], syntax: str = ExplicitVRLittleEndian,
              impl: tuple[str, str] | None = None) -> None:
    sop = DEVICES[modality][0]
    ae = AE(ae_title=title)
    if impl:
        ae.implementation_class_uid, ae.implementation_version_name = impl
    ae.add_requested_context(sop, [syntax])
    assoc = ae.associate(host, port, ae_title=called, bind_address=(bind, 0))
    if not assoc.is_established:
        raise RuntimeError(f"{title}: association failed")
    for ds in images:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax
        assoc.send_c_store(ds)
    assoc.release()


# ---- cases ---------------------------------------------------------------------------------
def case_echo(tmp: Path) -> None:
    """dcmtk echoscu -> dcmtk storescp (C-ECHO), on port 104."""
    port = 104
    with dcmtk_server([str(DCMTK / "storescp"), "-aet", "ECHO_SCP", "--ignore"], port), \
            tcpdump("echo", port):
        run(str(DCMTK / "echoscu"), "-aet", "WARD3_WS", "-aec", "ECHO_SCP", "127.0.0.12",
            str(port))


def case_store_modalities(tmp: Path) -> None:
    """CT, US, CR (pynetdicom, own addresses) and MR (dcmtk storescu) -> dcmtk storescp."""
    port = 11112
    mr_files = [str(as_file(image("MR", 200 + i), tmp / f"mr{i}.dcm")) for i in range(2)]
    scp = [str(DCMTK / "storescp"), "-aet", "PACS_ARCHIVE", "--ignore", "--max-pdu", "131072",
           "+xa"]
    with dcmtk_server(scp, port), tcpdump("store_modalities", port):
        store_scu("CT", "127.0.0.21", "CT_SCANNER_1", "127.0.0.12", port, "PACS_ARCHIVE",
                  [image("CT", 100 + i) for i in range(3)],
                  impl=("1.2.840.113619.6.374", "REVO_CT_22"))
        run(str(DCMTK / "storescu"), "-aet", "MR_SCANNER_2", "-aec", "PACS_ARCHIVE",
            "127.0.0.12", str(port), *mr_files)
        store_scu("US", "127.0.0.23", "US_EPIQ_3", "127.0.0.12", port, "PACS_ARCHIVE",
                  [image("US", 300)], syntax=ImplicitVRLittleEndian)
        # Big-endian data set, one 128 KiB image: P-DATA-TF PDUs larger than the parser keeps.
        store_scu("CR", "127.0.0.24", "CR_FCR_4", "127.0.0.12", port, "PACS_ARCHIVE",
                  [image("CR", 400, size=256)], syntax=ExplicitVRBigEndian,
                  impl=("1.2.392.200036.9125.5342.1", "FCR_A085"))


def qr_handlers() -> list[tuple[object, Callable[..., object]]]:
    def on_find(event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        for i in range(2):
            rsp = Dataset()
            rsp.QueryRetrieveLevel = "STUDY"
            rsp.StudyInstanceUID = uid(900000 + i)
            rsp.StudyDate = "20240101"
            rsp.PatientName = CANARY_NAME
            rsp.PatientID = CANARY_ID
            rsp.ModalitiesInStudy = "CT"
            rsp.RetrieveAETitle = "PACS_QR"
            yield 0xFF00, rsp

    return [(evt.EVT_C_FIND, on_find), (evt.EVT_C_ECHO, lambda e: 0x0000)]


def case_find_study_root(tmp: Path) -> None:
    """dcmtk findscu -S (study root) -> pynetdicom Q/R SCP on 127.0.0.14:11112."""
    port = 11112
    ae = scp_ae("PACS_QR", [StudyRootQueryRetrieveInformationModelFind, Verification])
    with pynetdicom_server(ae, "127.0.0.14", port, qr_handlers()), \
            tcpdump("find_study_root", port):
        run(str(DCMTK / "findscu"), "-S", "-aet", "VIEWER_WS5", "-aec", "PACS_QR",
            "-k", "QueryRetrieveLevel=STUDY", "-k", f"PatientName={CANARY_NAME}",
            "-k", "StudyInstanceUID", "-k", "StudyDate", "127.0.0.14", str(port))


def worklist_item(n: int) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.AccessionNumber = f"ACC{n:04d}"
    ds.PatientName = CANARY_NAME
    ds.PatientID = CANARY_ID
    ds.PatientBirthDate = "19010101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = uid(700000 + n)
    ds.RequestedProcedureID = f"RP{n}"
    ds.RequestedProcedureDescription = "CT HEAD"
    step = Dataset()
    step.Modality = "CT"
    step.ScheduledStationAETitle = "CT_SCANNER_1"
    step.ScheduledProcedureStepStartDate = "20240101"
    step.ScheduledProcedureStepStartTime = "120000"
    step.ScheduledPerformingPhysicianName = "CANARY^DOCTOR"
    step.ScheduledProcedureStepID = f"SPS{n}"
    step.ScheduledStationName = "CTSTATION01"
    step.ScheduledProcedureStepDescription = "CT HEAD W/O CONTRAST"  # wlmscpfs needs (0040,0007)
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def case_mwl(tmp: Path) -> None:
    """pynetdicom MWL SCU (CT persona, 127.0.0.21) -> dcmtk wlmscpfs (127.0.0.13:4242)."""
    port = 4242
    wl = tmp / "wlist" / "RIS_WL"
    wl.mkdir(parents=True)
    (wl / "lockfile").touch()
    for n in range(2):
        as_file_wl = worklist_item(n)
        as_file_wl.file_meta = FileMetaDataset()
        as_file_wl.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        as_file_wl.file_meta.MediaStorageSOPClassUID = "1.2.276.0.7230010.3.1.0.1"
        as_file_wl.file_meta.MediaStorageSOPInstanceUID = uid(600000 + n)
        as_file_wl.save_as(wl / f"item{n}.wl", enforce_file_format=True)
    with dcmtk_server([str(DCMTK / "wlmscpfs"), "-dfp", str(tmp / "wlist")], port), \
            tcpdump("mwl", port):
        ae = AE(ae_title="CT_SCANNER_1")
        ae.implementation_class_uid = "1.2.840.113619.6.374"
        ae.implementation_version_name = "REVO_CT_22"
        ae.add_requested_context(ModalityWorklistInformationFind, [ExplicitVRLittleEndian])
        assoc = ae.associate("127.0.0.13", port, ae_title="RIS_WL",
                             bind_address=("127.0.0.21", 0))
        query = Dataset()
        query.PatientName = ""
        query.PatientID = ""
        step = Dataset()
        step.Modality = "CT"
        step.ScheduledStationAETitle = "CT_SCANNER_1"
        step.ScheduledProcedureStepStartDate = ""
        query.ScheduledProcedureStepSequence = [step]
        if assoc.is_established:
            for _status, _ids in assoc.send_c_find(query, ModalityWorklistInformationFind):
                pass
            assoc.release()


def case_rejected(tmp: Path) -> None:
    """dcmtk echoscu with an unknown calling AE -> pynetdicom SCP that requires its own."""
    port = 11112
    ae = scp_ae("STRICT_SCP", [Verification])
    ae.require_calling_aet = ["KNOWN_AE"]
    with pynetdicom_server(ae, "127.0.0.15", port, []), tcpdump("rejected", port):
        run(str(DCMTK / "echoscu"), "-aet", "INTRUDER", "-aec", "STRICT_SCP", "127.0.0.15",
            str(port))


def case_abort(tmp: Path) -> None:
    """pynetdicom SCU associates, sends a C-ECHO, then A-ABORTs."""
    port = 11112
    ae = scp_ae("ECHO_SCP", [Verification])
    with pynetdicom_server(ae, "127.0.0.16", port, [(evt.EVT_C_ECHO, lambda e: 0)]), \
            tcpdump("abort", port):
        scu = AE(ae_title="ABORTING_SCU")
        scu.add_requested_context(Verification)
        assoc = scu.associate("127.0.0.16", port, ae_title="ECHO_SCP",
                              bind_address=("127.0.0.26", 0))
        if assoc.is_established:
            assoc.send_c_echo()
            assoc.abort()
        time.sleep(0.3)


def case_nonstandard_port(tmp: Path) -> None:
    """C-STORE of one US image on port 20104 (no port hint): payload detection only."""
    port = 20104
    ae = scp_ae("ODD_PORT_SCP", [UltrasoundImageStorage])
    with pynetdicom_server(ae, "127.0.0.17", port, [(evt.EVT_C_STORE, lambda e: 0)]), \
            tcpdump("nonstandard_port", port):
        store_scu("US", "127.0.0.23", "US_EPIQ_3", "127.0.0.17", port, "ODD_PORT_SCP",
                  [image("US", 301)])


# ---- socket-level senders (real SCP, PDUs from pynetdicom's encoder) -----------------------
def assoc_rq(calling: str, called: str, contexts: list[tuple[int, str, str]],
             max_pdu: int = 16384) -> bytes:
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = calling
    primitive.called_ae_title = called
    pcs = []
    for cid, abstract, syntax in contexts:
        pc = PresentationContext()
        pc.context_id = cid
        pc.abstract_syntax = abstract
        pc.transfer_syntax = [syntax]
        pcs.append(pc)
    primitive.presentation_context_definition_list = pcs
    length = MaximumLengthNotification()
    length.maximum_length_received = max_pdu
    from pynetdicom.pdu_primitives import (
        ImplementationClassUIDNotification,
        ImplementationVersionNameNotification,
    )
    impl = ImplementationClassUIDNotification()
    impl.implementation_class_uid = "1.3.46.670589.30.41.0"  # Philips-rooted
    version = ImplementationVersionNameNotification()
    version.implementation_version_name = "INTELLISPACE_9"
    primitive.user_information = [length, impl, version]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


def pdata(pdvs: list[tuple[int, int, bytes]]) -> bytes:
    body = b"".join(struct.pack(">IBB", len(d) + 2, cid, hdr) + d for cid, hdr, d in pdvs)
    return struct.pack(">BBI", 0x04, 0, len(body)) + body


def command(field: int, sop: str, msg_id: int, has_data: bool, sop_instance: str = "") -> bytes:
    """A DIMSE request command set (PS3.7 9.3), implicit VR LE, with its group length."""
    from pynetdicom.dsutils import encode

    cs = Dataset()
    cs.AffectedSOPClassUID = sop
    cs.CommandField = field
    cs.MessageID = msg_id
    if field == 0x0001:
        cs.Priority = 2
    cs.CommandDataSetType = 0x0000 if has_data else 0x0101
    if sop_instance:
        cs.AffectedSOPInstanceUID = sop_instance
    body = encode(cs, True, True)
    assert body is not None
    cs.CommandGroupLength = len(body)
    raw = encode(cs, True, True)
    assert raw is not None
    return raw


def recv_pdu(sock: socket.socket) -> bytes:
    head = b""
    while len(head) < 6:
        head += sock.recv(6 - len(head))
    length = struct.unpack(">I", head[2:6])[0]
    body = b""
    while len(body) < length:
        body += sock.recv(length - len(body))
    return head + body


def echo_scp(host: str, port: int, title: str, max_pdu: int = 16382
             ) -> tuple[AE, list[tuple[object, Callable[..., object]]]]:
    ae = scp_ae(title, [Verification, CTImageStorage], max_pdu=max_pdu)
    return ae, [(evt.EVT_C_ECHO, lambda e: 0), (evt.EVT_C_STORE, lambda e: 0)]


def case_split_header(tmp: Path) -> None:
    """Socket sender: every PDU goes out in small segments, the first holding only the
    6-byte PDU header (TCP_NODELAY + pauses), against a real pynetdicom SCP."""
    port = 11112
    ae, handlers = echo_scp("127.0.0.18", port, "SPLIT_SCP")
    with pynetdicom_server(ae, "127.0.0.18", port, handlers), tcpdump("split_header", port):
        sock = socket.socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.28", 0))
        sock.connect(("127.0.0.18", port))

        def dribble(pdu: bytes, step: int = 24) -> None:
            sock.sendall(pdu[:6])
            time.sleep(0.05)
            for i in range(6, len(pdu), step):
                sock.sendall(pdu[i : i + step])
                time.sleep(0.01)

        dribble(assoc_rq("SPLIT_SENDER", "SPLIT_SCP",
                         [(1, Verification, ImplicitVRLittleEndian)]))
        recv_pdu(sock)
        dribble(pdata([(1, 0x03, command(0x0030, Verification, 1, False))]), step=7)
        recv_pdu(sock)
        dribble(bytes.fromhex("050000000004") + b"\0" * 4)
        recv_pdu(sock)
        sock.close()


def case_many_pdus(tmp: Path) -> None:
    """Socket sender: a C-STORE whose command PDU and 20 small data PDUs (one data set
    split over many PDVs) leave in one send(), i.e. many PDUs in one TCP segment."""
    port = 11112
    ae, handlers = echo_scp("127.0.0.19", port, "BULK_SCP")
    from pynetdicom.dsutils import encode

    with pynetdicom_server(ae, "127.0.0.19", port, handlers), tcpdump("many_pdus", port):
        sock = socket.socket()
        sock.bind(("127.0.0.29", 0))
        sock.connect(("127.0.0.19", port))
        sock.sendall(assoc_rq("CT_SCANNER_9", "BULK_SCP",
                              [(1, CTImageStorage, ImplicitVRLittleEndian)]))
        recv_pdu(sock)
        ds = image("CT", 900)
        data = encode(ds, True, True)
        assert data is not None
        cmd = command(0x0001, CTImageStorage, 1, True, ds.SOPInstanceUID)
        pdus = [pdata([(1, 0x03, cmd)])]
        chunk = 400
        for i in range(0, len(data), chunk):
            last = i + chunk >= len(data)
            pdus.append(pdata([(1, 0x02 if last else 0x00, data[i : i + chunk])]))
        sock.sendall(b"".join(pdus))
        recv_pdu(sock)
        sock.sendall(bytes.fromhex("050000000004") + b"\0" * 4)
        recv_pdu(sock)
        sock.close()


def case_small_pdu(tmp: Path) -> None:
    """pynetdicom SCU stores a CT image to a pynetdicom SCP that accepts only 1 KiB PDUs:
    the data set arrives as many PDVs in many P-DATA-TF PDUs."""
    port = 11112
    ae, handlers = echo_scp("127.0.0.20", port, "TINY_PDU_SCP", max_pdu=1024)
    with pynetdicom_server(ae, "127.0.0.20", port, handlers), tcpdump("small_pdu", port):
        store_scu("CT", "127.0.0.21", "CT_SCANNER_1", "127.0.0.20", port, "TINY_PDU_SCP",
                  [image("CT", 500)], impl=("1.2.840.113619.6.374", "REVO_CT_22"))


CASES: dict[str, Callable[[Path], None]] = {
    name[len("case_"):]: fn for name, fn in globals().items() if name.startswith("case_")
}


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.ERROR)
    if os.geteuid() != 0:
        log.error("needs root (tcpdump on lo, port 104)")
        return 1
    wanted = argv or list(CASES)
    for name in wanted:
        with tempfile.TemporaryDirectory() as tmp:
            log.info("recording %s", name)
            CASES[name](Path(tmp))
            threading.Event().wait(0.2)
    return 0



# ---- ground truth (what the peers above were told to say; reviewed, not parser output) ----
def _dev(ip: str, aes: list[str], device_type: str | None = None, vendor: str | None = None,
         model: str | None = None, software_version: str | None = None) -> dict[str, object]:
    return {"ip": ip, "ae_titles": aes, "device_type": device_type, "vendor": vendor,
            "model": model, "software_version": software_version}


def _device_type(modality: str) -> str:
    """The inventory's word for a DICOM Modality code (parsers/data/dicom_modalities.csv)."""
    from parsers.dicom.fingerprints import modality_device_type

    return modality_device_type(modality) or "imaging-modality"


def _o(kind: str, host: str, value: str) -> dict[str, str]:
    return {"kind": f"dicom.{kind}", "host": host, "value": value}


def _modality_obs(ip: str, modality: str) -> list[dict[str, str]]:
    sop, manufacturer, model, station, serial, software = DEVICES[modality]
    return [
        _o("command", ip, f"C-STORE-RQ {sop}"), _o("modality", ip, modality),
        _o("manufacturer", ip, manufacturer), _o("model_name", ip, model),
        _o("station_name", ip, station), _o("serial_number", ip, serial),
        _o("software_versions", ip, software), _o("device_type", ip, _device_type(modality)),
        _o("model", ip, model), _o("serial", ip, serial), _o("software_version", ip, software),
        _o("hostname", ip, station),
    ]


DCMTK_UID, DCMTK_VERSION = "1.2.276.0.7230010.3.0.3.6.7", "OFFIS_DCMTK_367"
PYNETDICOM_UID, PYNETDICOM_VERSION = "1.2.826.0.1.3680043.9.3811.3.0.4", "PYNETDICOM_304"
GE_PACS = ("1.2.840.113619.6.475", "GE_PACS_7")
GE_CT = ("1.2.840.113619.6.374", "REVO_CT_22")
PHILIPS_WS = ("1.3.46.670589.30.41.0", "INTELLISPACE_9")
LO = "127.0.0.1"  # dcmtk SCUs cannot bind a source address


def _impl(ip: str, pair: tuple[str, str]) -> list[dict[str, str]]:
    return [_o("implementation_class_uid", ip, pair[0]),
            _o("implementation_version_name", ip, pair[1])]


def _assoc(client: str, calling: str, server: str, called: str) -> list[dict[str, str]]:
    return [_o("calling_ae_title", client, calling), _o("called_ae_title", server, called)]


CT = ("CT", "GE Healthcare", "Revolution CT", "revo_ct_22.1")
MR = ("MR", "Siemens Healthineers", "MAGNETOM Vida", "syngo MR XA50")
US = ("US", "Philips", "EPIQ 7G", "7.0.5.412")
CR = ("CR", "Fujifilm", "FCR PROFECT CS", "A08.5")


def _modality_dev(ip: str, ae: str, m: tuple[str, str, str, str]) -> dict[str, object]:
    return _dev(ip, [ae], _device_type(m[0]), m[1], m[2], m[3])


TRUTH: dict[str, dict[str, list[object]]] = {
    "echo": {
        "devices": [_dev(LO, ["WARD3_WS"]), _dev("127.0.0.12", ["ECHO_SCP"])],
        "observations": [
            *_assoc(LO, "WARD3_WS", "127.0.0.12", "ECHO_SCP"),
            *_impl(LO, (DCMTK_UID, DCMTK_VERSION)),
            *_impl("127.0.0.12", (DCMTK_UID, DCMTK_VERSION)),
            _o("toolkit", LO, "DCMTK"), _o("abstract_syntax", LO, Verification),
            _o("command", LO, f"C-ECHO-RQ {Verification}"),
            _o("command", "127.0.0.12", f"C-ECHO-RSP {Verification}"),
            _o("role", LO, "verification scu"), _o("role", "127.0.0.12", "verification scp"),
            _o("release", LO, "A-RELEASE-RQ"), _o("release", "127.0.0.12", "A-RELEASE-RP"),
        ],
    },
    "store_modalities": {
        "devices": [
            _modality_dev("127.0.0.21", "CT_SCANNER_1", CT),
            _modality_dev(LO, "MR_SCANNER_2", MR),
            _modality_dev("127.0.0.23", "US_EPIQ_3", US),
            _modality_dev("127.0.0.24", "CR_FCR_4", CR),
            _dev("127.0.0.12", ["PACS_ARCHIVE"], "pacs"),
        ],
        "observations": [
            *_assoc("127.0.0.21", "CT_SCANNER_1", "127.0.0.12", "PACS_ARCHIVE"),
            *_assoc(LO, "MR_SCANNER_2", "127.0.0.12", "PACS_ARCHIVE"),
            *_assoc("127.0.0.23", "US_EPIQ_3", "127.0.0.12", "PACS_ARCHIVE"),
            *_assoc("127.0.0.24", "CR_FCR_4", "127.0.0.12", "PACS_ARCHIVE"),
            *_impl("127.0.0.21", GE_CT), *_impl("127.0.0.24", ("1.2.392.200036.9125.5342.1",
                                                               "FCR_A085")),
            *_impl("127.0.0.23", (PYNETDICOM_UID, PYNETDICOM_VERSION)),
            _o("toolkit", "127.0.0.23", "pynetdicom"), _o("toolkit", "127.0.0.12", "DCMTK"),
            _o("vendor", "127.0.0.21", "GE Healthcare"), _o("vendor", LO, "Siemens Healthineers"),
            _o("vendor", "127.0.0.23", "Philips"), _o("vendor", "127.0.0.24", "Fujifilm"),
            _o("transfer_syntax", "127.0.0.12", ExplicitVRBigEndian),
            _o("transfer_syntax", "127.0.0.12", ImplicitVRLittleEndian),
            _o("max_pdu_length", "127.0.0.12", "131072"),
            _o("device_type", "127.0.0.12", "pacs"),
            *_modality_obs("127.0.0.21", "CT"), *_modality_obs(LO, "MR"),
            *_modality_obs("127.0.0.23", "US"), *_modality_obs("127.0.0.24", "CR"),
        ],
    },
    "find_study_root": {
        "devices": [_dev(LO, ["VIEWER_WS5"]),
                    _dev("127.0.0.14", ["PACS_QR"], "pacs", "GE Healthcare")],
        "observations": [
            *_assoc(LO, "VIEWER_WS5", "127.0.0.14", "PACS_QR"), *_impl("127.0.0.14", GE_PACS),
            _o("abstract_syntax", LO, StudyRootQueryRetrieveInformationModelFind),
            _o("command", LO, f"C-FIND-RQ {StudyRootQueryRetrieveInformationModelFind}"),
            _o("command", "127.0.0.14",
               f"C-FIND-RSP {StudyRootQueryRetrieveInformationModelFind}"),
            _o("role", "127.0.0.14", "qr-find scp"), _o("device_type", "127.0.0.14", "pacs"),
            _o("vendor", "127.0.0.14", "GE Healthcare"),
        ],
    },
    "mwl": {
        "devices": [_dev("127.0.0.21", ["CT_SCANNER_1"], "imaging-modality", "GE Healthcare"),
                    _dev("127.0.0.13", ["RIS_WL"], "ris")],
        "observations": [
            *_assoc("127.0.0.21", "CT_SCANNER_1", "127.0.0.13", "RIS_WL"),
            *_impl("127.0.0.21", GE_CT), *_impl("127.0.0.13", (DCMTK_UID, DCMTK_VERSION)),
            _o("command", "127.0.0.21", f"C-FIND-RQ {ModalityWorklistInformationFind}"),
            _o("command", "127.0.0.13", f"C-FIND-RSP {ModalityWorklistInformationFind}"),
            _o("role", "127.0.0.13", "mwl scp"), _o("device_type", "127.0.0.13", "ris"),
            _o("device_type", "127.0.0.21", "imaging-modality"),
            _o("scheduled_station_ae_title", "127.0.0.13", "CT_SCANNER_1"),
            _o("scheduled_modality", "127.0.0.13", "CT"),
        ],
    },
    "rejected": {
        "devices": [_dev(LO, ["INTRUDER"]), _dev("127.0.0.15", ["STRICT_SCP"])],
        "observations": [
            *_assoc(LO, "INTRUDER", "127.0.0.15", "STRICT_SCP"),
            _o("association_rejected", "127.0.0.15",
               "rejected-permanent service-user calling-ae-title-not-recognized"),
        ],
    },
    "abort": {
        "devices": [_dev("127.0.0.26", ["ABORTING_SCU"]), _dev("127.0.0.16", ["ECHO_SCP"])],
        "observations": [
            *_assoc("127.0.0.26", "ABORTING_SCU", "127.0.0.16", "ECHO_SCP"),
            _o("command", "127.0.0.26", f"C-ECHO-RQ {Verification}"),
            _o("abort", "127.0.0.26", "service-user not-specified"),
        ],
    },
    "nonstandard_port": {
        "devices": [_modality_dev("127.0.0.23", "US_EPIQ_3", US),
                    _dev("127.0.0.17", ["ODD_PORT_SCP"], "pacs")],
        "observations": [*_assoc("127.0.0.23", "US_EPIQ_3", "127.0.0.17", "ODD_PORT_SCP"),
                         *_modality_obs("127.0.0.23", "US")],
    },
    "split_header": {
        "devices": [_dev("127.0.0.28", ["SPLIT_SENDER"], None, "Philips"),
                    _dev("127.0.0.18", ["SPLIT_SCP"])],
        "observations": [
            *_assoc("127.0.0.28", "SPLIT_SENDER", "127.0.0.18", "SPLIT_SCP"),
            *_impl("127.0.0.28", PHILIPS_WS), *_impl("127.0.0.18", GE_PACS),
            _o("command", "127.0.0.28", f"C-ECHO-RQ {Verification}"),
            _o("command", "127.0.0.18", f"C-ECHO-RSP {Verification}"),
            _o("release", "127.0.0.28", "A-RELEASE-RQ"),
        ],
    },
    "many_pdus": {
        "devices": [_modality_dev("127.0.0.29", "CT_SCANNER_9", CT),
                    _dev("127.0.0.19", ["BULK_SCP"], "pacs")],
        "observations": [*_assoc("127.0.0.29", "CT_SCANNER_9", "127.0.0.19", "BULK_SCP"),
                         *_impl("127.0.0.29", PHILIPS_WS), *_modality_obs("127.0.0.29", "CT")],
    },
    "small_pdu": {
        "devices": [_modality_dev("127.0.0.21", "CT_SCANNER_1", CT),
                    _dev("127.0.0.20", ["TINY_PDU_SCP"], "pacs")],
        "observations": [*_assoc("127.0.0.21", "CT_SCANNER_1", "127.0.0.20", "TINY_PDU_SCP"),
                         _o("max_pdu_length", "127.0.0.20", "1024"),
                         *_modality_obs("127.0.0.21", "CT")],
    },
}


def write_truth() -> None:
    import json

    for name, truth in TRUTH.items():
        doc = {**truth, "canaries": CANARIES + ["CANARY^DOCTOR"]}
        (HERE / f"{name}.truth.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    if "--truth-only" in sys.argv:
        write_truth()
        sys.exit(0)
    status = main(sys.argv[1:])
    write_truth()
    sys.exit(status)
