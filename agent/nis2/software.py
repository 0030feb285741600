"""Outdated software from evidence: unsupported operating systems and outdated TLS stacks.

The knowledge is ``parsers/data/outdated_software.csv`` (read through
``parsers.knowledge``: every row has a source): which evidence kinds a row looks at
(``kinds``, a regex over the evidence kind: ``http.os``, ``tcp.os_label``, ``http.server``,
``tls.client_versions`` ...), a regex over the value, the product it names, the end of its
support and the finding. An OS name comes from the parsers' own tables (HTTP banners and
User-Agents, DHCP, SNMP, LLDP, passive TCP SYN fingerprints); this module only decides
whether that product is past its support end at the time the device was last seen.

A SYN fingerprint is a guess (``tcp.*`` evidence weighs little in classification); the
finding names the evidence kind so a reader can tell a banner from a fingerprint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from parsers.knowledge import data_rows

KNOWLEDGE = "outdated_software.csv"
OS_KINDS = re.compile(r"(^|\.)os$|^tcp\.os_label$|^mdns\.hinfo$")


@dataclass(frozen=True, slots=True)
class Rule:
    kinds: re.Pattern[str]
    pattern: re.Pattern[str]
    product: str
    end_of_support: date
    finding: str
    source: str


@cache
def rules() -> tuple[Rule, ...]:
    return tuple(
        Rule(
            kinds=re.compile(r["kinds"]),
            pattern=re.compile(r["pattern"], re.IGNORECASE),
            product=r["product"],
            end_of_support=date.fromisoformat(r["end_of_support"]),
            finding=r["finding"],
            source=r["source"],
        )
        for r in data_rows(KNOWLEDGE)
    )


def findings(evidence: list[dict[str, Any]], seen: date | None) -> list[dict[str, Any]]:
    """Outdated software a device's evidence shows, one finding per product: the first
    matching row for each evidence value, kept when its support had ended by ``seen``
    (the device's last sighting; today when unknown)."""
    when = seen or date.today()
    out: dict[str, dict[str, Any]] = {}
    for ev in evidence:
        kind, value = str(ev.get("kind", "")), str(ev.get("value", ""))
        for rule in rules():
            if not (rule.kinds.search(kind) and rule.pattern.search(value)):
                continue
            if rule.end_of_support <= when and rule.product not in out:
                out[rule.product] = {
                    "product": rule.product,
                    "finding": rule.finding,
                    "end_of_support": rule.end_of_support.isoformat(),
                    "evidence": f"{kind} = {value}",
                    "source": rule.source,
                }
            break
    return sorted(out.values(), key=lambda f: (f["end_of_support"], f["product"]))


def operating_systems(evidence: list[dict[str, Any]]) -> list[str]:
    """Distinct OS names the evidence gives, most often seen first."""
    counts: dict[str, int] = {}
    for ev in evidence:
        if OS_KINDS.search(str(ev.get("kind", ""))):
            value = str(ev.get("value", ""))
            counts[value] = counts.get(value, 0) + int(ev.get("count") or 1)
    return sorted(counts, key=lambda v: (-counts[v], v))
