"""Evidence -> device classification: weighted, explainable votes per field.

Parsers emit *claims* (``parsers.vocabulary``): observations whose kind ends in
a field name, each with the parser's confidence. Here every claim is weighted
by how far its protocol can be trusted to describe the device
(``agent/data/evidence_weights.csv``: a DICOM Manufacturer is the device's own
word; a TCP SYN signature is a guess), and the claims for one field combine as
independent evidence (noisy-OR: ``1 - prod(1 - w*c)`` over distinct evidence
kinds). The value with the highest score wins; the evidence rows that voted for
it are kept, so every field can say why it is what it is.

Rules that are not plain votes:
- An OUI only suggests a vendor: it votes with a small weight, a radio-module
  maker's OUI not at all, and a router's MAC never lends its vendor to the IPs
  behind it (those are not MAC-keyed devices, so they have no OUI here).
- A toolkit implementation UID never sets the vendor (the DICOM parser emits
  ``dicom.toolkit``, which is not a claim).
- A generic type (``imaging-modality``) gives way to a specific modality with
  any real support (``ct``), so a device's type sharpens as evidence arrives.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from parsers.knowledge import data_rows
from parsers.vocabulary import CLAIM_FIELDS, DEVICE_TYPES, UNKNOWN, canonical_device_type

OUI_VENDOR_CONFIDENCE = 0.3  # IEEE registry org name: often the NIC maker, not the device's
MEDICAL_OUI_CONFIDENCE = 0.5  # curated medical-vendor OUI: the maker builds such devices
SPECIFIC_TYPE_MIN_SCORE = 0.25  # support a specific modality needs to refine a generic type
GENERIC_TYPES = {
    "imaging-modality": frozenset(
        {"ct", "mr", "ultrasound", "x-ray", "mammography", "nuclear-medicine", "angiography"}
    ),
}
DEFAULT_WEIGHT = 0.6  # protocols the weights table does not name


@dataclass(frozen=True, slots=True)
class Claim:
    field: str  # "device_type", "vendor", ...
    value: str
    confidence: float  # the parser's, before weighting
    kind: str  # the evidence kind that made it: "dicom.vendor"
    source: str
    count: int = 1


@dataclass
class FieldResult:
    value: str
    score: float
    evidence: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Classification:
    fields: dict[str, FieldResult] = field(default_factory=dict)
    hostnames: list[str] = field(default_factory=list)

    def value(self, name: str) -> str | None:
        result = self.fields.get(name)
        return result.value if result is not None else None

    def explain(self) -> dict[str, dict[str, Any]]:
        """Per field: the value, its score and the evidence that voted for it."""
        return {
            name: {"value": r.value, "confidence": round(r.score, 3), "evidence": r.evidence}
            for name, r in self.fields.items()
        }


@lru_cache(maxsize=1)
def evidence_weights() -> tuple[tuple[str, float], ...]:
    """(kind prefix, weight) rows, longest prefix first."""
    text = resources.files("agent").joinpath("data/evidence_weights.csv").read_text("utf-8")
    rows = [(r["kind_prefix"], float(r["weight"])) for r in csv.DictReader(text.splitlines())]
    return tuple(sorted(rows, key=lambda r: -len(r[0])))


def weight_of(kind: str) -> float:
    for prefix, weight in evidence_weights():
        if kind.startswith(prefix):
            return weight
    return DEFAULT_WEIGHT


def claim_of(kind: str, value: str, confidence: float, source: str, count: int) -> Claim | None:
    """The claim an evidence row makes, None when it is plain evidence."""
    field_name = kind.rsplit(".", 1)[-1]
    if field_name not in CLAIM_FIELDS or not value.strip():
        return None
    if field_name == "device_type":
        canonical = canonical_device_type(value)
        if canonical is None:
            return None
        value = canonical
    elif field_name == "vendor":
        value = canonical_vendor(value)
    elif field_name == "category":
        return None  # category follows from the type; parsers' category words are advisory
    return Claim(field_name, value.strip(), confidence, kind, source, count)


_CORPORATE_SUFFIX = re.compile(
    r"[\s,]+(inc\.?|incorporated|corp\.?|corporation|co\.?|ltd\.?|limited|gmbh|ag|"
    r"s\.?a\.?|llc|plc|b\.?v\.?|a/s|kgaa|& co\.?)$",
    re.IGNORECASE,
)


@lru_cache(maxsize=1)
def _vendor_names() -> tuple[tuple[str, str], ...]:
    rows = [(r["prefix"].casefold(), r["vendor"]) for r in data_rows("vendor_names.csv")]
    return tuple(sorted(rows, key=lambda r: -len(r[0])))


@lru_cache(maxsize=4096)
def canonical_vendor(value: str) -> str:
    """One spelling per company: 'GE MEDICAL SYSTEMS' and 'GE Healthcare' are one vendor,
    'Cisco Systems, Inc.' and 'cisco' too. Unknown names lose only corporate suffixes."""
    from parsers.dicom.fingerprints import vendor_of_manufacturer

    name = " ".join(value.split())
    known = vendor_of_manufacturer(name)
    if known:
        return known
    folded = name.casefold()
    for prefix, vendor in _vendor_names():
        if folded.startswith(prefix) and (
            len(folded) == len(prefix) or not folded[len(prefix)].isalnum()
        ):
            return vendor
    previous = None
    while previous != name:
        previous, name = name, _CORPORATE_SUFFIX.sub("", name).rstrip(" ,")
    return name or value.strip()


MODEL_TYPE_CONFIDENCE = 0.6  # a known product line names what the device is


def classify(claims: list[Claim]) -> Classification:
    result = _vote(claims)
    model = result.value("model")
    if model is not None:
        hint = model_device_type(model)
        if hint is not None and hint != result.value("device_type"):
            derived = Claim(
                "device_type",
                hint,
                MODEL_TYPE_CONFIDENCE * result.fields["model"].score,
                "model.device_type",
                f"product line of model {model!r} (parsers/data/model_types.csv)",
            )
            result = _vote([*claims, derived])
    return result


@lru_cache(maxsize=1)
def _model_types() -> tuple[tuple[re.Pattern[str], str], ...]:
    return tuple(
        (re.compile(r["pattern"], re.IGNORECASE), r["device_type"])
        for r in data_rows("model_types.csv")
    )


@lru_cache(maxsize=4096)
def model_device_type(model: str) -> str | None:
    """The device type a known product line implies ('IntelliVue MX800' -> patient-monitor)."""
    for pattern, device_type in _model_types():
        if pattern.search(model.strip()):
            return device_type
    return None


def _vote(claims: list[Claim]) -> Classification:
    by_field: dict[str, dict[str, list[Claim]]] = {}
    for claim in claims:
        by_field.setdefault(claim.field, {}).setdefault(_fold(claim.value), []).append(claim)
    result = Classification()
    for field_name, candidates in by_field.items():
        scored = {key: _score(group) for key, group in candidates.items()}
        if field_name == "hostname":
            ranked = sorted(candidates, key=lambda k: (-scored[k], -_count(candidates[k])))
            result.hostnames = [_display(candidates[k]) for k in ranked]
            best_key = ranked[0]
        else:
            best_key = max(scored, key=lambda k: (scored[k], _count(candidates[k])))
        if field_name == "device_type":
            best_key = _refine_type(best_key, scored)
        group = candidates[best_key]
        result.fields[field_name] = FieldResult(
            value=_display(group),
            score=scored[best_key],
            evidence=[_row(c) for c in sorted(group, key=lambda c: -c.confidence)],
        )
    return result


def category_of(device_type: str | None) -> str | None:
    if device_type is None or device_type == UNKNOWN:
        return None
    return DEVICE_TYPES.get(device_type)


def _score(group: list[Claim]) -> float:
    """Noisy-OR over distinct evidence kinds: two protocols agreeing beat either alone."""
    best_per_kind: dict[str, float] = {}
    for claim in group:
        vote = min(1.0, claim.confidence * weight_of(claim.kind))
        if vote > best_per_kind.get(claim.kind, 0.0):
            best_per_kind[claim.kind] = vote
    miss = 1.0
    for vote in best_per_kind.values():
        miss *= 1.0 - vote
    return 1.0 - miss


def _refine_type(best: str, scored: dict[str, float]) -> str:
    specific = GENERIC_TYPES.get(best)
    if not specific:
        return best
    options = [(scored[t], t) for t in specific if scored.get(t, 0.0) >= SPECIFIC_TYPE_MIN_SCORE]
    return max(options)[1] if options else best


def _fold(value: str) -> str:
    """Values that differ only in case or spacing are one candidate."""
    return " ".join(value.split()).casefold()


def _display(group: list[Claim]) -> str:
    """The spelling the most confident claim used."""
    return max(group, key=lambda c: (c.confidence, c.count)).value


def _count(group: list[Claim]) -> int:
    return sum(c.count for c in group)


def _row(claim: Claim) -> dict[str, Any]:
    return {
        "kind": claim.kind,
        "value": claim.value,
        "source": claim.source,
        "confidence": round(claim.confidence, 3),
        "weight": weight_of(claim.kind),
    }
