"""The zone picture: zones as nodes on a circle, cross-zone traffic as curved arrows.

Pure geometry, rendered to inline SVG by the template (no JS library). A flow from A to B
and one from B to A bend to opposite sides, so both stay visible. Edges with violations are
marked; their width grows with the logarithm of the connection count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from collector.web.queries import ZoneTraffic, ZoneViolations

WIDTH, HEIGHT = 860, 560
NODE_R = 38
BEND = 36  # px the curve's control point sits off the straight line


@dataclass
class Node:
    name: str
    x: float
    y: float
    devices: int
    internal_violations: int  # violations with both ends in this zone


@dataclass
class Edge:
    source: str
    target: str
    conversations: int
    connections: int
    bytes: int
    violations: int
    open: int
    worst: str | None
    path: str
    label_x: float
    label_y: float
    width: float

    @property
    def violating(self) -> bool:
        return self.violations > 0


@dataclass
class Graph:
    width: int
    height: int
    nodes: list[Node]
    edges: list[Edge]


def layout(
    traffic: Iterable[ZoneTraffic],
    violations: Iterable[ZoneViolations],
    sizes: dict[str, int],
    *,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Graph:
    pairs: dict[tuple[str, str], dict[str, object]] = {}
    inside: dict[str, int] = {}
    for t in traffic:
        if t.client_zone != t.server_zone:
            pairs[(t.client_zone, t.server_zone)] = {
                "conversations": t.conversations,
                "connections": t.connections,
                "bytes": t.bytes,
            }
    for v in violations:
        if v.client_zone == v.server_zone:
            inside[v.client_zone] = inside.get(v.client_zone, 0) + v.violations
            continue
        entry = pairs.setdefault((v.client_zone, v.server_zone), {})
        entry.update(violations=v.violations, open=v.open, worst=v.worst)
        entry.setdefault("connections", v.flows)
    names = sorted(set(sizes) | set(inside) | {z for pair in pairs for z in pair})
    nodes = _place(names, sizes, inside, width, height)
    where = {n.name: n for n in nodes}
    edges = [_edge(where[a], where[b], data) for (a, b), data in sorted(pairs.items())]
    return Graph(width, height, nodes, edges)


def _place(
    names: list[str], sizes: dict[str, int], inside: dict[str, int], width: int, height: int
) -> list[Node]:
    cx, cy = width / 2, height / 2
    radius = min(width, height) / 2 - NODE_R - 30
    nodes = []
    for i, name in enumerate(names):
        if len(names) == 1:
            x, y = cx, cy
        else:
            angle = -math.pi / 2 + 2 * math.pi * i / len(names)
            x, y = cx + radius * math.cos(angle), cy + radius * math.sin(angle)
        nodes.append(Node(name, round(x, 1), round(y, 1), sizes.get(name, 0), inside.get(name, 0)))
    return nodes


def _edge(a: Node, b: Node, data: dict[str, object]) -> Edge:
    dx, dy = b.x - a.x, b.y - a.y
    dist = math.hypot(dx, dy) or 1.0
    ux, uy = dx / dist, dy / dist
    # Perpendicular to the left of a->b: b->a gets the other side.
    px, py = -uy, ux
    x1, y1 = a.x + ux * NODE_R, a.y + uy * NODE_R
    x2, y2 = b.x - ux * (NODE_R + 6), b.y - uy * (NODE_R + 6)
    qx, qy = (a.x + b.x) / 2 + px * BEND, (a.y + b.y) / 2 + py * BEND
    connections = _int(data.get("connections"))
    return Edge(
        source=a.name,
        target=b.name,
        conversations=_int(data.get("conversations")),
        connections=connections,
        bytes=_int(data.get("bytes")),
        violations=_int(data.get("violations")),
        open=_int(data.get("open")),
        worst=str(data["worst"]) if data.get("worst") else None,
        path=f"M {x1:.1f} {y1:.1f} Q {qx:.1f} {qy:.1f} {x2:.1f} {y2:.1f}",
        # the curve's midpoint: (P0 + 2C + P2) / 4
        label_x=round((x1 + 2 * qx + x2) / 4, 1),
        label_y=round((y1 + 2 * qy + y2) / 4, 1),
        width=round(1.5 + min(6.0, 2 * math.log10(1 + connections)), 1),
    )


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) else 0
