"""One fuzzing process for one target: ``python -m tests.fuzz.runner TARGET ENGINE [args]``.

``ENGINE`` is ``atheris`` (coverage-guided: libFuzzer over instrumented Python bytecode of
``agent``, ``parsers``, ``collector.policy``; ``args`` go to libFuzzer) or ``random`` (the
fallback where atheris does not install: mutations of the corpus, no coverage feedback;
``args`` are ``SECONDS ARTIFACT_PREFIX CORPUS_DIR...``). Either writes a crashing input to
the artifact prefix and exits non-zero. ``python -m tests.fuzz`` starts this; run it by hand
only to pass libFuzzer options the front end does not know.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
import traceback
from pathlib import Path

INSTRUMENTED = ["agent", "parsers", "collector.policy", "tests.fuzz"]


def run_atheris(name: str, libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=INSTRUMENTED):
        from tests.fuzz.targets import TARGETS

    atheris.Setup([sys.argv[0], *libfuzzer_args], TARGETS[name].fn)
    atheris.Fuzz()


def run_atheris_many(jobs: list[tuple[str, list[str]]]) -> int:
    """Instrument and import once, then fuzz each target in a forked child (atheris.Fuzz
    exits its process): the 5-10 s of instrumenting every module is paid once, not per
    target. Returns the number of targets whose child failed; prints a line per target."""
    import os

    import atheris

    with atheris.instrument_imports(include=INSTRUMENTED):
        from tests.fuzz.targets import TARGETS

    failed = 0
    for name, libfuzzer_args in jobs:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # child: one libFuzzer session. It never returns: libFuzzer exits at
            # the time limit, and a crash's exception unwinds out of main() into interpreter
            # exit, where libFuzzer's exit hook writes the crash input (as in single mode).
            atheris.Setup([sys.argv[0], *libfuzzer_args], TARGETS[name].fn)
            atheris.Fuzz()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        failed += code != 0
        print(f"==many== {name}: exit {code}", flush=True)
    return failed


def mutate(rng: random.Random, data: bytes, pool: list[bytes], max_len: int) -> bytes:
    """One to eight libFuzzer-style edits: flips, interesting bytes, inserts, erases, splices."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        choice = rng.randrange(7)
        pos = rng.randrange(len(buf) + 1)
        if choice == 0 and buf:
            buf[min(pos, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif choice == 1 and buf:
            buf[min(pos, len(buf) - 1)] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, 0x0D, 0x0A, 0x7C))
        elif choice == 2:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice == 3 and buf:
            del buf[pos : pos + rng.randint(1, 16)]
        elif choice == 4 and pool:
            other = rng.choice(pool)
            start = rng.randrange(len(other) + 1)
            buf[pos:pos] = other[start : start + rng.randint(1, 64)]
        elif choice == 5 and len(buf) >= 4:
            at = rng.randrange(len(buf) - 3)
            value = rng.choice((0, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, len(buf), 1))
            buf[at : at + 4] = value.to_bytes(4, rng.choice(("big", "little")))
        elif choice == 6 and buf:
            start = rng.randrange(len(buf))
            chunk = buf[start : start + rng.randint(1, 32)]
            buf[pos:pos] = chunk
    return bytes(buf[:max_len])


def run_random(name: str, seconds: float, artifact_prefix: str, corpora: list[str]) -> int:
    from tests.fuzz.targets import TARGETS

    info = TARGETS[name]
    pool = [p.read_bytes() for d in corpora for p in sorted(Path(d).glob("*")) if p.is_file()]
    pool = pool or [b""]
    rng = random.Random(int(time.time()))
    deadline = time.monotonic() + seconds
    runs = 0
    while time.monotonic() < deadline:
        data = mutate(rng, rng.choice(pool), pool, info.max_len)
        runs += 1
        try:
            info.fn(data)
        except Exception:  # noqa: BLE001 - every exception is a finding
            path = Path(f"{artifact_prefix}crash-{hashlib.sha1(data).hexdigest()}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            traceback.print_exc()
            print(f"==random== crash after {runs} runs; input written to {path}")
            return 1
    print(f"==random== {name}: {runs} runs in {seconds:.0f} s, no crash")
    return 0


def main(argv: list[str]) -> int:
    if argv[0] == "--many":  # --many NAME=ARG,ARG... [NAME=...]: libFuzzer args per target
        jobs = [(job.split("=", 1)[0], job.split("=", 1)[1].split("\x1f")) for job in argv[1:]]
        return 1 if run_atheris_many(jobs) else 0
    name, engine, rest = argv[0], argv[1], argv[2:]
    if engine == "atheris":
        run_atheris(name, rest)
        return 0
    return run_random(name, float(rest[0]), rest[1], rest[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
