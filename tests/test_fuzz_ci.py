"""The short CI fuzz run: every target of tests/fuzz for a few seconds, fail on any crash.

Marked ``fuzz`` (``pytest -m fuzz``; ``-m "not fuzz"`` leaves it out). With atheris all
targets run in one instrumented process, one forked libFuzzer session each, from the
committed seeds only (new coverage and crash inputs go to a temporary folder); without
atheris the pure-Python mutation engine runs each target instead. ``MEDTAP_FUZZ_SECONDS``
sets the seconds per target (default 2: 22 targets + ~15 s of instrumenting stay under 90 s
on one core). Longer runs: ``python -m tests.fuzz all --seconds 300``.
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import pytest

from tests.fuzz.__main__ import default_engine, run, run_many
from tests.fuzz.targets import TARGETS

pytestmark = pytest.mark.fuzz
SECONDS = float(os.environ.get("MEDTAP_FUZZ_SECONDS", "2"))


def _report(crashes: dict[str, Path | None], output: str) -> str:
    lines = []
    for name, crash in crashes.items():
        data = crash.read_bytes() if crash is not None else b""
        lines.append(f"{name}: crash input {crash} (base64 {base64.b64encode(data[:2000])!r})\n"
                     f"  keep it: python -m tests.fuzz promote {name} <file>, then fix")
    tail = "\n".join(output.splitlines()[-60:])
    return "\n".join(lines) + "\n--- fuzzer output (tail) ---\n" + tail


def test_every_target_survives_a_short_fuzz_run(tmp_path: Path) -> None:
    started = time.monotonic()
    names = list(TARGETS)
    crashes: dict[str, Path | None] = {}
    if default_engine() == "atheris":
        results, output = run_many(names, SECONDS, quiet=True, fresh=True,
                                   work_root=tmp_path / "work", crash_root=tmp_path / "crashes")
        for name, (code, crash) in results.items():
            if code:
                crashes[name] = crash
        ran = sum(f"==many== {n}: exit" in output for n in names)
    else:
        output = ""
        for name in names:
            code, out, crash = run(name, SECONDS, "random", quiet=True)
            output += out
            if code:
                crashes[name] = crash
        ran = len(names)
    assert not crashes, _report(crashes, output)
    assert ran == len(names), output[-4000:]  # every target actually ran
    assert time.monotonic() - started < len(names) * SECONDS + 120
