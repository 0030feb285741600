"""``python -m tests.fuzz``: the "make fuzz" of medtap.

    python -m tests.fuzz list                      # targets
    python -m tests.fuzz run TARGET... --seconds 60  # some targets (atheris, or --engine random)
    python -m tests.fuzz all --seconds 30          # every target in turn; exit 1 on a crash
    python -m tests.fuzz replay [TARGET]           # seed corpus + regressions, in-process
    python -m tests.fuzz promote TARGET FILE       # a crash input becomes a regression
    python -m tests.fuzz corpus                    # rebuild the seed corpus from pcaps/

Crashes land in ``tests/fuzz/crashes/<target>/`` and new coverage in ``tests/fuzz/work/``
(both ignored by git); the committed seeds in ``tests/fuzz/corpus/<target>/`` are read,
never written, by a run. Docs: docs/security-fuzzing.md.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
REPO = FUZZ_DIR.parents[1]
CORPUS = FUZZ_DIR / "corpus"
REGRESSIONS = FUZZ_DIR / "regressions"
CRASHES = FUZZ_DIR / "crashes"
WORK = FUZZ_DIR / "work"


def default_engine() -> str:
    return "atheris" if importlib.util.find_spec("atheris") is not None else "random"


def target_names() -> list[str]:
    from tests.fuzz.targets import TARGETS

    return list(TARGETS)


def run(target: str, seconds: float, engine: str | None = None, *, quiet: bool = False,
        fresh: bool = False) -> tuple[int, str, Path | None]:
    """Fuzz ``target`` for ``seconds`` in a child process: (exit code, output, crash file).

    ``fresh``: start from the committed seeds only, not from earlier runs' work corpus.
    """
    engine = engine or default_engine()
    crashes = CRASHES / target
    if engine == "atheris":
        args = _libfuzzer_args(target, seconds, fresh)
    else:
        crashes.mkdir(parents=True, exist_ok=True)
        seeds = [str(d) for d in (CORPUS / target, REGRESSIONS / target) if d.is_dir()]
        args = [str(seconds), f"{crashes}/", *seeds]
    before = set(crashes.iterdir())
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    returncode, output = _tee([sys.executable, "-m", "tests.fuzz.runner", target, engine, *args],
                              env, quiet, seconds + 300)
    new = sorted(set(crashes.iterdir()) - before, key=lambda p: p.stat().st_mtime)
    crash = new[-1] if new else None
    return returncode, output, crash


def _tee(cmd: list[str], env: dict[str, str], quiet: bool, timeout: float) -> tuple[int, str]:
    """Run ``cmd``, echo its output unless ``quiet``, and return (exit code, output)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    with subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if not quiet:
                print(line, end="", flush=True)
            if time.monotonic() > deadline:
                proc.kill()
                lines.append(f"!! killed after {timeout:.0f} s\n")
                break
        code = proc.wait()
    return code, "".join(lines)


def _libfuzzer_args(target: str, seconds: float, fresh: bool, work_root: Path = WORK,
                    crash_root: Path = CRASHES) -> list[str]:
    from tests.fuzz.targets import TARGETS

    work = work_root / target
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (crash_root / target).mkdir(parents=True, exist_ok=True)
    seeds = [str(d) for d in (CORPUS / target, REGRESSIONS / target) if d.is_dir()]
    return [f"-max_total_time={max(1, round(seconds))}", f"-max_len={TARGETS[target].max_len}",
            f"-artifact_prefix={crash_root / target}/", "-timeout=20", "-rss_limit_mb=2048",
            "-print_final_stats=1", str(work), *seeds]


def run_many(targets: list[str], seconds: float, *, quiet: bool = False, fresh: bool = False,
             work_root: Path = WORK, crash_root: Path = CRASHES,
             ) -> tuple[dict[str, tuple[int, Path | None]], str]:
    """Fuzz several targets with atheris in one instrumented process (one fork per target):
    ({target: (exit code, crash file)}, output). ``work_root``/``crash_root``: where new
    coverage and crash inputs go (the CI test points both at a temporary folder)."""
    before = {t: set((crash_root / t).glob("*")) for t in targets}
    jobs = [f"{t}=" + "\x1f".join(_libfuzzer_args(t, seconds, fresh, work_root, crash_root))
            for t in targets]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    returncode, output = _tee([sys.executable, "-m", "tests.fuzz.runner", "--many", *jobs],
                              env, quiet, len(targets) * (seconds + 120) + 300)
    codes: dict[str, int] = {}
    for line in output.splitlines():
        if line.startswith("==many== "):
            name, _, code = line[len("==many== "):].partition(": exit ")
            codes[name] = int(code)
    results: dict[str, tuple[int, Path | None]] = {}
    for t in targets:
        new = sorted(set((crash_root / t).glob("*")) - before[t],
                     key=lambda p: p.stat().st_mtime)
        status = codes.get(t, returncode or 1)  # no line: the parent itself died
        results[t] = (status, new[-1] if new else None)
    return results, output


def replay(target: str | None = None) -> list[tuple[str, Path, str]]:
    """Run every seed and regression input through its target in-process; the failures."""
    import traceback

    from tests.fuzz.targets import TARGETS

    failures: list[tuple[str, Path, str]] = []
    for name, info in TARGETS.items():
        if target is not None and name != target:
            continue
        for folder in (CORPUS / name, REGRESSIONS / name):
            for path in sorted(folder.glob("*")) if folder.is_dir() else []:
                if not path.is_file() or path.name.endswith(".md"):
                    continue
                try:
                    info.fn(path.read_bytes())
                except Exception:  # noqa: BLE001 - every exception is a finding
                    failures.append((name, path, traceback.format_exc(limit=-3)))
    return failures


def promote(target: str, file: Path) -> Path:
    data = file.read_bytes()
    dest = REGRESSIONS / target / f"{hashlib.sha1(data).hexdigest()[:16]}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    p_run = sub.add_parser("run")
    p_run.add_argument("target", nargs="+", help="one or more targets (see list)")
    p_all = sub.add_parser("all")
    for p in (p_run, p_all):
        p.add_argument("--seconds", type=float, default=60.0)
        p.add_argument("--engine", choices=("atheris", "random"), default=None)
        p.add_argument("--fresh", action="store_true", help="ignore earlier runs' work corpus")
    p_replay = sub.add_parser("replay")
    p_replay.add_argument("target", nargs="?")
    p_promote = sub.add_parser("promote")
    p_promote.add_argument("target")
    p_promote.add_argument("file", type=Path)
    sub.add_parser("corpus")
    args = parser.parse_args(argv)

    if args.command == "list":
        print("\n".join(target_names()))
        return 0
    if args.command == "corpus":
        from tests.fuzz import make_corpus

        make_corpus.main()
        return 0
    if args.command == "promote":
        print(promote(args.target, args.file))
        return 0
    if args.command == "replay":
        failures = replay(args.target)
        for name, path, tb in failures:
            print(f"FAIL {name} {path}\n{tb}")
        print(f"{len(failures)} failing inputs")
        return 1 if failures else 0
    names = args.target if args.command == "run" else target_names()
    unknown = set(names) - set(target_names())
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    crashed: list[tuple[str, Path | None]] = []
    started = time.monotonic()
    if len(names) > 1 and (args.engine or default_engine()) == "atheris":
        results, _ = run_many(names, args.seconds, fresh=args.fresh)
        for name, (code, crash) in results.items():
            if code:
                crashed.append((name, crash))
                print(f"!! {name}: crash, input {crash}\n   keep it: python -m tests.fuzz "
                      f"promote {name} {crash}", flush=True)
        names = []
    for name in names:
        print(f"== fuzz {name} for {args.seconds:.0f} s ({args.engine or default_engine()})",
              flush=True)
        code, _, crash = run(name, args.seconds, args.engine, fresh=args.fresh)
        if code:
            crashed.append((name, crash))
            print(f"!! {name}: crash, input {crash}\n   keep it: python -m tests.fuzz promote "
                  f"{name} {crash}", flush=True)
    print(f"== {len(names)} targets in {time.monotonic() - started:.0f} s, "
          f"{len(crashed)} crashed: {', '.join(n for n, _ in crashed) or 'none'}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
