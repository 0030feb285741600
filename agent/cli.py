"""The ``medtap`` command line. Only this module attaches log handlers and prints.

``medtap analyze FILE...`` reads capture files offline through the sensor
pipeline and writes the inventory report. A file that cannot be read gets a
one-line error (no traceback); the other files are still analysed, the report
says which failed, and the exit status is 1.
"""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from agent import cli_uplink
from agent.capture import CaptureError, PacketSource
from agent.capture.files import open_capture
from agent.flows import MAX_FLOWS
from agent.pipeline import Analyzer, tune_gc
from agent.policy.tracker import Violation
from agent.report import InputResult, build_report, render_csv, render_table, write_json
from collector.policy import Policy, PolicyError, load_policy

app = typer.Typer(
    name="medtap",
    help="Passive discovery of hospital medical devices from network traffic.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
log = logging.getLogger("medtap")
PROGRESS_MIN_BYTES = 8 * 1024 * 1024  # smaller inputs finish before a bar is worth drawing


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )


def _fail(message: str) -> None:
    typer.echo(f"medtap: error: {message}", err=True)


@app.command()
def analyze(
    files: Annotated[list[Path], typer.Argument(help="pcap / pcapng files, plain or gzip")],
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="report format")
    ] = OutputFormat.table,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write the report here, not stdout")
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="progress bar on stderr")
    ] = True,
    max_flows: Annotated[int, typer.Option(help="live flow table cap", min=1)] = MAX_FLOWS,
    core_only: Annotated[
        bool, typer.Option("--core-only", help="decode, flows and endpoints only; no parsers")
    ] = False,
    policy_file: Annotated[
        Path | None,
        typer.Option("--policy", help="segmentation policy (YAML, docs/policy.md)"),
    ] = None,
    fail_on_violation: Annotated[
        bool,
        typer.Option("--fail-on-violation", help="exit 3 when the policy finds violations"),
    ] = False,
    alert: Annotated[
        list[str] | None,
        typer.Option(
            "--alert",
            help="send each new violation to SPEC (jsonl:FILE, syslog+udp://, https://...)",
        ),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
    upload: cli_uplink.UploadOpt = None,
    token: cli_uplink.TokenOpt = None,
    sensor_name: cli_uplink.SensorNameOpt = None,
    ca_file: cli_uplink.CaFileOpt = None,
    insecure_http: cli_uplink.InsecureHttpOpt = False,
    spool: cli_uplink.SpoolOpt = None,
    spool_max_mb: cli_uplink.SpoolMaxOpt = cli_uplink.DEFAULT_SPOOL_MB,
    upload_deadline: cli_uplink.DeadlineOpt = cli_uplink.DEFAULT_DEADLINE,
) -> None:
    """Analyse capture files offline: inventory, flows, statistics and policy violations."""
    _setup_logging(verbose)
    policy = _load_policy(policy_file, fail_on_violation, alert or [])
    uploader = cli_uplink.prepare(  # checked before the analysis: exit 2 on a bad URL or token
        upload, token, sensor_name, ca_file, insecure_http, spool, spool_max_mb, upload_deadline
    )
    sinks = _open_sinks(alert or [])
    try:
        found = _analyze(
            files, output_format, output, progress, max_flows, core_only, policy, sinks, uploader
        )
        if fail_on_violation and found:
            raise typer.Exit(3)
    finally:
        for sink in sinks:
            sink.close()


def _load_policy(path: Path | None, fail_on_violation: bool, alerts: list[str]) -> Policy | None:
    """The policy, or exit 2 with a one-line error before anything is read."""
    if path is None:
        if fail_on_violation or alerts:
            option = "--fail-on-violation" if fail_on_violation else "--alert"
            _fail(f"{option} needs --policy")
            raise typer.Exit(2)
        return None
    try:
        return load_policy(path)
    except PolicyError as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None


def _open_sinks(specs: list[str]) -> list[Any]:
    """One alert sink per ``--alert`` spec (``collector.sinks``); a bad spec exits 2."""
    if not specs:
        return []
    try:
        from collector.sinks import open_sink
    except ImportError as exc:
        _fail(f"--alert: alert sinks are not available ({exc})")
        raise typer.Exit(2) from None
    sinks: list[Any] = []
    for spec in specs:
        try:
            sinks.append(open_sink(spec))
        except ValueError as exc:
            for sink in sinks:
                sink.close()
            _fail(f"--alert {spec}: {exc}")
            raise typer.Exit(2) from None
    return sinks


def read_captures(files: list[Path], analyzer: Analyzer, progress: bool) -> list[InputResult]:
    """Run every file through ``analyzer`` (progress bar on a terminal); a file that fails
    gets a one-line error and its ``InputResult`` says so. Shared with ``medtap policy``."""
    sources: list[tuple[Path, PacketSource | None, InputResult]] = []
    for path in files:
        result = InputResult(path=str(path), status="ok")
        try:
            sources.append((path, open_capture(path), result))
        except CaptureError as exc:
            result.status, result.error = "failed", str(exc)
            _fail(str(exc))
            sources.append((path, None, result))

    total = sum(src.size or 0 for _, src, _ in sources if src is not None)
    show = progress and total >= PROGRESS_MIN_BYTES and sys.stderr.isatty()
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not show,
    )
    with bar:
        task = bar.add_task("reading", total=total or None)
        done = 0
        for path, source, result in sources:
            if source is None:
                continue
            bar.update(task, description=f"reading {path.name}")
            base = done

            def tick(src: PacketSource = source, base: int = base) -> None:
                bar.update(task, completed=base + src.bytes_read)

            try:
                result.packets = analyzer.run(source.frames(), tick)
            except CaptureError as exc:  # damage after good records: keep what was read
                result.status, result.error = "failed", str(exc)
                _fail(str(exc))
            except OSError as exc:
                result.status, result.error = "failed", f"{path}: read error: {exc.strerror}"
                _fail(result.error)
            result.warnings = list(source.warnings)
            for warning in source.warnings:
                log.warning("%s: %s", path, warning)
            done += source.size or 0
            bar.update(task, completed=done)

    return [r for _, _, r in sources]


def _analyze(
    files: list[Path],
    output_format: OutputFormat,
    output: Path | None,
    progress: bool,
    max_flows: int,
    core_only: bool,
    policy: Policy | None,
    sinks: list[Any],
    uploader: cli_uplink.Uploader | None = None,
) -> bool:
    """Read, report; exits 1 when an input failed. True when violations were found."""
    analyzer = Analyzer(max_flows=max_flows, core_only=core_only)
    tune_gc()
    inputs = read_captures(files, analyzer, progress)
    if all(r.status != "ok" for r in inputs) and not analyzer.packets:
        raise typer.Exit(1)

    # Offline, device types are final only at the end: collect each new violation once and
    # send it after the report is built, with final types and counts.
    new: list[Violation] = []
    report = build_report(analyzer.finish(), inputs, policy, new.append if sinks else None)
    from agent.nis2.sources import encryption_for_report  # issue 9: docs/nis2.md

    report["encryption"] = encryption_for_report(report, analyzer.evidence)
    for violation in new:
        record = violation.to_dict()
        for sink in sinks:
            sink.emit(record)
    _write(report, output_format, output)
    if uploader is not None:
        uploader.upload(report)  # exit 4 when batches stay spooled
    failed = [r.path for r in inputs if r.status != "ok"]
    if failed:
        _fail(f"{len(failed)} of {len(inputs)} inputs failed: {', '.join(failed)}")
        raise typer.Exit(1)
    return bool(report["violations"])


def _write(report: dict, output_format: OutputFormat, output: Path | None) -> None:  # type: ignore[type-arg]
    if output_format is OutputFormat.table:
        if output is None:
            render_table(report, Console())
            return
        text_console = Console(file=None, record=True, width=160)
        with text_console.capture():
            render_table(report, text_console)
        text = text_console.export_text()
    elif output_format is OutputFormat.json:
        _write_json(report, output)
        return
    else:
        text = render_csv(report)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"{output}: cannot write report: {exc.strerror}")
        raise typer.Exit(1) from None


def _write_json(report: dict[str, Any], output: Path | None) -> None:
    if output is None:
        write_json(report, sys.stdout)
        return
    try:
        with output.open("w", encoding="utf-8") as out:
            write_json(report, out)
    except OSError as exc:
        _fail(f"{output}: cannot write report: {exc.strerror}")
        raise typer.Exit(1) from None


@app.command()
def watch(
    interface: Annotated[str, typer.Option("--interface", "-i", help="interface to capture on")],
    bpf: Annotated[str | None, typer.Option(help="kernel BPF filter (tcpdump syntax)")] = None,
    duration: Annotated[
        float | None, typer.Option(help="stop after this many seconds", min=0.1)
    ] = None,
    count: Annotated[int | None, typer.Option(help="stop after this many frames", min=1)] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="report format")
    ] = OutputFormat.table,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write the report here, not stdout")
    ] = None,
    max_flows: Annotated[int, typer.Option(help="live flow table cap", min=1)] = MAX_FLOWS,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Capture live (promiscuous) and report when stopped by Ctrl-C, --duration or --count.

    The long-running sensor with uploads is ``medtap sensor``; this is for a look at a port.
    """
    import itertools
    import threading

    from agent.capture.live import LiveSource

    _setup_logging(verbose)
    analyzer = Analyzer(max_flows=max_flows)
    try:
        source = LiveSource(interface, bpf=bpf)
    except CaptureError as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    timer = threading.Timer(duration, source.stop) if duration else None
    result = InputResult(path=f"interface {interface}", status="ok")
    with source:
        if timer is not None:
            timer.start()
        frames = source.frames()
        try:
            result.packets = analyzer.run(itertools.islice(frames, count) if count else frames)
        except KeyboardInterrupt:
            pass
        except CaptureError as exc:
            result.status, result.error = "failed", str(exc)
            _fail(str(exc))
        finally:
            if timer is not None:
                timer.cancel()
        capture_stats = source.stats()
    result.packets = analyzer.packets
    report = build_report(analyzer.finish(), [result])
    report["stats"]["capture"] = capture_stats
    _write(report, output_format, output)
    if result.status != "ok":
        raise typer.Exit(1)


@app.command()
def version() -> None:
    """Print the medtap version."""
    from agent.report import version as medtap_version

    typer.echo(medtap_version())


app.add_typer(cli_uplink.uplink_app, name="uplink")

from collector.cli import collector_app  # noqa: E402  (heavy imports stay inside its commands)

app.add_typer(collector_app, name="collector")

from agent.cli_policy import policy_app  # noqa: E402  (imports agent.cli inside its commands)

app.add_typer(policy_app, name="policy")

from agent.cli_report import report as report_command  # noqa: E402

app.command(name="report")(report_command)

from agent.cli_sensor import register as register_sensor  # noqa: E402

register_sensor(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
