"""Learn mode: propose a least-privilege segmentation policy from what a capture shows.

Input is the pipeline's ``Results`` (devices and conversations); output is policy YAML in
the format of docs/policy.md, with comments, that ``collector.policy.load_policy`` reads
and that, evaluated against the same capture, reports **no violation** (checked here
before anything is returned: ``learn`` evaluates its own output with the engine).

* Zones: one per VLAN seen (``vlan10``; ``untagged`` for frames without a tag). With
  ``zone_by="vlan"`` a zone lists its VLAN; with ``"subnet"`` it lists CIDRs covering the
  addresses whose own frames were seen on that VLAN (at least a /24 or /64, narrowed where
  VLANs share address space). Untagged hosts always get CIDRs: there is no VLAN to name.
  Names stay ``vlanN`` rather than a category, so a re-learn names a zone the same way;
  the zone's ``description`` says what lives there (majority category and device types).
* Rules: one ``allow`` per (client zone, client device type when known, server zone,
  service) seen across zones, ``to.hosts`` = the servers seen, ``from.hosts`` = the
  clients seen when their type is unknown (at most ``MAX_RULE_HOSTS`` each, else the
  whole zone). Traffic inside a zone needs no rule; ``default: deny``.
* ``min_flows``: a combination seen in fewer connections is left out and listed in a
  comment at the end; analysing the capture then reports exactly those.

Which flows cross zones, and the device types of their ends, come from the engine's own
tracker (``agent.policy.apply.track_conversations``, what ``analyze --policy`` runs), so
learn and analyze cannot disagree on who is where.
Only addresses, device-type words, counts and times reach the output: no hostname,
vendor string or other text from the wire.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from agent.conversations import Conversation
from agent.endpoints import ip_text, mac_text
from agent.inventory import Device
from agent.pipeline import Results
from agent.policy.apply import track_conversations
from agent.report import iso
from collector.policy import EXTERNAL, NAME_RE, Policy, parse_policy
from parsers.vocabulary import DEVICE_TYPES, UNKNOWN, canonical_device_type

ZoneBy = Literal["vlan", "subnet"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_RULE_HOSTS = 16  # more servers (or unknown clients) than this: the rule names the zone
MAX_EXAMPLES = 3  # example client -> server pairs in a rule's comment
MIN_PREFIX = {4: 24, 6: 64}  # a learned CIDR is never narrower than this unless it must be
UNTAGGED = "untagged"


class LearnError(Exception):
    """Nothing sensible to propose, or the proposal failed its own check (a bug)."""


@dataclass
class LearnedZone:
    name: str
    vlan: int | None  # None: the untagged hosts
    vlans: tuple[int, ...] = ()
    cidrs: tuple[Network, ...] = ()
    device_types: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)

    @property
    def description(self) -> str:
        where = f"VLAN {self.vlan}" if self.vlan is not None else "untagged frames"
        n = sum(self.device_types.values())
        if not n:
            return f"learned: {where}"
        types = ", ".join(t if c == 1 else f"{c} {t}" for t, c in sorted(self.device_types.items()))
        text = f"learned: {where}; {n} device{'s' if n != 1 else ''}: {types}"
        classified = Counter({k: v for k, v in self.categories.items() if k != "unknown"})
        if classified:
            text += f"; mostly {classified.most_common(1)[0][0]}"
        return text


@dataclass
class Usage:
    """Cross-zone traffic of one (client zone, client type, server zone, service)."""

    client_zone: str
    device_type: str | None  # the clients' type, None when not known
    server_zone: str
    service: str
    flows: int = 0
    first_seen: float = float("inf")
    last_seen: float = 0.0
    clients: dict[str, str] = field(default_factory=dict)  # ip -> device type
    servers: dict[str, str] = field(default_factory=dict)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    keys: set[tuple[str, str, str]] = field(default_factory=set)  # (client, server, service)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.client_zone, self.server_zone, self.service, self.device_type or "")


@dataclass
class Learned:
    text: str
    policy: Policy
    zones: list[LearnedZone]
    rules: list[Usage]
    skipped: list[Usage]
    conversations: int


def learn(
    results: Results,
    *,
    zone_by: ZoneBy = "vlan",
    min_flows: int = 1,
    sources: Sequence[str] = (),
) -> Learned:
    """Propose a policy for ``results``; raises LearnError when there is nothing to zone."""
    zones = propose_zones(results, zone_by)
    if not zones:
        raise LearnError("no IP endpoints in the input: nothing to build zones from")
    zoning = parse_policy(render_zones(zones) + "default: deny\n", "<learned zones>")
    usages = observe(results, zoning)
    rules = [u for u in usages if u.flows >= min_flows]
    skipped = [u for u in usages if u.flows < min_flows]
    text = render(zones, rules, skipped, zone_by=zone_by, min_flows=min_flows, sources=sources)
    policy = parse_policy(text, "<learned policy>")
    _self_check(policy, results, skipped)
    return Learned(text, policy, zones, rules, skipped, len(results.conversations))


# --- zones ------------------------------------------------------------------------------


def home_vlans(
    devices: Iterable[Device], conversations: Iterable[Conversation]
) -> dict[str, int | None]:
    """IP -> the VLAN its owner sends its own frames on (None: untagged).

    A host with one VLAN owns its IPs there. A router owns an address per VLAN: each is
    placed where a flow to or from it carried the router's own MAC for that side.
    """
    home: dict[str, int | None] = {}
    multi: dict[str, str] = {}  # ip -> MAC of a device seen on several VLANs
    for dev in devices:
        if dev.mac is None or dev.id.startswith("ip:") or not dev.ips:
            continue  # behind a router, or named inside a message: no VLAN of its own
        if len(dev.vlans) <= 1:
            for ip in dev.ips:
                home.setdefault(ip, dev.vlans[0] if dev.vlans else None)
        else:
            for ip in dev.ips:
                multi.setdefault(ip, dev.mac)
    for conv in conversations:
        for ip_raw, mac in ((conv.client_ip, conv.client_mac), (conv.server_ip, conv.server_mac)):
            if mac is None:
                continue
            ip = ip_text(ip_raw)
            if ip not in home and multi.get(ip) == mac_text(mac):
                home[ip] = conv.vlan
    return home


def propose_zones(results: Results, zone_by: ZoneBy) -> list[LearnedZone]:
    home = home_vlans(results.devices, results.conversations)
    by_vlan: dict[int | None, list[str]] = defaultdict(list)
    for ip, vlan in home.items():
        by_vlan[vlan].append(ip)
    cidrs = _cidrs(by_vlan) if by_vlan else {}
    zones: dict[int | None, LearnedZone] = {}
    for vlan in sorted(by_vlan, key=lambda v: -1 if v is None else v):
        name = UNTAGGED if vlan is None else f"vlan{vlan}"
        if vlan is not None and zone_by == "vlan":
            zones[vlan] = LearnedZone(name, vlan, vlans=(vlan,))
        else:
            zones[vlan] = LearnedZone(name, vlan, cidrs=tuple(cidrs[vlan]))
    counted: set[tuple[str, int | None]] = set()
    for dev in results.devices:
        for ip in dev.ips:
            vlan = home.get(ip, -1)
            if vlan == -1 or (dev.id, vlan) in counted:
                continue
            counted.add((dev.id, vlan))
            zone = zones[vlan]
            zone.device_types[dev.device_type] += 1
            category = "unknown" if dev.device_type == UNKNOWN else dev.category
            zone.categories[category or DEVICE_TYPES.get(dev.device_type, "other")] += 1
    return list(zones.values())


def _cidrs(by_vlan: dict[int | None, list[str]]) -> dict[int | None, list[Network]]:
    """Per VLAN: the smallest prefix (at least /24, /64) covering its hosts; narrower blocks
    when that would take in a host of another VLAN; single hosts as the last resort."""
    owner: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, int | None] = {}
    for vlan, ips in by_vlan.items():
        for ip in ips:
            owner[ipaddress.ip_address(ip)] = vlan

    def clean(net: Network, vlan: int | None) -> bool:
        return all(v == vlan for a, v in owner.items() if a.version == net.version and a in net)

    out: dict[int | None, list[Network]] = {}
    for vlan in by_vlan:
        nets: list[Network] = []
        for version in (4, 6):
            addrs = sorted(a for a, v in owner.items() if v == vlan and a.version == version)
            if not addrs:
                continue
            wide = _covering(addrs, MIN_PREFIX[version])
            if clean(wide, vlan):
                nets.append(wide)
                continue
            blocks: dict[Network, list[Any]] = defaultdict(list)
            for a in addrs:
                blocks[ipaddress.ip_network(f"{a}/{MIN_PREFIX[version]}", strict=False)].append(a)
            for block, members in blocks.items():
                if clean(block, vlan):
                    nets.append(block)
                else:
                    nets.extend(ipaddress.ip_network(a) for a in members)
        out[vlan] = nets
    return out


def _covering(addrs: list[Any], min_prefix: int) -> Network:
    first, last = int(addrs[0]), int(addrs[-1])
    bits = addrs[0].max_prefixlen
    prefix = min(bits - (first ^ last).bit_length(), min_prefix)
    return ipaddress.ip_network(f"{addrs[0]}/{prefix}", strict=False)


# --- traffic ----------------------------------------------------------------------------


def rule_service(service: str) -> str:
    """The policy service for the engine's service text: ``ip/47`` cannot be named (no
    ports) so it becomes ``any``; a port-0 flow allows the bare transport."""
    if service.startswith("ip/"):
        return "any"
    if service in ("tcp/0", "udp/0"):
        return service[:3]
    return service


def observe(results: Results, zoning: Policy) -> list[Usage]:
    """Group cross-zone traffic by (zones, client type, service).

    A zones-only policy with ``default: deny`` makes every cross-zone flow a violation, so
    the engine's own tracker (the code ``analyze --policy`` runs) says which flows cross,
    in which zones, with which device types, with routed copies counted once.
    """
    tracker = track_conversations(zoning, results.devices, results.conversations)
    usages: dict[tuple[str, str, str, str], Usage] = {}
    for v in tracker.violations():
        dtype = canonical_device_type(v.client.device_type)
        dtype = None if dtype in (None, UNKNOWN) else dtype
        service = rule_service(v.service)
        usage = usages.setdefault(
            (v.client_zone, v.server_zone, service, dtype or ""),
            Usage(v.client_zone, dtype, v.server_zone, service),
        )
        usage.flows += v.flows
        usage.first_seen = min(usage.first_seen, v.first_seen)
        usage.last_seen = max(usage.last_seen, v.last_seen)
        usage.clients[v.client.ip] = v.client.device_type
        usage.servers[v.server.ip] = v.server.device_type
        usage.pairs.append((v.client.ip, v.server.ip))
        usage.keys.add((v.client.ip, v.server.ip, v.service))
    return sorted(usages.values(), key=lambda u: u.key)


def _self_check(policy: Policy, results: Results, skipped: list[Usage]) -> None:
    """Analysing the capture with the proposal must report exactly the flows left out on
    purpose (``min_flows``): none by default."""
    expected = {k for u in skipped for k in u.keys}
    tracker = track_conversations(policy, results.devices, results.conversations)
    found = {(v.client.ip, v.server.ip, v.service) for v in tracker.violations()}
    wrong = sorted(found ^ expected)
    if wrong:
        examples = "; ".join(f"{c} -> {s} {svc}" for c, s, svc in wrong[:3])
        raise LearnError(
            f"the proposed policy does not reproduce the capture ({len(wrong)} flows differ, "
            f"e.g. {examples}); please report this as a bug"
        )


# --- YAML -------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^\x20-\x7e]")
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def comment(text: str) -> str:
    """One comment line's text: printable ASCII only, so nothing can end the comment."""
    return _UNSAFE.sub("?", text)


class _Flow(dict[str, Any]):
    """A mapping written on one line: ``{zone: vlan30, device_type: ct}``."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Flow, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)
)


def _dump(data: Any) -> str:
    # Lists of scalars in flow style, _Flow mappings on one line, the rest as blocks.
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=None,
        width=4096,
        allow_unicode=False,
    )


def render_zones(zones: Iterable[LearnedZone]) -> str:
    body: dict[str, Any] = {}
    for zone in zones:
        z: dict[str, Any] = {}
        if zone.vlans:
            z["vlans"] = list(zone.vlans)
        if zone.cidrs:
            z["cidrs"] = [str(c) for c in zone.cidrs]
        z["description"] = zone.description
        body[zone.name] = _Flow(z)
    return _dump({"zones": body})


def rule_name(usage: Usage, taken: set[str]) -> str:
    parts = [usage.client_zone, usage.device_type, "to", usage.server_zone, usage.service]
    name = _NAME_BAD.sub("-", "-".join(p for p in parts if p)).strip("-._") or "rule"
    if len(name) > 120 or not NAME_RE.match(name):
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[:110].strip('-._') or 'rule'}-{digest}"
    base, n = name, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def _hosts(ips: Iterable[str]) -> list[str] | None:
    hosts = sorted(ips, key=lambda ip: ipaddress.ip_address(ip).packed)
    return hosts if len(hosts) <= MAX_RULE_HOSTS else None


def rule_dict(usage: Usage, name: str) -> dict[str, Any]:
    source: dict[str, Any] = {"zone": usage.client_zone}
    if usage.device_type:
        source["device_type"] = usage.device_type
    elif (clients := _hosts(usage.clients)) is not None:
        source["hosts"] = clients  # no type to pin it on: the clients seen, by address
    dest: dict[str, Any] = {"zone": usage.server_zone}
    if (servers := _hosts(usage.servers)) is not None:
        dest["hosts"] = servers
    rule: dict[str, Any] = {"name": name, "from": _Flow(source), "to": _Flow(dest)}
    if usage.service != "any":
        rule["services"] = [usage.service]
    rule["action"] = "allow"
    return rule


def _usage_comments(usage: Usage) -> list[str]:
    flows = f"{usage.flows} flow{'s' if usage.flows != 1 else ''}"
    lines = [f"{flows}, first seen {iso(usage.first_seen)}, last seen {iso(usage.last_seen)}"]
    examples = "; ".join(
        f"{c} ({usage.clients[c]}) -> {s} ({usage.servers[s]})"
        for c, s in usage.pairs[:MAX_EXAMPLES]
    )
    more = len(usage.pairs) - MAX_EXAMPLES
    lines.append(f"e.g. {examples}" + (f" and {more} more pairs" if more > 0 else ""))
    if usage.service == "any":
        lines.append("IP protocol without ports: a policy can only say 'any service'")
    if usage.device_type is None and usage.client_zone != EXTERNAL:
        lines.append("review: client type unknown")
    return [comment(line) for line in lines]


def render(
    zones: Sequence[LearnedZone],
    rules: Sequence[Usage],
    skipped: Sequence[Usage],
    *,
    zone_by: ZoneBy,
    min_flows: int,
    sources: Sequence[str],
) -> str:
    out = [
        f"# Segmentation policy proposed by `medtap policy learn` from {', '.join(sources) or '-'}",
        f"# Zones by {zone_by}; one allow rule per (zone pair, client device type, service) seen",
        f"# across zones in at least {min_flows} flow(s). Everything seen is allowed, including",
        "# traffic that should not exist: review every rule before enforcing this policy.",
    ]
    out = [f"#{comment(line[1:])}" for line in out]
    out.append(render_zones(zones).rstrip("\n"))
    out.append("default: deny  # between zones; traffic inside a zone is allowed")
    if not rules:
        out.append("rules: []  # no traffic crossed zones")
    else:
        out.append("rules:")
        taken: set[str] = set()
        for usage in rules:
            out.extend(f"  # {line}" for line in _usage_comments(usage))
            block = _dump([rule_dict(usage, rule_name(usage, taken))])
            out.extend(f"  {line}" for line in block.rstrip("\n").splitlines())
    if skipped:
        out.append(f"# Seen across zones in fewer than {min_flows} flows, so not allowed here;")
        out.append("# `medtap analyze --policy` reports them as violations:")
        for usage in skipped:
            who = f"{usage.client_zone}" + (f" ({usage.device_type})" if usage.device_type else "")
            first = _usage_comments(usage)
            out.append(comment(f"#   {who} -> {usage.server_zone} {usage.service}: {first[0]}"))
            out.append(comment(f"#     {first[1]}"))
    return "\n".join(out) + "\n"
