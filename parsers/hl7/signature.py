"""Once-per-signature interpretation, once-per-shape hl7apy as the authoritative parser.

The signature of a message is its cut (``CutMessage.signature``: allow-listed fields
only, no time or control id), so a gateway's thousands of same-shape ORUs share one.
Each new signature is interpreted (facts) once; the result is cached.

hl7apy costs milliseconds per segment, and a signature holds device identities (MSH-4
facility, OBX-18/OBR-3/PRT ids, SFT versions): on a hospital mirror port every monitor,
pump and bed is its own signature, so hl7apy per signature meant hl7apy per device. It
therefore runs once per *shape* (``shape``): what hl7apy's parse depends on, not the
values it parses. A shape is the header and encoding characters, the MSH-18 codec, the
sending and receiving application (namespace of MSH-3/MSH-5, FHS/BHS-3/5), message type,
version, charset, profile and MSA-1 by value, then per kept segment (in order) each kept
field's position and structure (``_field_shape``): its repetition, component and
subcomponent delimiters with every run of other characters reduced to a placeholder
that tells whitespace-only runs (hl7apy skips those parts) from the rest, and whether
it holds undecodable bytes, non-ASCII or control characters; a field with an escape
sequence or a ``#`` is kept byte for byte. hl7apy's TOLERANT parse depends on nothing else: field
positions and datatypes come from the version's tables, a value that does not fit its
datatype falls back to ST, lengths are checked only in STRICT, and both views decode
and unescape with the same ``CutMessage.text``. The property tests hold
``by_shape=True`` to what hl7apy per signature gives, on random identity values.

On a new shape, hl7apy parses *the cut* segment by segment, version-aware
(``parse_segment`` with MSH-12's version; segments newer than the message's version,
e.g. SFT in a v2.3 message or PRT before v2.7, are parsed with v2.8.2's definitions),
its values are what that message's facts carry, the MSH is also validated strictly,
and its values are compared with the cutter's (``disagreements``). The shape's verdict
is kept (bounded LRU, ``MAX_SHAPES``):

* hl7apy parsed it with the cutter's values (up to trailing empty components, which no
  fact reads): *trusted*. Later messages of the shape are interpreted from the cutter's
  values, with hl7apy's confidence and MSH verdict. No hl7apy run.
* hl7apy raised: *rejected*. Later messages of the shape get the cutter's values with
  reduced confidence (``CUTTER_ONLY_FACTOR``), as the first did. No hl7apy run.
* hl7apy parsed it but its values differed: not trusted. Later messages of the shape
  are parsed by hl7apy per signature, as before shapes existed.

``SignatureCache(by_shape=False)`` runs hl7apy on every new signature (the reference
path for tests). The caches are bounded LRU objects owned by whoever builds parsers
(one per registry spec, shared by that spec's parsers), not module state; a parser
built alone gets its own. hl7apy exceptions never escape: they are counted by class
name, never logged with content.

Fast path: ``cutter.frame_key`` turns a whole frame into a key with bytes operations
only (segment ids, ``split`` on the field separator, no decoding, no objects), and a
second bounded LRU maps that key to the signatures of the frame's messages.
``lookup_frame`` answers a known key without cutting the frame at all; on a miss the
caller cuts it, looks each cut up as before and ``remember_frame``s the result. A key
holds the same allow-listed bytes as the signatures it maps to, nothing more.
``lookup_frame`` answers only when every signature is still cached, and counts hits
and refreshes LRU order exactly as ``lookup`` would, so the fast path changes no
result, counter or eviction.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, replace
from functools import lru_cache

from parsers.hl7.cutter import CutMessage, CutSegment, Encoding
from parsers.hl7.facts import Interpretation, Repetitions, View, interpret
from parsers.hl7.mdc import Knowledge, load_knowledge

log = logging.getLogger(__name__)

MAX_SIGNATURES = 1024  # cached interpretations; least recently used evicted first
MAX_FRAME_KEYS = 1024  # cached frame keys (``cutter.frame_key``) -> signatures; LRU
MAX_SHAPES = 1024  # cached hl7apy verdicts per message shape (``shape``); LRU
HL7APY_FALLBACK_VERSION = "2.8.2"
CUTTER_ONLY_FACTOR = 0.8  # confidence factor when hl7apy could not confirm the values


def cutter_view(cut: CutMessage) -> View:
    """The cut's fields as decoded by the fast cutter."""
    return tuple(
        (seg.name, {pos: cut.components(raw) for pos, raw in seg.fields}) for seg in cut.segments
    )


def _version(cut: CutMessage) -> str:
    from hl7apy import SUPPORTED_LIBRARIES

    msh = cut.first("MSH")
    raw = msh.get(12) if msh else b""
    version = raw.split(bytes([cut.encoding.component]), 1)[0].decode("latin-1").strip()
    while version and version not in SUPPORTED_LIBRARIES:
        version = version.rpartition(".")[0]  # 2.5.1.1 -> 2.5.1 -> 2.5
    return version or HL7APY_FALLBACK_VERSION


def _segment_text(cut: CutMessage, seg: CutSegment) -> str:
    enc = cut.encoding
    fs = chr(enc.field)
    offset = 1 if seg.name in ("MSH", "FHS", "BHS") else 0
    top = max((p for p, _ in seg.fields), default=2)
    slots = [""] * (top - offset + 1)
    slots[0] = seg.name
    if offset:
        slots[1] = enc.msh2().decode("latin-1")
    for pos, raw in seg.fields:
        slots[pos - offset] = raw.decode(cut.codec or "latin-1", errors="replace")
    return fs.join(slots)


def _hl7apy_component(cut: CutMessage, er7: str) -> str:
    raw = er7.encode(cut.codec or "latin-1", errors="replace")
    return cut.text(raw)


def _component_index(name: str) -> int:
    tail = name.rsplit("_", 1)[-1]
    return int(tail) - 1 if tail.isdigit() else 0


def hl7apy_view(cut: CutMessage, strict_msh: bool = True) -> tuple[View, bool]:
    """The cut as parsed by hl7apy: (view, MSH passed strict validation).

    Raises whatever hl7apy raises; the caller contains it.
    """

    version = _version(cut)
    enc = cut.encoding
    chars = {
        "FIELD": chr(enc.field),
        "COMPONENT": chr(enc.component),
        "REPETITION": chr(enc.repetition),
        "ESCAPE": chr(enc.escape) if enc.escape is not None else "\\",
        "SUBCOMPONENT": chr(enc.subcomponent),
        "GROUP": "\r",
        "SEGMENT": "\r",
    }
    view = []
    valid = False
    for seg in cut.segments:
        text = _segment_text(cut, seg)
        try:
            fields = _hl7apy_fields(cut, seg, text, version, chars)
        except Exception:  # noqa: BLE001 - not in this version's tables: use the newest
            fields = _hl7apy_fields(cut, seg, text, HL7APY_FALLBACK_VERSION, chars)
        view.append((seg.name, fields))
        if seg.name == "MSH" and strict_msh:
            valid = _strict_msh(text, version, chars)
    return tuple(view), valid


def _hl7apy_fields(
    cut: CutMessage, seg: CutSegment, text: str, version: str, chars: dict[str, str]
) -> dict[int, Repetitions]:
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_segment

    enc = cut.encoding
    parsed = parse_segment(
        text, version=version, encoding_chars=chars, validation_level=VALIDATION_LEVEL.TOLERANT
    )
    fields: dict[int, Repetitions] = {}
    for pos, _ in seg.fields:
        reps: Repetitions = []
        # hl7apy numbers FHS/BHS fields as if FHS-1 were not the separator (MSH is right)
        apy_pos = pos - 1 if seg.name in ("FHS", "BHS") else pos
        for rep in getattr(parsed, f"{seg.name.lower()}_{apy_pos}"):
            comps: list[str] = []
            children = list(rep.children)
            if not children or rep.datatype in _PRIMITIVE:
                comps = [_hl7apy_component(cut, c) for c in rep.to_er7().split(chr(enc.component))]
            else:
                for child in children:
                    i = _component_index(child.name)
                    comps += [""] * (i + 1 - len(comps))
                    comps[i] = _hl7apy_component(cut, child.to_er7())
            reps.append(comps)
        fields[pos] = reps
    return fields


_PRIMITIVE = frozenset({"ST", "ID", "IS", "TX", "NM", "SI", "DTM", "TS", "FT"})


def _strict_msh(text: str, version: str, chars: dict[str, str]) -> bool:
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_segment

    try:
        seg = parse_segment(
            text,
            version=version,
            encoding_chars=chars,
            validation_level=VALIDATION_LEVEL.STRICT,
        )
        return bool(seg.validate())
    except Exception:  # noqa: BLE001 - invalid is an answer, not an error
        return False


def _normalise(view: View) -> list[tuple[str, dict[int, list[list[str]]]]]:
    out = []
    for name, fields in view:
        norm = {}
        for pos, reps in fields.items():
            trimmed = []
            for comps in reps:
                c = list(comps)
                while c and not c[-1]:
                    c.pop()
                trimmed.append(c)
            while trimmed and not trimmed[-1]:
                trimmed.pop()
            norm[pos] = trimmed
        out.append((name, norm))
    return out


# Fields whose value (not only structure) is part of a shape: what kind of message it is
# and between which applications, never an identity. 1: the first component (HD namespace
# ID; the universal ID may be a device's EUI-64); None: the whole field.
_SHAPE_VALUES: dict[str, dict[int, int | None]] = {
    "MSH": {3: 1, 5: 1, 9: None, 12: None, 18: None, 21: None},
    "FHS": {3: 1, 5: 1},
    "BHS": {3: 1, 5: 1},
    "MSA": {1: None},
}
Shape = tuple[object, ...]


@lru_cache(maxsize=64)
def _runs(enc: Encoding) -> re.Pattern[str]:
    """Runs of characters other than enc's repetition, component and subcomponent chars."""
    delimiters = chr(enc.repetition) + chr(enc.component) + chr(enc.subcomponent)
    return re.compile("[^" + re.escape(delimiters) + "]+")


def _placeholder(run: re.Match[str]) -> str:
    return "_" if run.group().isspace() else "x"  # hl7apy skips whitespace-only parts


def _field_shape(raw: bytes, enc: Encoding, codec: str | None) -> object:
    """The structure of one field as hl7apy sees it.

    ``A1^PHILIPS^0009FBFFFE0A1B2C^EUI-64`` -> ``x^x^x^x``, `` ^B`` -> ``_^x``, with marks
    for undecodable bytes, non-ASCII and control characters. A field with an escape
    sequence or a ``#`` is kept as it is: hl7apy re-escapes unknown escape sequences
    and drops ``#`` (its truncation character) depending on where they stand.
    """
    if 0x23 in raw or (enc.escape is not None and enc.escape in raw):
        return raw
    text = raw.decode(codec or "latin-1", errors="replace")  # as ``_segment_text`` does
    out = _runs(enc).sub(_placeholder, text)
    if not (text.isascii() and text.isprintable()):  # what the codec made of the bytes
        out += "?" if "\ufffd" in text else ""  # undecodable bytes
        out += "!" if not text.isascii() else ""
        out += "*" if any(ch < " " for ch in text) else ""  # control characters
    return out


def shape(cut: CutMessage) -> Shape:
    """The structural shape of a cut: its hl7apy cache key (see module docstring)."""
    enc = cut.encoding
    comp = bytes([enc.component])
    segments = []
    for seg in cut.segments:
        values = _SHAPE_VALUES.get(seg.name, {})
        fields = []
        for pos, raw in seg.fields:
            if pos in values:
                n = values[pos]
                kept = raw if n is None else comp.join(raw.split(comp)[:n])
                fields.append((pos, True, kept, _field_shape(raw, enc, cut.codec)))
            else:
                fields.append((pos, False, b"", _field_shape(raw, enc, cut.codec)))
        segments.append((seg.name, tuple(fields)))
    return (cut.header, enc, cut.codec, tuple(segments))


def _trailing_trimmed(view: View) -> list[tuple[str, dict[int, list[list[str]]]]]:
    """The view without trailing empty components (no fact reads them, see facts._c/_joined)."""
    out = []
    for name, fields in view:
        norm = {}
        for pos, reps in fields.items():
            trimmed = []
            for comps in reps:
                c = list(comps)
                while c and not c[-1]:
                    c.pop()
                trimmed.append(c)
            norm[pos] = trimmed
        out.append((name, norm))
    return out


@dataclass(frozen=True, slots=True)
class Verdict:
    """hl7apy's verdict on one shape (see module docstring)."""

    parsed: bool  # hl7apy parsed the shape's first message
    msh_valid: bool  # its MSH passed hl7apy's strict validation
    trusted: bool  # and hl7apy's values were the cutter's: the cutter is trusted for the shape


@dataclass(frozen=True, slots=True)
class Entry:
    interpretation: Interpretation
    hl7apy_ok: bool  # hl7apy parsed the cut
    msh_valid: bool  # MSH passed hl7apy's strict validation
    agrees: bool  # cutter and hl7apy gave the same values


class SignatureCache:
    """Bounded LRU: signature -> interpretation (see module docstring)."""

    def __init__(
        self,
        knowledge: Knowledge | None = None,
        maxsize: int = MAX_SIGNATURES,
        use_hl7apy: bool = True,
        fast: bool = True,
        max_frames: int = MAX_FRAME_KEYS,
        by_shape: bool = True,
        max_shapes: int = MAX_SHAPES,
    ) -> None:
        self.knowledge = knowledge or load_knowledge()
        self.device_codes = self.knowledge.device_codes  # Knowledge is immutable
        self.maxsize = maxsize
        self.use_hl7apy = use_hl7apy
        self.fast = fast  # False: every frame is cut and every cut looked up (tests)
        self.max_frames = max_frames
        self.by_shape = by_shape  # False: hl7apy on every new signature (tests)
        self.max_shapes = max_shapes
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()
        self._frames: OrderedDict[bytes, tuple[bytes, ...]] = OrderedDict()
        self._shapes: OrderedDict[Shape, Verdict] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.disagreements = 0
        self.hl7apy_runs = 0  # hl7apy_view calls: once per new shape (or per signature)
        self.hl7apy_errors: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, cut: CutMessage) -> Entry:
        key = cut.signature
        entry = self._entries.get(key)
        if entry is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return entry
        self.misses += 1
        entry = self._interpret(cut)
        self._entries[key] = entry
        if len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
            self.evictions += 1
        return entry

    def lookup_frame(self, key: bytes) -> list[Entry] | None:
        """Entries of a frame by its ``frame_key``, as ``lookup`` of each cut would give.

        None when the key is unknown or one of its signatures has been evicted: then
        the caller cuts the frame and looks its cuts up (``lookup``).
        """
        sigs = self._frames.get(key)
        if sigs is None:
            return None
        entries = self._entries
        found = []
        for sig in sigs:
            entry = entries.get(sig)
            if entry is None:
                return None
            found.append(entry)
        self._frames.move_to_end(key)
        for sig in sigs:
            entries.move_to_end(sig)
        self.hits += len(sigs)
        return found

    def remember_frame(self, key: bytes, cuts: list[CutMessage]) -> None:
        """Map a frame key to the signatures of the frame's (already looked up) cuts."""
        if any(cut.truncated for cut in cuts):
            return  # frame_key never yields a key for these; keep the rule in one place
        self._frames[key] = tuple(cut.signature for cut in cuts)
        self._frames.move_to_end(key)
        if len(self._frames) > self.max_frames:
            self._frames.popitem(last=False)

    @property
    def shapes(self) -> int:
        """Shapes whose hl7apy verdict is cached."""
        return len(self._shapes)

    def _interpret(self, cut: CutMessage) -> Entry:
        fast = cutter_view(cut)
        if not self.use_hl7apy:
            return Entry(interpret(fast, self.knowledge), False, False, True)
        key = shape(cut) if self.by_shape else None
        verdict = self._verdict(key)
        if verdict is not None:
            if verdict.trusted:
                return Entry(interpret(fast, self.knowledge), True, verdict.msh_valid, True)
            if not verdict.parsed:
                return self._cutter_only(fast)
            # hl7apy disagreed with the cutter on this shape: hl7apy per signature
        self.hl7apy_runs += 1
        try:
            ref, valid = hl7apy_view(cut)
        except Exception as exc:  # noqa: BLE001 - hl7apy must never break the parser
            self.hl7apy_errors[type(exc).__name__] += 1
            log.debug("hl7apy could not parse a cut message: %s", type(exc).__name__)
            if key is not None and verdict is None:
                self._remember_shape(key, Verdict(False, False, False))
            return self._cutter_only(fast)
        agrees = _normalise(ref) == _normalise(fast)
        if not agrees:
            self.disagreements += 1
        if key is not None and verdict is None:
            trusted = _trailing_trimmed(ref) == _trailing_trimmed(fast)
            self._remember_shape(key, Verdict(True, valid, trusted))
        return Entry(interpret(ref, self.knowledge), True, valid, agrees)

    def _cutter_only(self, fast: View) -> Entry:
        """The cutter's values, confidence reduced: hl7apy could not confirm them."""
        result = interpret(fast, self.knowledge)
        facts = tuple(
            replace(f, confidence=round(f.confidence * CUTTER_ONLY_FACTOR, 3)) for f in result.facts
        )
        return Entry(replace(result, facts=facts), False, False, True)

    def _verdict(self, key: Shape | None) -> Verdict | None:
        verdict = self._shapes.get(key) if key is not None else None
        if key is not None and verdict is not None:
            self._shapes.move_to_end(key)
        return verdict

    def _remember_shape(self, key: Shape, verdict: Verdict) -> None:
        self._shapes[key] = verdict
        if len(self._shapes) > self.max_shapes:
            self._shapes.popitem(last=False)


__all__ = [
    "MAX_FRAME_KEYS",
    "MAX_SHAPES",
    "Entry",
    "SignatureCache",
    "Verdict",
    "cutter_view",
    "hl7apy_view",
    "shape",
]
