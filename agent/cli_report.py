"""``medtap report``: the NIS2 evidence document (docs/nis2.md) from captures or a collector.

``medtap report FILE... [--policy P] --format md|html|json [-o OUT]`` renders encryption in
transit, compensating controls per medical device and the asset register as one document;
``--format register-csv|register-json|netbox`` writes the asset register alone (NetBox:
bulk-import records). ``--collector URL --token T`` reads a collector's read API instead of
captures. Importing this module registers nothing: ``agent.cli`` adds ``report`` as a
command; ``python -m agent.cli_report`` runs it on its own.

Exit status: 0 written; 1 an input failed (the document is still written when something
was read) or the collector could not be read; 2 usage errors (a bad policy file included).
"""

from __future__ import annotations

import logging
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from collector.policy import Policy, PolicyError, load_policy

if TYPE_CHECKING:
    from agent.nis2.observed import Observed

log = logging.getLogger("medtap")


class ReportFormat(StrEnum):
    md = "md"
    html = "html"
    json = "json"
    register_csv = "register-csv"
    register_json = "register-json"
    netbox = "netbox"


def _fail(message: str) -> None:
    typer.echo(f"medtap: error: {message}", err=True)


def report(
    files: Annotated[
        list[Path] | None, typer.Argument(help="pcap / pcapng files (or use --collector)")
    ] = None,
    output_format: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="document format")
    ] = ReportFormat.md,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here, not to stdout")
    ] = None,
    policy_file: Annotated[
        Path | None, typer.Option("--policy", help="segmentation policy (docs/policy.md)")
    ] = None,
    collector: Annotated[
        str | None, typer.Option("--collector", help="collector base URL (read API)")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", help="collector session token (or MEDTAP_TOKEN)",
                     show_default=False),
    ] = None,
    guest_zone: Annotated[
        list[str] | None, typer.Option("--guest-zone", help="also treat this zone as guest")
    ] = None,
    site: Annotated[str, typer.Option(help="NetBox site name (--format netbox)")] = "Hospital",
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="progress bar on stderr")
    ] = True,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """NIS2 evidence: encryption in transit, compensating controls, asset register."""
    from agent.cli import _setup_logging
    from agent.nis2.sources import SourceError

    _setup_logging(verbose)
    if bool(files) == bool(collector):
        _fail("give capture files or --collector URL (one of the two)")
        raise typer.Exit(2)
    policy = _load_policy(policy_file)
    failed: list[str] = []
    try:
        if collector:
            from agent.nis2.sources import from_collector

            secret = token or os.environ.get("MEDTAP_TOKEN")
            if not secret:
                _fail("--collector needs --token (or MEDTAP_TOKEN)")
                raise typer.Exit(2)
            obs = from_collector(collector, secret, policy)
        else:
            from agent.nis2.sources import from_captures

            obs, inputs, _ = from_captures(files or [], policy, progress)
            failed = [r.path for r in inputs if r.status != "ok"]
    except SourceError as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    _write(_render(obs, output_format, tuple(guest_zone or ()), site), output)
    if failed:
        _fail(f"{len(failed)} inputs failed: {', '.join(failed)}")
        raise typer.Exit(1)


def _load_policy(path: Path | None) -> Policy | None:
    if path is None:
        return None
    try:
        return load_policy(path)
    except PolicyError as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None


def _render(obs: Observed, fmt: ReportFormat, guests: tuple[str, ...], site: str) -> str:
    from agent.nis2.document import nis2_document
    from agent.nis2.netbox import netbox_document, render_netbox
    from agent.nis2.register import register_rows, render_register_csv, render_register_json
    from agent.nis2.render import render_html, render_json, render_markdown
    from agent.report import version

    if fmt is ReportFormat.register_csv:
        return render_register_csv(register_rows(obs.devices))
    if fmt is ReportFormat.register_json:
        return render_register_json(register_rows(obs.devices))
    if fmt is ReportFormat.netbox:
        return render_netbox(netbox_document(obs.devices, site, f"medtap {version()}"))
    doc = nis2_document(obs, extra_guest_zones=guests)
    if fmt is ReportFormat.html:
        return render_html(doc)
    if fmt is ReportFormat.json:
        return render_json(doc)
    return render_markdown(doc)


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    tmp = output.with_name(output.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(output)  # never half a document
    except OSError as exc:
        _fail(f"{output}: cannot write: {exc.strerror}")
        raise typer.Exit(1) from None


report_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
report_app.command(name="report")(report)

if __name__ == "__main__":
    report_app()
