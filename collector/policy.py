"""Segmentation policy: the YAML format, its validation and the normalised model.

Shared by sensors (``medtap analyze --policy``, the live sensor) and the collector (an
admin uploads a policy), so it imports only the standard library, PyYAML and the device
vocabulary of ``parsers`` (a leaf package). Evaluation lives in ``agent/policy``; the
format, its semantics and the reasons behind them are in docs/policy.md.

Every error names the file, the line (from the YAML node marks), the field and what is
wrong: ``policy.yaml:12: rules[2].to.zone: unknown zone 'imagin'``. The loader returns a
complete :class:`Policy` or raises :class:`PolicyError`; nothing is half-loaded. It reads
the node tree (``yaml.compose``), never constructs arbitrary objects, refuses aliases
(no "billion laughs") and files over ``MAX_POLICY_BYTES``.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from parsers.vocabulary import DEVICE_TYPE_ALIASES, DEVICE_TYPES, canonical_device_type

MAX_POLICY_BYTES = 1024 * 1024  # a policy is hand-written; refuse anything far bigger
POLICY_VERSION = 1
EXTERNAL = "external"  # the implicit zone of every address in no zone
DEFAULT_RULE = "default"  # the rule name a default-action violation reports
ACTIONS = ("allow", "deny")
REQUIREMENTS = ("tls",)  # what ``require`` on an allow rule can ask of the flows it allows
SEVERITIES = ("low", "medium", "high", "critical")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

Action = Literal["allow", "deny"]
Requirement = Literal["tls"]
Severity = Literal["low", "medium", "high", "critical"]
DEFAULT_SEVERITY: Severity = "high"  # default deny, and deny rules without their own severity
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Named services: name -> (ports, source). "tcp/N", "udp/N" or "icmp" each.
NAMED_SERVICES: dict[str, tuple[tuple[str, ...], str]] = {
    "dicom": (("tcp/104", "tcp/11112"), "DICOM PS3.8 9.1.2; IANA 'dicom' 104 and 11112"),
    "dicom-tls": (("tcp/2762",), "DICOM PS3.15 B.1; IANA 'dicom-tls'"),
    "hl7": (("tcp/2575",), "IANA 'hl7' (MLLP); HL7 v2 Implementation Guide C.4"),
    "dns": (("udp/53", "tcp/53"), "RFC 1035 4.2, RFC 7766"),
    "ntp": (("udp/123",), "RFC 5905"),
    "http": (("tcp/80",), "RFC 9110 4.2.1"),
    "https": (("tcp/443", "udp/443"), "RFC 9110 4.2.2; RFC 9114 (HTTP/3 over QUIC)"),
    "ssh": (("tcp/22",), "RFC 4253 4"),
    "telnet": (("tcp/23",), "RFC 854"),
    "ftp": (("tcp/21", "tcp/20"), "RFC 959"),
    "tftp": (("udp/69",), "RFC 1350"),
    "smtp": (("tcp/25", "tcp/587"), "RFC 5321; RFC 6409 (submission)"),
    "rdp": (("tcp/3389", "udp/3389"), "[MS-RDPBCGR] 2.1; IANA 'ms-wbt-server'"),
    "vnc": (("tcp/5900",), "RFC 6143 (display :0)"),
    "snmp": (("udp/161",), "RFC 3417 3"),
    "snmp-trap": (("udp/162",), "RFC 3417 3"),
    "syslog": (("udp/514", "tcp/6514"), "RFC 5426 (UDP), RFC 5425 (TLS)"),
    "ldap": (("tcp/389", "udp/389"), "RFC 4511 5; IANA 'ldap'"),
    "ldaps": (("tcp/636",), "IANA 'ldaps'"),
    "kerberos": (("tcp/88", "udp/88"), "RFC 4120 7.2"),
    "smb": (("tcp/445", "tcp/139"), "[MS-SMB2] 2.1; RFC 1001 (NetBIOS session)"),
    "netbios": (("udp/137", "udp/138", "tcp/139"), "RFC 1001/1002"),
    "dhcp": (("udp/67", "udp/68"), "RFC 2131 4.1"),
    "mdns": (("udp/5353",), "RFC 6762"),
    "ssdp": (("udp/1900",), "UPnP Device Architecture 2.0, 1.3"),
    "radius": (("udp/1812", "udp/1813"), "RFC 2865, RFC 2866"),
    "mqtt": (("tcp/1883", "tcp/8883"), "OASIS MQTT 5.0, 4.2; IANA 'mqtt'/'secure-mqtt'"),
    "mssql": (("tcp/1433",), "IANA 'ms-sql-s'"),
    "postgresql": (("tcp/5432",), "IANA 'postgresql'"),
    "mysql": (("tcp/3306",), "IANA 'mysql'"),
}
TRANSPORTS = ("tcp", "udp")
PORTLESS = {"icmp": ("icmp", "icmpv6"), "icmpv6": ("icmpv6",)}  # "icmp" means any ping


class PolicyError(Exception):
    """``path:line: field: problem``; ``line`` is 1-based, None when no line applies."""

    def __init__(self, path: str, line: int | None, field: str, problem: str) -> None:
        self.path, self.line, self.field, self.problem = path, line, field, problem
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {field}: {problem}")


@dataclass(frozen=True)
class PortRange:
    transport: str  # "tcp", "udp", "icmp", "icmpv6", or "any"
    low: int = 0
    high: int = 65535

    def matches(self, transport: str, port: int | None) -> bool:
        if self.transport == "any":
            return True
        if self.transport != transport:
            return False
        return transport not in TRANSPORTS or (port is not None and self.low <= port <= self.high)


@dataclass(frozen=True)
class Service:
    """One entry of a rule's ``services`` as written (canonical spelling) and what it means."""

    name: str  # "dicom", "tcp/104", "tcp/8000-8100", "udp", "icmp", "any"
    ranges: tuple[PortRange, ...]

    def matches(self, transport: str, port: int | None) -> bool:
        return any(r.matches(transport, port) for r in self.ranges)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Zone:
    name: str
    vlans: tuple[int, ...] = ()
    cidrs: tuple[Network, ...] = ()
    description: str | None = None
    line: int | None = field(default=None, compare=False)

    def contains_ip(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(ip in net for net in self.cidrs)


@dataclass(frozen=True)
class EndpointMatch:
    """A rule's ``from`` or ``to``: every given condition must hold; nothing given = any."""

    zones: tuple[str, ...] = ()  # any of these (may include "external")
    negate: bool = False  # "!zone": in none of ``zones``
    hosts: tuple[Network, ...] = ()
    device_types: tuple[str, ...] = ()  # canonical vocabulary words, any of

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if len(self.zones) == 1:
            out["zone"] = ("!" if self.negate else "") + self.zones[0]
        elif self.zones:
            out["zone"] = list(self.zones)
        if self.hosts:
            out["hosts"] = [_net_text(h) for h in self.hosts]
        if self.device_types:
            types = list(self.device_types)
            out["device_type"] = types[0] if len(types) == 1 else types
        return out


@dataclass(frozen=True)
class Rule:
    name: str
    source: EndpointMatch  # ``from``
    dest: EndpointMatch  # ``to``
    services: tuple[Service, ...]  # empty: any service
    action: Action
    severity: Severity | None  # None for allow rules without ``require``
    description: str | None = None
    line: int | None = field(default=None, compare=False)
    # "tls": the rule allows a flow only encrypted; a cleartext one breaks it (docs/policy.md)
    require: Requirement | None = None

    @property
    def needs_device_type(self) -> bool:
        return bool(self.source.device_types or self.dest.device_types)

    @property
    def may_report(self) -> bool:
        """Can a flow this rule matches become a violation (deny, or allow with require)?"""
        return self.action == "deny" or self.require is not None

    def matches_service(self, transport: str, port: int | None) -> bool:
        return not self.services or any(s.matches(transport, port) for s in self.services)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["from"], out["to"] = self.source.to_dict(), self.dest.to_dict()
        if self.services:
            out["services"] = [s.name for s in self.services]
        out["action"] = self.action
        if self.require is not None:
            out["require"] = self.require
        if self.severity is not None:
            out["severity"] = self.severity
        return out


SegmentationRule = Rule  # the DESIGN.md name


@dataclass(frozen=True)
class Policy:
    zones: dict[str, Zone]
    rules: tuple[Rule, ...]
    default: Action = "deny"
    default_severity: Severity = DEFAULT_SEVERITY
    description: str | None = None
    source: str = field(default="<policy>", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The normalised form: every default spelled out, services in canonical spelling."""
        zones: dict[str, Any] = {}
        for zone in self.zones.values():
            z: dict[str, Any] = {}
            if zone.vlans:
                z["vlans"] = list(zone.vlans)
            if zone.cidrs:
                z["cidrs"] = [str(c) for c in zone.cidrs]
            if zone.description:
                z["description"] = zone.description
            zones[zone.name] = z
        out: dict[str, Any] = {"version": POLICY_VERSION}
        if self.description:
            out["description"] = self.description
        out["zones"] = zones
        out["default"] = self.default
        out["default_severity"] = self.default_severity
        out["rules"] = [r.to_dict() for r in self.rules]
        return out

    def to_yaml(self) -> str:
        """The normalised form as YAML that :func:`parse_policy` reads back equal."""
        return yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def load_policy(path: Path) -> Policy:
    """Read and validate a policy file; one-line :class:`PolicyError` for every failure."""
    source = str(path)
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(source, None, "file", f"cannot read: {exc.strerror}") from None
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(source, None, "file", f"larger than {MAX_POLICY_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PolicyError(source, line, "file", "not UTF-8 text") from None
    return parse_policy(text, source)


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Validate policy YAML text; ``source`` names it in errors."""
    if len(text) > MAX_POLICY_BYTES:
        raise PolicyError(source, None, "file", f"larger than {MAX_POLICY_BYTES} bytes")
    return _Parser(text, source).policy()


def parse_service(text: str) -> Service:
    """``tcp/104``, ``udp/53``, ``tcp/8000-8100``, ``tcp``, ``icmp``, ``any`` or a named
    service (``dicom``); ValueError says what is wrong."""
    word = text.strip().lower()
    if word == "any":
        return Service("any", (PortRange("any"),))
    if word in PORTLESS:
        return Service(word, tuple(PortRange(t) for t in PORTLESS[word]))
    if word in TRANSPORTS:
        return Service(word, (PortRange(word),))
    if word in NAMED_SERVICES:
        return Service(word, tuple(_port(p) for p in NAMED_SERVICES[word][0]))
    if "/" not in word:
        raise ValueError(
            f"unknown service {text!r} (use tcp/N, udp/N, tcp/N-M, icmp, any or one of: "
            f"{', '.join(sorted(NAMED_SERVICES))})"
        )
    return Service(word, (_port(word),))


def _port(word: str) -> PortRange:
    transport, _, ports = word.partition("/")
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown transport {transport!r} in {word!r} (tcp or udp)")
    low_text, dash, high_text = ports.partition("-")
    if not low_text.isdigit() or (dash and not high_text.isdigit()):
        raise ValueError(f"{word!r}: ports must be numbers, N or N-M")
    low = int(low_text)
    high = int(high_text) if dash else low
    if not 1 <= low <= 65535 or not 1 <= high <= 65535:
        raise ValueError(f"{word!r}: port out of range 1-65535")
    if low > high:
        raise ValueError(f"{word!r}: range start above its end")
    return PortRange(transport, low, high)


def _net_text(net: Network) -> str:
    return str(net.network_address) if net.num_addresses == 1 else str(net)


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _Dumper(yaml.SafeDumper):
    """Short lists of scalars (VLANs, CIDRs, services) on one line, as people write them."""

    def represent_flow_list(self, data: list[Any]) -> yaml.SequenceNode:
        flow = all(isinstance(x, str | int) for x in data)
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _Dumper.represent_flow_list)


class _Loader(yaml.SafeLoader):
    """Composes nodes only; an alias is refused (it could multiply nodes without bound)."""

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise _AliasError(mark.line + 1)
        return super().compose_node(parent, index)


class _AliasError(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


ZONE_KEYS = ("vlans", "cidrs", "description")
TOP_KEYS = ("version", "description", "zones", "default", "default_severity", "rules")
RULE_KEYS = ("name", "description", "from", "to", "services", "action", "require", "severity")
MATCH_KEYS = ("zone", "hosts", "device_type")


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.text, self.source = text, source

    def fail(self, node: Node | int | None, field: str, problem: str) -> NoReturn:
        line = _line(node) if isinstance(node, Node) else node
        raise PolicyError(self.source, line, field, problem)

    # -- node helpers -------------------------------------------------------------------
    def mapping(self, node: Node, field: str, allowed: tuple[str, ...]) -> dict[str, Node]:
        if not isinstance(node, MappingNode):
            self.fail(node, field, "expected a mapping (key: value)")
        pairs = self.joined_description(node, allowed) if "description" in allowed else node.value
        out: dict[str, Node] = {}
        keys: dict[str, Node] = {}
        for key, value in pairs:
            name = self.key(key, field)
            if name in out:
                self.fail(
                    key, _sub(field, name), f"duplicate key (first at line {_line(keys[name])})"
                )
            if name not in allowed:
                hint = difflib.get_close_matches(name, allowed, n=1)
                also = f"; did you mean {hint[0]!r}?" if hint else ""
                self.fail(
                    key, _sub(field, name), f"unknown key (allowed: {', '.join(allowed)}){also}"
                )
            out[name], keys[name] = value, key
        return out

    def key(self, node: Node, field: str) -> str:
        if not isinstance(node, ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            self.fail(node, field, "keys must be plain names")
        return str(node.value)

    def joined_description(
        self, node: MappingNode, allowed: tuple[str, ...]
    ) -> list[tuple[Node, Node]]:
        """``{description: HIS, RIS, workstations}``: YAML ends a plain scalar at a comma in
        a flow mapping, so PyYAML reads ``RIS`` and ``workstations`` as keys without values.
        Such keys right after a plain ``description`` are joined back into its text."""
        pairs: list[tuple[Node, Node]] = list(node.value)
        if not node.flow_style:
            return pairs
        out: list[tuple[Node, Node]] = []
        i = 0
        while i < len(pairs):
            key, value = pairs[i]
            out.append((key, value))
            i += 1
            if not (isinstance(key, ScalarNode) and key.value == "description"):
                continue
            if not (isinstance(value, ScalarNode) and value.style is None):
                continue
            last: Node | None = None
            while i < len(pairs) and _bare_word(*pairs[i], allowed):
                last = pairs[i][0]
                i += 1
            if last is not None:
                text = self.text[value.start_mark.index : last.end_mark.index]
                out[-1] = (key, ScalarNode("tag:yaml.org,2002:str", text, value.start_mark))
        return out

    def text_value(self, node: Node, field: str) -> str:
        if not isinstance(node, ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            self.fail(node, field, "expected text")
        return str(node.value).strip()

    def items(self, node: Node, field: str) -> list[tuple[str, Node]]:
        """A list, or one scalar taken as a one-item list; with each item's field path."""
        if isinstance(node, SequenceNode):
            return [(f"{field}[{i}]", n) for i, n in enumerate(node.value)]
        if isinstance(node, ScalarNode) and node.tag != "tag:yaml.org,2002:null":
            return [(field, node)]
        self.fail(node, field, "expected a list")

    def choice(self, node: Node, field: str, allowed: tuple[str, ...]) -> str:
        value = self.text_value(node, field).lower()
        if value not in allowed:
            self.fail(node, field, f"{node.value!r} is not one of: {', '.join(allowed)}")
        return value

    # -- the document -------------------------------------------------------------------
    def policy(self) -> Policy:
        try:
            root = yaml.compose(self.text, Loader=_Loader)
        except _AliasError as exc:
            self.fail(exc.line, "yaml", "aliases (*name) are not supported in a policy")
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            problem = " ".join(x for x in (exc.context, exc.problem) if x) or "syntax error"
            self.fail(line, "yaml", problem)
        except yaml.YAMLError as exc:
            self.fail(None, "yaml", str(exc).splitlines()[0])
        except RecursionError:
            self.fail(None, "yaml", "nested too deeply")
        if root is None:
            self.fail(1, "(document)", "empty policy: expected zones, default and rules")
        top = self.mapping(root, "(document)", TOP_KEYS)
        if "version" in top:
            node = top["version"]
            if not (isinstance(node, ScalarNode) and node.value == str(POLICY_VERSION)):
                self.fail(
                    node, "version", f"unsupported version (this medtap reads {POLICY_VERSION})"
                )
        if "zones" not in top:
            self.fail(root, "zones", "missing: a policy needs at least one zone")
        zones = self.zones(top["zones"])
        default = self.choice(top["default"], "default", ACTIONS) if "default" in top else "deny"
        severity: str = DEFAULT_SEVERITY
        if "default_severity" in top:
            severity = self.choice(top["default_severity"], "default_severity", SEVERITIES)
        rules: list[Rule] = []
        if "rules" in top and not _is_null(top["rules"]):
            node = top["rules"]
            if not isinstance(node, SequenceNode):
                self.fail(node, "rules", "expected a list of rules")
            first: dict[str, int] = {}
            for i, item in enumerate(node.value):
                rule = self.rule(item, f"rules[{i}]", zones, severity)
                if rule.name in first:
                    self.fail(
                        item,
                        f"rules[{i}].name",
                        f"duplicate rule name {rule.name!r} (first at line {first[rule.name]})",
                    )
                first[rule.name] = _line(item)
                rules.append(rule)
        description = None
        if "description" in top and not _is_null(top["description"]):
            description = self.text_value(top["description"], "description")
        return Policy(
            zones=zones,
            rules=tuple(rules),
            default=default,  # type: ignore[arg-type]
            default_severity=severity,  # type: ignore[arg-type]
            description=description,
            source=self.source,
        )

    def zones(self, node: Node) -> dict[str, Zone]:
        if not isinstance(node, MappingNode) or not node.value:
            self.fail(node, "zones", "expected a mapping of zone names to {vlans, cidrs}")
        zones: dict[str, Zone] = {}
        vlan_owner: dict[int, Zone] = {}
        for key, value in node.value:
            name = self.key(key, "zones")
            where = f"zones.{name}"
            if name in zones:
                self.fail(key, where, f"duplicate zone (first at line {zones[name].line})")
            if not NAME_RE.match(name):
                self.fail(key, where, "zone names are letters, digits, '.', '_' or '-'")
            if name == EXTERNAL:
                self.fail(key, where, f"'{EXTERNAL}' is the implicit zone of unzoned addresses")
            fields = self.mapping(value, where, ZONE_KEYS)
            vlans: list[int] = []
            for path, item in (
                self.items(fields["vlans"], f"{where}.vlans") if "vlans" in fields else []
            ):
                vlan = self.vlan(item, path)
                other = vlan_owner.get(vlan)
                if other is not None and other.name != name:
                    self.fail(
                        item,
                        path,
                        f"VLAN {vlan} is already in zone {other.name!r} (line {other.line})",
                    )
                if vlan not in vlans:
                    vlans.append(vlan)
            cidrs: list[Network] = []
            for path, item in (
                self.items(fields["cidrs"], f"{where}.cidrs") if "cidrs" in fields else []
            ):
                net = self.network(item, path)
                for zone in zones.values():
                    for theirs in zone.cidrs:
                        if theirs.version == net.version and theirs.overlaps(net):
                            self.fail(
                                item,
                                path,
                                f"{net} overlaps {theirs} of zone {zone.name!r} (line {zone.line})",
                            )
                cidrs.append(net)
            if not vlans and not cidrs:
                self.fail(value, where, "a zone needs vlans or cidrs")
            description = None
            if "description" in fields and not _is_null(fields["description"]):
                description = self.text_value(fields["description"], f"{where}.description")
            zone = Zone(name, tuple(vlans), tuple(cidrs), description, _line(key))
            zones[name] = zone
            for vlan in vlans:
                vlan_owner[vlan] = zone
        return zones

    def vlan(self, node: Node, field: str) -> int:
        if not (isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:int"):
            self.fail(node, field, f"{getattr(node, 'value', node)!r} is not a VLAN number")
        value = int(node.value) if node.value.isdigit() else None
        if value is None or not 1 <= value <= 4094:
            self.fail(node, field, f"VLAN {node.value} out of range 1-4094")
        return value

    def network(self, node: Node, field: str) -> Network:
        text = self.text_value(node, field)
        try:
            return ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            problem = str(exc)
            if "host bits set" in problem:
                net = ipaddress.ip_network(text, strict=False)
                self.fail(node, field, f"{text!r} has host bits set (did you mean {net}?)")
            self.fail(node, field, f"{text!r} is not an IP address or CIDR")

    def rule(self, node: Node, where: str, zones: dict[str, Zone], severity: str) -> Rule:
        fields = self.mapping(node, where, RULE_KEYS)
        if "name" not in fields:
            self.fail(node, f"{where}.name", "missing: every rule needs a name")
        name = self.text_value(fields["name"], f"{where}.name")
        if not NAME_RE.match(name):
            self.fail(
                fields["name"], f"{where}.name", "rule names are letters, digits, '.', '_' or '-'"
            )
        if name == DEFAULT_RULE:
            self.fail(fields["name"], f"{where}.name", f"'{DEFAULT_RULE}' names the default action")
        # Fields in the order people write them, so the first error is the first in the file.
        source = self.match(fields.get("from"), f"{where}.from", zones)
        dest = self.match(fields.get("to"), f"{where}.to", zones)
        services: list[Service] = []
        if "services" in fields and not _is_null(fields["services"]):
            for path, item in self.items(fields["services"], f"{where}.services"):
                text = self.text_value(item, path)
                try:
                    services.append(parse_service(text))
                except ValueError as exc:
                    self.fail(item, path, str(exc))
        if any(s.name == "any" for s in services):
            services = []
        if "action" not in fields:
            self.fail(node, f"{where}.action", "missing: allow or deny")
        action = self.choice(fields["action"], f"{where}.action", ACTIONS)
        require: str | None = None
        if "require" in fields:
            require = self.choice(fields["require"], f"{where}.require", REQUIREMENTS)
            if action == "deny":
                self.fail(
                    fields["require"],
                    f"{where}.require",
                    "only allow rules have a requirement (a denied flow is a violation anyway)",
                )
        rule_severity: str | None = None
        if "severity" in fields:
            rule_severity = self.choice(fields["severity"], f"{where}.severity", SEVERITIES)
            if action == "allow" and require is None:
                self.fail(
                    fields["severity"],
                    f"{where}.severity",
                    "only deny rules and rules with 'require' have a severity",
                )
        elif action == "deny" or require is not None:
            rule_severity = severity
        description = None
        if "description" in fields and not _is_null(fields["description"]):
            description = self.text_value(fields["description"], f"{where}.description")
        return Rule(
            name=name,
            source=source,
            dest=dest,
            services=tuple(services),
            action=action,  # type: ignore[arg-type]
            severity=rule_severity,  # type: ignore[arg-type]
            description=description,
            line=_line(node),
            require=require,  # type: ignore[arg-type]
        )

    def match(self, node: Node | None, where: str, zones: dict[str, Zone]) -> EndpointMatch:
        if node is None or _is_null(node):
            return EndpointMatch()
        fields = self.mapping(node, where, MATCH_KEYS)
        names: list[str] = []
        negate = False
        if "zone" in fields:
            zone_node = fields["zone"]
            refs = self.items(zone_node, f"{where}.zone")
            for path, item in refs:
                ref = self.zone_ref(item, path)
                if ref.startswith("!"):
                    if len(refs) > 1:
                        self.fail(item, path, "'!zone' negates one zone; not inside a list")
                    negate, ref = True, ref[1:]
                if ref not in zones and ref != EXTERNAL:
                    hint = difflib.get_close_matches(ref, list(zones), n=1)
                    also = f"; did you mean {hint[0]!r}?" if hint else ""
                    known = ", ".join([*zones, EXTERNAL])
                    self.fail(item, path, f"unknown zone {ref!r} (zones: {known}){also}")
                names.append(ref)
        hosts: list[Network] = []
        for path, item in (
            self.items(fields["hosts"], f"{where}.hosts") if "hosts" in fields else []
        ):
            net = self.network(item, path)
            if names and not negate:
                self.check_host_zone(
                    item, path, net, [zones[n] for n in names if n in zones], zones
                )
            hosts.append(net)
        types: list[str] = []
        for path, item in (
            self.items(fields["device_type"], f"{where}.device_type")
            if "device_type" in fields
            else []
        ):
            word = self.text_value(item, path)
            canonical = canonical_device_type(word)
            if canonical is None:
                vocabulary = [*DEVICE_TYPES, *DEVICE_TYPE_ALIASES]
                hint = difflib.get_close_matches(word.lower(), vocabulary, n=1) or [
                    v for v in DEVICE_TYPES if word.lower() in v
                ]
                also = f"; did you mean {hint[0]!r}?" if hint else ""
                self.fail(item, path, f"unknown device type {word!r}{also} (see docs/policy.md)")
            if canonical not in types:
                types.append(canonical)
        return EndpointMatch(tuple(names), negate, tuple(hosts), tuple(types))

    def zone_ref(self, node: Node, field: str) -> str:
        # Unquoted ``!medical`` is a YAML tag, not text: take it as the negation it means.
        if isinstance(node, ScalarNode) and node.tag.startswith("!") and not node.value:
            return node.tag
        return self.text_value(node, field)

    def check_host_zone(
        self, node: Node, field: str, net: Network, wanted: list[Zone], zones: dict[str, Zone]
    ) -> None:
        """A host that lies in another zone's CIDRs can never be in the rule's zone."""
        if any(z.contains_ip(net.network_address) for z in wanted):
            return
        for zone in zones.values():
            if zone.contains_ip(net.network_address):
                self.fail(
                    node,
                    field,
                    f"{_net_text(net)} is in zone {zone.name!r}, not "
                    f"{' or '.join(repr(z.name) for z in wanted)}: the rule could never match",
                )


def _sub(field: str, key: str) -> str:
    return key if field == "(document)" else f"{field}.{key}"


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _bare_word(key: Node, value: Node, allowed: tuple[str, ...]) -> bool:
    """A plain key with no value at all (``RIS`` in ``{description: HIS, RIS}``)."""
    return (
        isinstance(key, ScalarNode)
        and key.style is None
        and key.value not in allowed
        and isinstance(value, ScalarNode)
        and value.tag == "tag:yaml.org,2002:null"
        and value.value == ""
    )


def iter_services() -> Iterator[tuple[str, tuple[str, ...], str]]:
    """(name, ports, source) of every named service, for docs and ``medtap policy``."""
    for name, (ports, source) in sorted(NAMED_SERVICES.items()):
        yield name, ports, source
