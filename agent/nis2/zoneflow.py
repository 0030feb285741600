"""Traffic between zones, and its picture: an SVG drawn on the server, no script, no fonts.

``zone_edges`` folds conversations (largest VLAN copy) into (client zone, server zone)
edges with connections, cleartext clinical connections and violations. Without a policy
the "zones" are VLANs (``VLAN 10``, ``untagged``). ``zone_svg`` lays the zones on a circle
and draws one arrow per edge: red where a violation crossed, orange where clinical data
went in cleartext, grey otherwise; the number is connections. Every text is escaped.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from agent.nis2.encryption import classify, unique_copies
from agent.nis2.observed import Observed

WIDTH, HEIGHT = 760, 520
BOX_W, BOX_H = 150, 46
MAX_ZONES = 24  # beyond this the picture is unreadable; the table still lists every edge
COLORS = {"violation": "#c62828", "cleartext": "#ef6c00", "ok": "#757575"}


def _zone(obs: Observed, flow: dict[str, Any], side: str) -> str:
    zone = flow.get(f"{side}_zone")
    if zone:
        return str(zone)
    dev = obs.device_of(flow[side], flow.get("vlan"))
    vlans = (dev or {}).get("vlans") or ([flow["vlan"]] if flow.get("vlan") is not None else [])
    return f"VLAN {vlans[0]}" if vlans else "untagged"


def zone_edges(obs: Observed) -> list[dict[str, Any]]:
    broken = {(v["client"]["ip"], v["server"]["ip"], v["service"]) for v in obs.violations}
    edges: dict[tuple[str, str], dict[str, Any]] = {}
    for f in unique_copies(obs.flows):
        key = (_zone(obs, f, "client"), _zone(obs, f, "server"))
        edge = edges.setdefault(key, {"from": key[0], "to": key[1], "connections": 0,
                                      "cleartext_clinical": 0, "violations": 0,
                                      "services": set()})
        connections = f.get("connections") or 0
        edge["connections"] += connections
        transport = f.get("transport")
        service = f"{transport}/{f.get('server_port')}" if transport in ("tcp", "udp") \
            else str(transport)
        edge["services"].add(service)
        clinical = classify(f, obs)
        if clinical is not None and not clinical.encrypted:
            edge["cleartext_clinical"] += connections
        if (f["client"], f["server"], service) in broken:
            edge["violations"] += connections
    out = []
    for edge in edges.values():
        services = sorted(edge.pop("services"))
        out.append({**edge, "services": services[:8], "more_services": max(0, len(services) - 8)})
    return sorted(out, key=lambda e: (e["from"], e["to"]))


def zone_svg(edges: list[dict[str, Any]]) -> str:
    zones = sorted({e["from"] for e in edges} | {e["to"] for e in edges})[:MAX_ZONES]
    if not zones:
        return ""
    cx, cy = WIDTH / 2, HEIGHT / 2
    radius = min(cx - BOX_W / 2 - 10, cy - BOX_H / 2 - 10) if len(zones) > 1 else 0
    pos = {}
    for i, zone in enumerate(zones):
        angle = 2 * math.pi * i / len(zones) - math.pi / 2
        pos[zone] = (cx + radius * math.cos(angle), cy + radius * math.sin(angle))
    inside = {e["from"]: e for e in edges if e["from"] == e["to"]}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="traffic between zones">',
        "<defs>" + "".join(
            f'<marker id="arrow-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
            f'fill="{color}"/></marker>' for name, color in COLORS.items()) + "</defs>",
    ]
    for e in edges:
        if e["from"] == e["to"] or e["from"] not in pos or e["to"] not in pos:
            continue
        (x1, y1), (x2, y2) = pos[e["from"]], pos[e["to"]]
        # offset both ways of a pair sideways so A->B and B->A do not overlap
        dx, dy = x2 - x1, y2 - y1
        length = math.hypot(dx, dy) or 1.0
        ox, oy = -dy / length * 6, dx / length * 6
        sx, sy = _border(x1, y1, dx, dy)
        ex, ey = _border(x2, y2, -dx, -dy)
        state = "violation" if e["violations"] else "cleartext" if e["cleartext_clinical"] \
            else "ok"
        width = 1.5 + min(4.0, math.log10(1 + e["connections"]) * 1.5)
        parts.append(
            f'<line x1="{sx + ox:.1f}" y1="{sy + oy:.1f}" x2="{ex + ox:.1f}" y2="{ey + oy:.1f}" '
            f'stroke="{COLORS[state]}" stroke-width="{width:.1f}" '
            f'marker-end="url(#arrow-{state})"><title>{escape(_edge_title(e))}</title></line>')
        mx, my = (sx + ex) / 2 + ox * 2, (sy + ey) / 2 + oy * 2
        parts.append(f'<text x="{mx:.1f}" y="{my:.1f}" font-size="12" text-anchor="middle" '
                     f'fill="{COLORS[state]}">{e["connections"]}</text>')
    for zone in zones:
        x, y = pos[zone]
        own = inside.get(zone)
        note = f"{own['connections']} inside" if own else ""
        stroke = COLORS["violation"] if own and own["violations"] else "#37474f"
        parts.append(
            f'<g><rect x="{x - BOX_W / 2:.1f}" y="{y - BOX_H / 2:.1f}" width="{BOX_W}" '
            f'height="{BOX_H}" rx="6" fill="#eceff1" stroke="{stroke}" stroke-width="1.5"/>'
            f'<text x="{x:.1f}" y="{y - 3:.1f}" font-size="14" font-weight="bold" '
            f'text-anchor="middle">{escape(_short(zone))}</text>'
            f'<text x="{x:.1f}" y="{y + 14:.1f}" font-size="11" text-anchor="middle" '
            f'fill="#455a64">{escape(note)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _border(x: float, y: float, dx: float, dy: float) -> tuple[float, float]:
    """Where a ray from a box's centre towards (dx, dy) leaves the box."""
    if dx == 0 and dy == 0:
        return x, y
    scale = min(BOX_W / 2 / abs(dx) if dx else math.inf, BOX_H / 2 / abs(dy) if dy else math.inf)
    return x + dx * scale, y + dy * scale


def _short(text: str, limit: int = 20) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _edge_title(e: dict[str, Any]) -> str:
    return (f"{e['from']} -> {e['to']}: {e['connections']} connections, "
            f"{e['cleartext_clinical']} clinical in cleartext, {e['violations']} in violation; "
            + ", ".join(e["services"]))
