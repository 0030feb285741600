"""DICOM Upper Layer (PS3.8), DIMSE (PS3.7) and allow-listed device attributes (PS3.6).

Public API: ``DicomParser`` (one per TCP flow), ``probe`` (payload-based app detection),
``SPEC`` (the registry entry). Reads associations, DIMSE commands and a handful of device
elements from the start of each data set; never reads patient data (group 0010) or any
element outside the allow-list in ``parser.DATA_SET_TAGS``.
"""

from __future__ import annotations

from parsers.base import Direction
from parsers.dicom.parser import DicomParser
from parsers.dicom.pdu import probe_associate
from parsers.registry import ParserSpec, Probe

PORT_HINTS = frozenset({104, 11112, 4242})


def probe(direction: Direction, data: bytes) -> Probe:
    """MATCH on an A-ASSOCIATE-RQ with protocol version 1 and the DICOM application context.

    The first segment may hold only the 6-byte PDU header: that is NEED_MORE, not NO.
    Either direction is accepted (a sensor that missed the SYN may have them swapped).
    """
    verdict = probe_associate(bytes(data[:512]))
    if verdict is None:
        return Probe.NEED_MORE
    return Probe.MATCH if verdict else Probe.NO


SPEC = ParserSpec(
    name="dicom", transport="tcp", probe=probe, factory=DicomParser, port_hints=PORT_HINTS
)

__all__ = ["PORT_HINTS", "SPEC", "DicomParser", "probe"]
