"""Vendor medical-device protocols, detected by payload signatures kept as data.

``parsers/data/vendor_signatures.csv`` lists every message shape we know of, with its
public source; ``signatures`` loads it. Parsed today:

- ``philips_intellivue``: Philips IntelliVue LAN data export (connect indications on
  UDP 24005, association and MDS create on UDP 24105);
- ``ge_carescape``: GE CARESCAPE / Unity time synchronization broadcasts (UDP 2000).

Listed but not parsed, because no public source gives their byte layout: GE CARESCAPE
discovery heartbeats (UDP 7000), GE Unity RWHAT broadcasts, Hill-Rom NaviCare (12000).
Ports alone never make a claim.

Public API: ``INTELLIVUE_SPEC``, ``CARESCAPE_SPEC`` (registry entries), ``specs()``.
"""

from __future__ import annotations

from parsers.registry import ParserSpec
from parsers.vendor import ge_carescape, philips_intellivue

INTELLIVUE_SPEC = philips_intellivue.spec()
CARESCAPE_SPEC = ge_carescape.spec()


def specs() -> list[ParserSpec]:
    return [INTELLIVUE_SPEC, CARESCAPE_SPEC]


__all__ = ["CARESCAPE_SPEC", "INTELLIVUE_SPEC", "specs"]
