"""DIMSE command sets (PS3.7 section 9.3 and 10.3, annex E).

A command set is always implicit VR little endian group 0000. Read: Command Field
(0000,0100), Affected/Requested SOP Class UID (0000,0002)/(0000,0003), Command Data Set
Type (0000,0800), Status (0000,0900) and Move Originator AE Title (0000,1030). Never read:
SOP instance UIDs, attribute identifier lists, error comments, or anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

from parsers.dicom.dataset import Syntax, read_elements, text, us

COMMAND_FIELDS = {
    0x0001: "C-STORE-RQ",
    0x8001: "C-STORE-RSP",
    0x0010: "C-GET-RQ",
    0x8010: "C-GET-RSP",
    0x0020: "C-FIND-RQ",
    0x8020: "C-FIND-RSP",
    0x0021: "C-MOVE-RQ",
    0x8021: "C-MOVE-RSP",
    0x0030: "C-ECHO-RQ",
    0x8030: "C-ECHO-RSP",
    0x0100: "N-EVENT-REPORT-RQ",
    0x8100: "N-EVENT-REPORT-RSP",
    0x0110: "N-GET-RQ",
    0x8110: "N-GET-RSP",
    0x0120: "N-SET-RQ",
    0x8120: "N-SET-RSP",
    0x0130: "N-ACTION-RQ",
    0x8130: "N-ACTION-RSP",
    0x0140: "N-CREATE-RQ",
    0x8140: "N-CREATE-RSP",
    0x0150: "N-DELETE-RQ",
    0x8150: "N-DELETE-RSP",
    0x0FFF: "C-CANCEL-RQ",
}
NO_DATA_SET = 0x0101  # (0000,0800) value meaning "no data set follows" (PS3.7 E.1)
STATUS_SUCCESS = 0x0000
STATUS_PENDING = frozenset({0xFF00, 0xFF01})

AFFECTED_SOP_CLASS = 0x00000002
REQUESTED_SOP_CLASS = 0x00000003
COMMAND_FIELD = 0x00000100
DATA_SET_TYPE = 0x00000800
STATUS = 0x00000900
MOVE_ORIGINATOR_AE = 0x00001030
COMMAND_TAGS = frozenset(
    {AFFECTED_SOP_CLASS, REQUESTED_SOP_CLASS, COMMAND_FIELD, DATA_SET_TYPE, STATUS,
     MOVE_ORIGINATOR_AE}
)


@dataclass(frozen=True, slots=True)
class Command:
    field: int
    sop_class: str  # affected, else requested SOP class UID; "" when absent
    has_data_set: bool
    status: int | None
    move_originator: str  # set on C-STORE sub-operations of a C-MOVE

    @property
    def name(self) -> str:
        return COMMAND_FIELDS.get(self.field, f"0x{self.field:04X}")

    @property
    def is_request(self) -> bool:
        return not self.field & 0x8000


def decode_command(data: bytes) -> Command | None:
    """The command in a reassembled command set; None when it has no Command Field."""
    found = read_elements(data, Syntax.IMPLICIT_LE, COMMAND_TAGS)
    values = found.values

    def first(tag: int) -> bytes | None:
        got = values.get((0, tag))
        return got[0] if got else None

    raw_field = first(COMMAND_FIELD)
    field = us(raw_field) if raw_field is not None else None
    if field is None:
        return None
    sop = first(AFFECTED_SOP_CLASS) or first(REQUESTED_SOP_CLASS) or b""
    raw_type = first(DATA_SET_TYPE)
    data_set_type = us(raw_type) if raw_type is not None else NO_DATA_SET
    raw_status = first(STATUS)
    originator = first(MOVE_ORIGINATOR_AE)
    return Command(
        field=field,
        sop_class=text(sop),
        has_data_set=data_set_type != NO_DATA_SET,
        status=us(raw_status) if raw_status is not None else None,
        move_originator=text(originator) if originator else "",
    )
