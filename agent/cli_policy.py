"""``medtap policy``: propose a segmentation policy from captures, and check a policy file.

``medtap policy learn FILE... -o policy.yaml`` runs the same analysis as ``medtap
analyze`` (``agent.cli.read_captures``) and writes the least-privilege allow-list that
``agent.policy.learn`` proposes; ``medtap policy check FILE`` validates a policy and prints
its normalised form. Importing this module registers nothing and starts nothing: the
``medtap`` app adds ``policy_app`` as its ``policy`` group. ``agent.cli`` is imported inside
the commands, because ``agent.cli`` imports this module.
"""

from __future__ import annotations

import os
import sys
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agent.flows import MAX_FLOWS
from collector.policy import Policy, PolicyError, load_policy

policy_app = typer.Typer(
    name="policy",
    help="Learn a segmentation policy from captures; check a policy file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class ZoneBy(StrEnum):
    vlan = "vlan"
    subnet = "subnet"


def _fail(message: str) -> None:
    typer.echo(f"medtap: error: {message}", err=True)


@policy_app.command()
def learn(
    files: Annotated[list[Path], typer.Argument(help="pcap / pcapng files, plain or gzip")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write the policy here, not stdout")
    ] = None,
    zone_by: Annotated[
        ZoneBy, typer.Option("--zone-by", help="zones from VLAN tags or from address blocks")
    ] = ZoneBy.vlan,
    min_flows: Annotated[
        int,
        typer.Option("--min-flows", min=1, help="allow only what was seen in this many flows"),
    ] = 1,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="progress bar on stderr")
    ] = True,
    max_flows: Annotated[int, typer.Option(help="live flow table cap", min=1)] = MAX_FLOWS,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Propose a least-privilege policy (zones + allow rules) from what the captures show."""
    from agent.cli import _setup_logging, read_captures
    from agent.pipeline import Analyzer
    from agent.policy.learn import LearnError
    from agent.policy.learn import learn as propose

    _setup_logging(verbose)
    analyzer = Analyzer(max_flows=max_flows)
    inputs = read_captures(files, analyzer, progress)
    if all(r.status != "ok" for r in inputs) and not analyzer.packets:
        raise typer.Exit(1)
    try:
        learned = propose(
            analyzer.finish(),
            zone_by=zone_by.value,
            min_flows=min_flows,
            sources=[Path(r.path).name for r in inputs if r.status == "ok"],
        )
    except LearnError as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    if output is None:
        sys.stdout.write(learned.text)
    else:
        _write_atomic(output, learned.text)
    left_out = (
        f", {len(learned.skipped)} left out (fewer than {min_flows} flows)"
        if learned.skipped
        else ""
    )
    typer.echo(
        f"medtap: {output or 'policy'}: {len(learned.zones)} zones, {len(learned.rules)} allow "
        f"rules from {learned.conversations} conversations{left_out}; review before use",
        err=True,
    )
    failed = [r.path for r in inputs if r.status != "ok"]
    if failed:
        _fail(f"{len(failed)} of {len(inputs)} inputs failed: {', '.join(failed)}")
        raise typer.Exit(1)


def _write_atomic(path: Path, text: str) -> None:
    """Write next to the target and rename: an interrupted run never leaves half a policy."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a policy is no secret
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        _fail(f"{path}: cannot write policy: {exc.strerror}")
        raise typer.Exit(1) from None


@policy_app.command()
def check(
    file: Annotated[Path, typer.Argument(help="policy file (YAML, docs/policy.md)")],
) -> None:
    """Validate a policy; print its normalised form and a one-line summary (exit 2 if bad)."""
    try:
        policy = load_policy(file)
    except PolicyError as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    sys.stdout.write(policy.to_yaml())
    sys.stdout.write(f"# {summary(policy)}\n")  # a comment: stdout stays loadable YAML


def summary(policy: Policy) -> str:
    allow = sum(r.action == "allow" for r in policy.rules)
    deny = len(policy.rules) - allow
    return (
        f"{policy.source}: ok, {len(policy.zones)} zones, {len(policy.rules)} rules "
        f"({allow} allow, {deny} deny), default {policy.default}"
    )


def main() -> None:
    policy_app()


if __name__ == "__main__":
    main()
