"""Faults between sensor and collector, with real processes: ``medtap analyze --upload`` /
``medtap uplink drain`` as the sensor and ``medtap collector serve`` as the collector.

- the SQLite database write-locked by another process: ingest answers 503 with Retry-After,
  the sensor backs off and retries, nothing is lost or doubled;
- PostgreSQL crash-restarted in the middle of an upload (a private throwaway cluster made
  with initdb in tmp, never the shared one);
- the spool's file system full (a 1 MiB tmpfs mounted by the test, root only): the sensor
  says so clearly, keeps what it had spooled, and drains it later;
- ``kill -9`` of sensor and collector at seeded random points of a multi-batch upload: every
  batch is stored exactly once (by batch id and by the summed connections of the report).

"Collector down and back" is tests/test_uplink.py::test_collector_down_then_back_drains_in_order
_exactly_once, ::test_cli_upload_collector_down_exits_4_then_drain and
::test_e2e_collector_killed_and_restarted_mid_upload; this file does not repeat them.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.uplink.batch import BatchLimits, batches_from_report
from tests.collector_fixtures import free_port, medtap

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "pcaps" / "sample" / "hospital-sample.pcapng"
POLICY_PCAP = ROOT / "pcaps" / "policy" / "hospital-policy.pcapng"
POLICY = ROOT / "pcaps" / "policy" / "policy.yaml"
SENSOR = "fault-span"
PASSWORD = "correct horse battery staple"
SEED = int(os.environ.get("MEDTAP_FAULT_SEED", "20261128"))


class Collector:
    """``medtap collector serve`` on a fixed port and database; killable and restartable."""

    def __init__(self, database: str, log: Path, env: dict[str, str] | None = None) -> None:
        self.database, self.log = database, log
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        medtap("collector", "migrate", "--database", database)
        self.token = medtap("collector", "add-sensor", SENSOR, "--database", database).strip()

    def start(self) -> None:
        cmd = [sys.executable, "-m", "agent.cli", "collector", "serve", "--host", "127.0.0.1",
               "--port", str(self.port), "--database", self.database, "-v"]  # fmt: skip
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(
                cmd, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT, env=self.env
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"collector did not start: {self.log.read_text()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: no shutdown, an in-flight ingest gets no answer
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def running(collector: Collector) -> Iterator[Collector]:
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()


def upload_cmd(url: str, spool: Path, pcap: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "agent.cli", "analyze", str(pcap), "-f", "json", "-o",
            str(out), "--no-progress", "--upload", url, "--sensor-name", SENSOR, "--spool",
            str(spool), "-v", *extra]  # fmt: skip


def sensor_env(token: str, items: int) -> dict[str, str]:
    return {**os.environ, "MEDTAP_TOKEN": token, "MEDTAP_UPLINK_BATCH_ITEMS": str(items)}


def run(
    cmd: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def expected_ids(report_file: Path, items: int) -> set[str]:
    report = json.loads(report_file.read_text())
    limits = BatchLimits(devices=items, flows=items, violations=items)
    return {b.batch_id for b in batches_from_report(report, sensor=SENSOR, limits=limits)}


def spool_counter(spool: Path, name: str) -> int:
    try:
        with sqlite3.connect(f"file:{spool / 'spool.sqlite3'}?mode=ro", uri=True) as db:
            row = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
    except sqlite3.Error:  # not created yet
        return 0
    return int(row[0]) if row else 0


def spool_depth(spool: Path) -> int:
    with sqlite3.connect(f"file:{spool / 'spool.sqlite3'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT COUNT(*) FROM batches").fetchone()[0])


def sqlite_rows(db_file: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as db:
        return list(db.execute(query))


def assert_exactly_once(rows: list[tuple[Any, ...]], expected: set[str]) -> None:
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "a batch id stored twice"
    assert set(ids) == expected, (len(set(ids)), len(expected))


def check_store(db_file: Path, report_file: Path, expected: set[str]) -> None:
    """Every batch once, by id and by the connections the report counted."""
    assert_exactly_once(sqlite_rows(db_file, "SELECT batch_id FROM ingested_batch"), expected)
    report = json.loads(report_file.read_text())
    total = sqlite_rows(db_file, "SELECT SUM(connections) FROM flow")[0][0]
    assert total == report["flows"]["connections"], "connections counted twice or lost"
    devices = sqlite_rows(db_file, "SELECT COUNT(*) FROM device")[0][0]
    assert devices == len(report["devices"])


# --- SQLite write lock --------------------------------------------------------------------------

LOCK_HOLDER = """
import sqlite3, sys, time, pathlib
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")            # the write lock, as a long migration or backup would
pathlib.Path(sys.argv[2]).write_text("locked")
while not pathlib.Path(sys.argv[3]).exists():
    time.sleep(0.05)
db.execute("ROLLBACK")
"""


ITEMS = 5  # several batches


def spool_errors(spool: Path) -> list[str]:
    """The last transient error recorded on each waiting batch that has one."""
    try:
        with sqlite3.connect(f"file:{spool / 'spool.sqlite3'}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT last_error FROM batches WHERE last_error IS NOT NULL")
            return [r[0] for r in rows]
    except sqlite3.Error:  # not created yet
        return []


def test_sqlite_write_lock_answers_503_and_the_sensor_retries(tmp_path: Path) -> None:
    db_file = tmp_path / "collector.db"
    col = Collector(f"sqlite:///{db_file}", tmp_path / "collector.log")
    locked, release = tmp_path / "locked", tmp_path / "release"
    spool, out = tmp_path / "spool", tmp_path / "report.json"
    with running(col):
        holder = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(db_file), str(locked), str(release)]
        )
        try:
            deadline = time.monotonic() + 30
            while not locked.exists():
                assert holder.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            sensor = subprocess.Popen(
                upload_cmd(col.url, spool, SAMPLE, out, "--upload-deadline", "120"),
                cwd=ROOT, env=sensor_env(col.token, ITEMS), stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            # a direct ingest meanwhile: the collector waits for the lock, then says 503
            started = time.monotonic()
            with httpx.Client(timeout=60) as c:
                r = c.post(
                    col.url + "/api/v1/ingest",
                    json={"sensor": SENSOR, "batch_id": "lock-probe-1", "started": "2026-01-01T"
                          "00:00:00Z", "ended": "2026-01-01T00:00:00Z"},
                    headers={"Authorization": f"Bearer {col.token}"},
                )  # fmt: skip
            waited = time.monotonic() - started
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "2"
            assert r.json() == {"detail": "database busy, retry"}
            assert waited >= 10  # the busy timeout was honoured before giving up
            # the lock stays until the sensor, too, has been answered 503 and keeps the batch
            deadline = time.monotonic() + 90
            while not spool_errors(spool):
                assert sensor.poll() is None and time.monotonic() < deadline, sensor.stderr
                time.sleep(0.1)
            assert set(spool_errors(spool)) == {"HTTP 503"}
        finally:
            release.write_text("go")
            holder.wait(timeout=30)
        _, err = sensor.communicate(timeout=180)
        assert sensor.returncode == 0, err
        assert "HTTP 503" in err  # the sensor says what happened, and retried
    check_store(db_file, out, expected_ids(out, ITEMS))
    assert "lock-probe-1" not in {r[0] for r in sqlite_rows(db_file, "SELECT batch_id FROM "
                                                          "ingested_batch")}  # fmt: skip
    log = col.log.read_text()
    assert "database busy: OperationalError" in log and "Traceback" not in log


# --- PostgreSQL crash-restarted mid-upload ------------------------------------------------------


def pg_bin() -> Path | None:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts)
    return versions[-1].parent if versions else None


class PrivateCluster:
    """A throwaway PostgreSQL cluster in a temporary directory on a free port, run as the
    ``postgres`` system user (initdb refuses root); removed afterwards."""

    def __init__(self) -> None:
        bindir = pg_bin()
        assert bindir is not None
        self.bin = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="medtap-pg-"))  # pytest's tmp is root-only
        shutil.chown(self.dir, "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self.password = "fault-test-" + os.urandom(6).hex()
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        shutil.chown(pwfile, "postgres")
        self.as_postgres(
            "initdb", "-D", str(self.data), "-U", "medtap", "-A", "scram-sha-256",
            "--pwfile", str(pwfile), "--no-sync",
        )  # fmt: skip
        self.url = f"postgresql://medtap:{self.password}@127.0.0.1:{self.port}/postgres"

    def as_postgres(self, tool: str, *args: str) -> None:
        out = subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin / tool), *args],
            capture_output=True, text=True, timeout=120, cwd=self.dir,
        )  # fmt: skip
        assert out.returncode == 0, f"{tool}: {out.stdout}{out.stderr}"

    def pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on"
        self.as_postgres(
            "pg_ctl", action, "-D", str(self.data), "-l", str(self.dir / "log"), "-w",
            "-o", options, *extra,
        )  # fmt: skip

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivateCluster]:
    if os.geteuid() != 0 or pg_bin() is None or shutil.which("runuser") is None:
        pytest.skip("needs root and PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("needs the postgres system user")
    cluster = PrivateCluster()
    cluster.pg_ctl("start")
    try:
        yield cluster
    finally:
        cluster.remove()


def pg_rows(url: str, query: str) -> list[tuple[Any, ...]]:
    from sqlalchemy import text

    from collector.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(query))]
    finally:
        engine.dispose()


def test_postgresql_restarted_mid_upload(tmp_path: Path, private_postgres: PrivateCluster) -> None:
    pg = private_postgres
    col = Collector(pg.url, tmp_path / "collector.log")
    spool, out = tmp_path / "spool", tmp_path / "report.json"
    with running(col):
        sensor = subprocess.Popen(
            upload_cmd(col.url, spool, SAMPLE, out, "--upload-deadline", "120"),
            cwd=ROOT, env=sensor_env(col.token, 1), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 180
        while spool_counter(spool, "stored") < 5:
            assert sensor.poll() is None and time.monotonic() < deadline, sensor.stderr
            time.sleep(0.01)
        pg.pg_ctl("restart", "-m", "immediate")  # a crash: no checkpoint, WAL replay
        at_restart = spool_counter(spool, "stored")
        _, err = sensor.communicate(timeout=240)
        assert sensor.returncode == 0, err
        with httpx.Client(base_url=col.url, timeout=30) as c:  # the collector is fine again
            me = c.get("/api/v1/me", headers={"Authorization": f"Bearer {col.token}"})
            assert me.status_code == 200
    expected = expected_ids(out, 1)
    assert at_restart < len(expected), "the restart came after the upload"
    assert_exactly_once(pg_rows(pg.url, "SELECT batch_id FROM ingested_batch"), expected)
    report = json.loads(out.read_text())
    assert (
        pg_rows(pg.url, "SELECT SUM(connections) FROM flow")[0][0] == report["flows"]["connections"]
    )
    assert pg_rows(pg.url, "SELECT COUNT(*) FROM device")[0][0] == len(report["devices"])
    log = col.log.read_text()
    assert "Exception in ASGI application" not in log, log[-3000:]  # 503s, never a 500
    assert "database busy: OperationalError" in log  # the restart hit ingests: 503 ...
    assert "HTTP 503" in err  # ... and the sensor retried them


# --- the spool's disk is full -------------------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_spool_disk_full_is_reported_kept_and_drained_later(tmp_path: Path, tiny_fs: Path) -> None:
    db_file = tmp_path / "collector.db"
    col = Collector(f"sqlite:///{db_file}", tmp_path / "collector.log")
    spool = tiny_fs / "spool"
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    env = sensor_env(col.token, 10)
    # 1. collector down: the first report's batches wait in the spool
    down = run(upload_cmd(col.url, spool, SAMPLE, first, "--upload-deadline", "1"), env)
    assert down.returncode == 4 and "batches are spooled" in down.stderr, down.stderr
    waiting = spool_depth(spool)
    assert waiting == len(expected_ids(first, 10)) > 1
    # 2. the disk fills up; a second report cannot be spooled, and says so
    filler = fill(tiny_fs)
    full = run(upload_cmd(col.url, spool, POLICY_PCAP, second, "--policy", str(POLICY)), env)
    assert full.returncode == 4, full.stderr
    assert f"{spool}: spool write failed: database or disk is full" in full.stderr
    assert "Traceback" not in full.stderr
    assert second.exists()  # the report itself was still written (elsewhere)
    status = run([sys.executable, "-m", "agent.cli", "uplink", "status", "--spool", str(spool),
                  "--json"], env)  # fmt: skip
    assert status.returncode == 0, status.stderr  # readable on a full disk
    assert json.loads(status.stdout)["depth"] == waiting  # kept what it had
    with sqlite3.connect(f"file:{spool / 'spool.sqlite3'}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # 3. collector up, disk still full: a drain delivers, but cannot delete what it sent
    with running(col):
        stuck = run([sys.executable, "-m", "agent.cli", "uplink", "drain", "--spool",
                     str(spool)], env)  # fmt: skip
    assert stuck.returncode == 4 and "Traceback" not in stuck.stderr, stuck.stderr
    assert "cannot update the spool" in stuck.stderr and "disk is full" in stuck.stderr
    assert spool_depth(spool) == waiting  # the delivered batch is sent again later (duplicate)
    # 4. space again: everything drains, exactly once
    filler.unlink()
    with running(col):
        drained = run([sys.executable, "-m", "agent.cli", "uplink", "drain", "--spool",
                       str(spool)], env)  # fmt: skip
        assert drained.returncode == 0, drained.stderr
        assert "1 already there (duplicate)" in drained.stderr
        check_store(db_file, first, expected_ids(first, 10))
        again = run(upload_cmd(col.url, spool, POLICY_PCAP, second, "--policy", str(POLICY)), env)
        assert again.returncode == 0, again.stderr
    ids = {r[0] for r in sqlite_rows(db_file, "SELECT batch_id FROM ingested_batch")}
    assert ids == expected_ids(first, 10) | expected_ids(second, 10)


# --- kill -9 of sensor and collector at random points -------------------------------------------


def test_kill9_sensor_and_collector_at_seeded_random_points(tmp_path: Path) -> None:
    """Rounds of: start (or restart) the upload, wait for a random number of delivered
    batches plus a random pause, then SIGKILL the sensor or the collector (seeded choice),
    restart what died. Finally drain. Reproduce with MEDTAP_FAULT_SEED=<seed>."""
    rng = random.Random(SEED)
    db_file = tmp_path / "collector.db"
    col = Collector(f"sqlite:///{db_file}", tmp_path / "collector.log")
    spool, out = tmp_path / "spool", tmp_path / "report.json"
    env = sensor_env(col.token, 1)
    cmd = upload_cmd(col.url, spool, SAMPLE, out, "--upload-deadline", "60")
    kills: list[str] = []
    sensor: subprocess.Popen[str] | None = None
    col.start()
    try:
        for _ in range(6):
            if sensor is None or sensor.poll() is not None:
                sensor = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True)  # fmt: skip
            target = spool_counter(spool, "stored") + spool_counter(spool, "duplicate")
            target += rng.randint(0, 6)
            deadline = time.monotonic() + 120
            while spool_counter(spool, "stored") + spool_counter(spool, "duplicate") < target:
                if sensor.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.3))
            victim = rng.choice(("sensor", "collector"))
            kills.append(f"{victim}@{spool_counter(spool, 'stored')}")
            if victim == "sensor":
                sensor.send_signal(signal.SIGKILL)
                sensor.wait()
            else:
                col.kill()
                time.sleep(rng.uniform(0, 1.0))
                col.start()
        assert sensor is not None
        if sensor.poll() is None:
            sensor.communicate(timeout=180)
        final = run(cmd, env)  # the same analysis again: the rest, and duplicates for the rest
        assert final.returncode == 0, (kills, final.stderr)
    finally:
        if sensor is not None and sensor.poll() is None:
            sensor.kill()
            sensor.wait()
        col.stop()
    assert {k.split("@")[0] for k in kills} == {"sensor", "collector"}, kills
    check_store(db_file, out, expected_ids(out, 1))
    assert spool_depth(spool) == 0
