"""Where the NIS2 report's observations come from: capture files, or a collector's read API.

``from_captures`` runs the sensor pipeline offline exactly as ``medtap analyze`` does (the
shared reading loop ``agent.cli.read_captures``), with the HL7 parser counting messages
(``counting``), and keeps the TLS evidence with its server ports. ``from_collector`` reads
``/api/v1/devices`` (each device's evidence from ``/devices/{id}``), ``/flows``,
``/violations`` and, unless a policy file is given, ``/policy`` -- read endpoints only, with a
viewer token. The collector keeps no per-port TLS facts and no message counts: the report
says so. A token is sent only as a bearer header and never printed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from agent.nis2.counting import MessageCount, MessageCounter, counting_registry
from agent.nis2.observed import Observed, iso_time, messages_by_conversation, tls_from_evidence
from agent.pipeline import Analyzer
from agent.report import InputResult, build_report
from collector.policy import Policy, PolicyError, parse_policy

API = "/api/v1"
PAGE = 500  # the collector's largest page (collector/api/devices.py MAX_PAGE)
MAX_ROWS = 1_000_000  # per listing; a collector with more is cut and the report says so
MAX_DEVICE_DETAILS = 20_000  # devices whose evidence is fetched one request each
TIMEOUT = 30.0


class SourceError(Exception):
    """One line for the user: what could not be read, and why."""


def observed_from_report(
    report: dict[str, Any],
    evidence: Iterable[tuple[str, str, str, int | None]],
    counts: dict[tuple[int | None, str, str, int], MessageCount] | None,
    policy: Policy | None,
    sources: list[str],
) -> Observed:
    return Observed(
        devices=report["devices"],
        flows=report["flows"]["items"],
        violations=report["violations"],
        tls=tls_from_evidence(evidence),
        hl7_messages=messages_by_conversation(counts) if counts is not None else None,
        policy=policy,
        sources=sources,
        source_kind="capture",
    )


def from_captures(
    files: list[Path], policy: Policy | None, progress: bool
) -> tuple[Observed, list[InputResult], dict[str, Any]]:
    """(observations, per-file results, the ``medtap analyze`` report they came from)."""
    from agent.cli import read_captures  # the CLI module imports this package's CLI

    counter = MessageCounter()
    analyzer = Analyzer(registry=counting_registry(counter))
    inputs = read_captures(files, analyzer, progress)
    if all(r.status != "ok" for r in inputs) and not analyzer.packets:
        raise SourceError("no input could be read")
    report = build_report(analyzer.finish(), inputs, policy)
    evidence = [(e.kind, e.host, e.value, e.port) for e in analyzer.evidence]
    ok = [r.path for r in inputs if r.status == "ok"]
    return observed_from_report(report, evidence, counter.counts, policy, ok), inputs, report


def encryption_for_report(report: dict[str, Any], evidence: Iterable[Any]) -> dict[str, Any]:
    """The ``encryption`` key of a ``medtap analyze`` report (docs/report-format.md): pass the
    report and ``analyzer.evidence``. Without the counting registry, HL7 messages are not
    counted and the key says so (``messages_counted: false``)."""
    from agent.nis2.encryption import encryption_report

    records = [(e.kind, e.host, e.value, e.port) for e in evidence]
    return encryption_report(observed_from_report(report, records, None, None, []))


# ---- the collector ----------------------------------------------------------------------------
def from_collector(url: str, token: str, policy: Policy | None) -> Observed:
    import httpx

    base = url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise SourceError(f"--collector {base!r}: expected an http:// or https:// URL")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    try:
        with httpx.Client(base_url=base + API, headers=headers, timeout=TIMEOUT,
                          follow_redirects=False) as client:
            rows = list(_pages(client, "/devices"))
            # evidence (TLS versions, banners) is per device: one request each, bounded
            devices = [_device(row, _get(client, f"/devices/{row['id']}")
                               if i < MAX_DEVICE_DETAILS else {})
                       for i, row in enumerate(rows)]
            flows = [_flow(row) for row in _pages(client, "/flows")]
            violations = [_violation(row) for row in _pages(client, "/violations")]
            if policy is None:
                policy = _policy(client)
    except httpx.HTTPError as exc:
        raise SourceError(f"collector {_origin(base)}: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else 'request failed'}"
                          ) from None
    evidence = [(e["kind"], ip, str(e["value"]), None)
                for d in devices for e in d["evidence"] for ip in d["ips"]]
    return Observed(devices=devices, flows=flows, violations=violations,
                    tls=tls_from_evidence(evidence), hl7_messages=None, policy=policy,
                    sources=[_origin(base)], source_kind="collector")


def _origin(url: str) -> str:
    """scheme://host:port only: paths and queries can carry secrets."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def _get(client: Any, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    if response.status_code in (401, 403):
        raise SourceError(f"collector refused {API}{path} ({response.status_code}): "
                          "a viewer or admin session token is needed")
    response.raise_for_status()
    return response.json()


def _pages(client: Any, path: str) -> Iterator[dict[str, Any]]:
    skip = 0
    while skip < MAX_ROWS:
        page = _get(client, path, skip=skip, limit=PAGE)
        rows = page.get("data") or []
        yield from rows
        skip += len(rows)
        if not rows or skip >= int(page.get("count") or 0):
            return


def _device(row: dict[str, Any], detail: dict[str, Any]) -> dict[str, Any]:
    evidence = [{"kind": e["kind"], "value": e["value"], "source": e.get("source"),
                 "count": e.get("count"), "confidence": e.get("confidence")}
                for e in detail.get("evidence") or []]
    return {
        "id": row["key"],
        "mac": row.get("mac"),
        "ips": list(row.get("ips") or []),
        "vlans": list(row.get("vlans") or []),
        "hostnames": list(row.get("hostnames") or []),
        "category": row.get("category"),
        "device_type": row.get("device_type") or "unknown",
        "vendor": row.get("vendor"),
        "model": row.get("model"),
        "software_version": row.get("software_version"),
        "serial": row.get("serial"),
        "is_router": bool(row.get("is_router")),
        "zone": row.get("zone"),
        "reached_via": sorted({str(e["value"]) for e in evidence
                               if str(e["kind"]).endswith(".reached_via")}),
        "evidence": evidence,
        "first_seen": iso_time(row.get("first_seen")),
        "last_seen": iso_time(row.get("last_seen")),
    }


def _flow(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "first_seen": iso_time(row.get("first_seen")),
            "last_seen": iso_time(row.get("last_seen"))}


def _violation(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "first_seen": iso_time(row.get("first_seen")),
            "last_seen": iso_time(row.get("last_seen"))}


def _policy(client: Any) -> Policy | None:
    response = client.get("/policy")
    if response.status_code == 404:
        return None
    if response.status_code in (401, 403):
        raise SourceError(f"collector refused {API}/policy ({response.status_code})")
    response.raise_for_status()
    doc = response.json()
    try:
        return parse_policy(str(doc["text"]), f"collector policy v{doc.get('version')}")
    except PolicyError as exc:
        raise SourceError(f"the collector's policy does not load: {exc}") from None
