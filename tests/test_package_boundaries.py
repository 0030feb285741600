"""Import boundaries from docs/architecture.md: the sensor never needs the server stack.

Each check runs in a fresh interpreter, so modules another test imported don't hide a leak.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER_STACK = ("fastapi", "sqlalchemy", "uvicorn", "starlette", "alembic", "agent")


def imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return {name.split(".")[0] for name in out.stdout.split()}


@pytest.mark.parametrize("module", ["collector.schema", "collector.policy", "collector.sinks"])
def test_contract_modules_do_not_pull_the_server_stack(module: str) -> None:
    leaked = imported_after(f"import {module}") & set(SERVER_STACK)
    assert not leaked, f"{module} imports {sorted(leaked)}"


def test_parsers_import_nothing_from_agent_or_collector() -> None:
    modules = sorted(p.stem for p in (ROOT / "parsers").glob("*.py") if p.stem != "__init__")
    statement = "; ".join(f"import parsers.{m}" for m in modules)
    leaked = imported_after(statement) & {"agent", "collector"}
    assert not leaked, f"parsers import {sorted(leaked)}"
