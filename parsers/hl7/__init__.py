"""HL7 v2 (MLLP and unframed) parser: framing, allow-listed cut, hl7apy once per message shape.

Public API: ``Hl7Parser`` (a ``StreamParser``), ``probe``, ``spec`` (the registry entry),
``SignatureCache``, ``cut_frame`` / ``CutMessage``, ``load_knowledge``.
"""

from parsers.hl7.cutter import CutMessage, cut_frame
from parsers.hl7.mdc import Knowledge, load_knowledge
from parsers.hl7.parser import Hl7Parser, probe, spec
from parsers.hl7.signature import SignatureCache

__all__ = [
    "CutMessage",
    "Hl7Parser",
    "Knowledge",
    "SignatureCache",
    "cut_frame",
    "load_knowledge",
    "probe",
    "spec",
]
