"""The collector store against a SQLite file and a real PostgreSQL (same tests, both).

PostgreSQL runs when MEDTAP_TEST_POSTGRES_URL is set (.ci/run starts a cluster and sets it);
without it those cases are skipped with that reason. The schema is built by the shipped
Alembic migrations, never by ``create_all``, so the migrations are what is tested.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, Table, func, insert, inspect, select, text
from sqlalchemy.orm import Session

from collector.api.sensors import sensor_state
from collector.auth import create_sensor
from collector.migrate import SchemaError, alembic_config, check_schema, head_revision, upgrade
from collector.models import (
    Base,
    Device,
    DeviceField,
    DeviceSensor,
    Evidence,
    Flow,
    HeartbeatRecord,
    IngestedBatch,
    Sensor,
    Violation,
)
from collector.schema import Batch
from collector.settings import Settings
from collector.store import device_key, ingest_batch
from tests.collector_fixtures import (
    batch_from_report,
    database_kinds,
    device,
    migrated_engine,
    report,
    small_batch,
    violation,
)

pytestmark = pytest.mark.parametrize("kind", database_kinds())


@pytest.fixture
def engine(kind: str, tmp_path: Path) -> Iterator[Engine]:
    with migrated_engine(kind, tmp_path) as eng:
        yield eng


def sensor(engine: Engine, name: str) -> int:
    with Session(engine) as s:
        create_sensor(s, name=name)
        s.commit()
        sid = s.scalar(select(Sensor.id).where(Sensor.name == name))
        assert sid is not None
        return sid


def ingest(engine: Engine, sensor_id: int, batch: dict[str, Any], cap: int = 2000) -> Any:
    with Session(engine) as s:
        return ingest_batch(
            s, sensor_id=sensor_id, batch=Batch.model_validate(batch), max_evidence_per_device=cap
        )


def snapshot(engine: Engine) -> dict[str, Any]:
    """Every table's rows (minus wall-clock columns), to compare before/after."""
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            cols = [c for c in table.c if c.name not in ("updated_at", "created_at")]
            out[table.name] = sorted(map(tuple, conn.execute(select(*cols))), key=repr)
    return out


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert check_schema(engine) == head_revision()


def test_sample_batch_stored_then_duplicate_changes_nothing(engine: Engine) -> None:
    rep = report()
    sid = sensor(engine, "icu-span")
    batch = batch_from_report(rep, sensor="icu-span")
    first = ingest(engine, sid, batch)
    assert (first.status, first.devices, first.flows) == (
        "stored",
        len(rep["devices"]),
        len(rep["flows"]["items"]),
    )
    before = snapshot(engine)
    again = ingest(engine, sid, batch)
    assert again.status == "duplicate"
    assert (again.devices, again.flows, again.violations) == (
        first.devices,
        first.flows,
        first.violations,
    )
    assert snapshot(engine) == before
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Device)) == len(rep["devices"])
        assert s.scalar(select(func.count()).select_from(Flow)) == len(rep["flows"]["items"])
        assert s.scalar(select(func.count()).select_from(Violation)) == len(rep["violations"])
        ct = s.scalars(select(Device).where(Device.key == "mac:44:4b:5d:30:01:11")).one()
        assert (ct.device_type, ct.vendor, ct.model) == ("ct", "GE Healthcare", "Revolution CT")
        assert ct.category == "medical" and ct.zone == "imaging"
        # the router (one MAC on four SVIs) is keyed by its lowest address, not its MAC
        router = s.scalars(select(Device).where(Device.is_router)).one()
        assert router.key == "ip:10.10.0.1@vlan10" and router.mac == "e8:0a:b9:1c:4e:01"
        evidence = s.scalar(select(func.sum(Evidence.count)).where(Evidence.device_id == ct.id))
        ct_report = next(d for d in rep["devices"] if d["id"] == "mac:44:4b:5d:30:01:11")
        assert evidence == sum(e["count"] for e in ct_report["evidence"])
        hb = s.get(Sensor, sid)
        assert hb is not None and hb.packets == rep["stats"]["packets"] and hb.batches == 1


def test_two_sensors_merge_by_key_and_counts_add(engine: Engine) -> None:
    rep = report()
    a, b = sensor(engine, "icu-span"), sensor(engine, "core-span")
    ingest(engine, a, batch_from_report(rep, sensor="icu-span"))
    shifted = report()
    for d in shifted["devices"]:  # the second sensor saw everything an hour later
        for key in ("first_seen", "last_seen"):
            t = datetime.fromisoformat(d[key].replace("Z", "+00:00")) + timedelta(hours=1)
            d[key] = t.isoformat()
    ingest(engine, b, batch_from_report(shifted, sensor="core-span"))
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Device)) == len(rep["devices"])
        ct = s.scalars(select(Device).where(Device.key == "mac:44:4b:5d:30:01:11")).one()
        ct_report = next(d for d in rep["devices"] if d["id"] == ct.key)
        first = datetime.fromisoformat(ct_report["first_seen"].replace("Z", "+00:00"))
        last = datetime.fromisoformat(ct_report["last_seen"].replace("Z", "+00:00"))
        assert ct.first_seen == first and ct.last_seen == last + timedelta(hours=1)
        assert ct.flows == 2 * ct_report["flows"]
        rows = s.scalars(select(Evidence).where(Evidence.device_id == ct.id)).all()
        assert len(rows) == len(
            {(e["kind"], e["value"], e["source"]) for e in ct_report["evidence"]}
        )
        assert sum(r.count for r in rows) == 2 * sum(e["count"] for e in ct_report["evidence"])
        seen_by = s.scalar(
            select(func.count()).select_from(DeviceSensor).where(DeviceSensor.device_id == ct.id)
        )
        assert seen_by == 2
        flow = s.scalars(select(Flow).order_by(Flow.id)).first()
        assert flow is not None
        item = next(
            f
            for f in rep["flows"]["items"]
            if (f["client"], f["server"], f["server_port"], f["vlan"])
            == (flow.client, flow.server, flow.server_port, flow.vlan)
        )
        assert flow.connections == 2 * item["connections"]


def test_merge_keys_mac_ip_vlan_and_named(engine: Engine) -> None:
    sid = sensor(engine, "s1")
    other = sensor(engine, "s2")
    mac = device("mac:00:09:fb:00:00:01", mac="00:09:fb:00:00:01", ips=["10.20.1.5"], vlans=[20])
    behind = device("ip:10.30.1.9@vlan10", ips=["10.30.1.9"], vlans=[10])
    named = device("device:eui64:0009FBFFFE000001")
    ingest(engine, sid, small_batch("s1", devices=[mac, behind, named]))
    # another sensor: the same MAC under a new IP, the same IP+VLAN, the same named device
    mac2 = dict(mac, ips=["10.20.1.6"], id="mac:00:09:fb:00:00:01")
    ingest(engine, other, small_batch("s2", devices=[mac2, behind, named]))
    with Session(engine) as s:
        keys = sorted(s.scalars(select(Device.key)))
        assert keys == [
            "device:eui64:0009FBFFFE000001",
            "ip:10.30.1.9@vlan10",
            "mac:00:09:fb:00:00:01",
        ]
        ips = s.execute(
            text(
                "SELECT ip FROM device_ip JOIN device ON device.id = device_ip.device_id "
                "WHERE device.key = 'mac:00:09:fb:00:00:01' ORDER BY ip"
            )
        ).scalars()
        assert list(ips) == ["10.20.1.5", "10.20.1.6"]
    assert device_key(Batch.model_validate(small_batch("x", devices=[mac])).devices[0]) == (
        "mac:00:09:fb:00:00:01"
    )


def test_classification_takes_the_highest_confidence(engine: Engine) -> None:
    a, b = sensor(engine, "a"), sensor(engine, "b")
    base = {"mac": "00:12:21:00:00:07", "device_type": "infusion-pump", "category": "medical"}

    def claim(vendor: str, conf: float) -> dict[str, Any]:
        return device(
            "mac:00:12:21:00:00:07",
            **base,
            vendor=vendor,
            confidence=0.7,
            classification={
                "vendor": {
                    "value": vendor,
                    "confidence": conf,
                    "evidence": [{"kind": "hl7.vendor", "value": vendor, "confidence": conf}],
                }
            },
        )

    def vendor() -> tuple[str | None, float, str]:
        with Session(engine) as s:
            dev = s.scalars(select(Device)).one()
            field = s.get(DeviceField, (dev.id, "vendor"))
            assert field is not None and field.value == dev.vendor
            return dev.vendor, field.confidence, field.evidence

    ingest(engine, a, small_batch("a", devices=[claim("B. Braun", 0.5)]))
    ingest(engine, b, small_batch("b", devices=[claim("BBraun Melsungen", 0.9)]))
    assert vendor()[:2] == ("BBraun Melsungen", 0.9)
    ingest(engine, a, small_batch("a", devices=[claim("Other", 0.6)]))
    assert vendor()[0] == "BBraun Melsungen"  # 0.6 < 0.9
    # the sensor that set the value may revise its own claim, even downwards
    ingest(engine, b, small_batch("b", devices=[claim("B. Braun Melsungen AG", 0.4)]))
    value, conf, evidence = vendor()
    assert (value, conf) == ("B. Braun Melsungen AG", 0.4)
    assert '"hl7.vendor"' in evidence
    with Session(engine) as s:
        dev = s.scalars(select(Device)).one()
        assert (dev.device_type, dev.category, dev.confidence) == ("infusion-pump", "medical", 0.7)


def test_flows_and_violations_add_and_widen(engine: Engine) -> None:
    sid = sensor(engine, "s1")
    flow = {
        "transport": "tcp",
        "vlan": 30,
        "client": "10.30.1.11",
        "server": "10.30.0.10",
        "server_port": 104,
        "app": "dicom",
        "connections": 2,
        "packets_to_server": 10,
        "bytes_to_server": 1000,
        "first_seen": "2026-01-05T08:00:00Z",
        "last_seen": "2026-01-05T08:10:00Z",
    }
    later = dict(flow, first_seen="2026-01-05T09:00:00Z", last_seen="2026-01-05T09:30:00Z")
    ingest(engine, sid, small_batch("s1", flows=[flow], violations=[violation()]))
    ingest(
        engine,
        sid,
        small_batch(
            "s1",
            flows=[later],
            violations=[
                violation(first_seen="2026-01-04T23:00:00Z", flows=3, packets=5, bytes=50),
                violation(rule="other-rule"),
            ],
        ),
    )
    with Session(engine) as s:
        f = s.scalars(select(Flow)).one()
        assert (f.connections, f.packets_to_server, f.bytes_to_server) == (4, 20, 2000)
        assert f.first_seen == datetime(2026, 1, 5, 8, tzinfo=UTC)
        assert f.last_seen == datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
        v = s.scalars(select(Violation).where(Violation.rule == "guest-to-imaging")).one()
        assert (v.flows, v.packets, v.bytes) == (4, 15, 1050)
        assert v.first_seen == datetime(2026, 1, 4, 23, tzinfo=UTC)
        assert v.last_seen == datetime(2026, 1, 5, 9, tzinfo=UTC)
        assert s.scalar(select(func.count()).select_from(Violation)) == 2


def test_concurrent_duplicates_count_once_and_distinct_batches_all_add(engine: Engine) -> None:
    rep = report()
    sid = sensor(engine, "icu-span")
    same = batch_from_report(rep, sensor="icu-span")
    results: list[str] = []
    errors: list[BaseException] = []

    def send(batch: dict[str, Any]) -> None:
        try:
            results.append(ingest(engine, sid, batch).status)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(same,)) for _ in range(4)]
    threads += [
        threading.Thread(target=send, args=(batch_from_report(rep, sensor="icu-span"),))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(results) == ["duplicate"] * 3 + ["stored"] * 4
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(IngestedBatch)) == 4
        ct = s.scalars(select(Device).where(Device.key == "mac:44:4b:5d:30:01:11")).one()
        ct_report = next(d for d in rep["devices"] if d["id"] == ct.key)
        assert ct.flows == 4 * ct_report["flows"]
        total = s.scalar(select(func.sum(Evidence.count)).where(Evidence.device_id == ct.id))
        assert total == 4 * sum(e["count"] for e in ct_report["evidence"])


def test_evidence_cap_keeps_counting_known_triples(engine: Engine) -> None:
    sid = sensor(engine, "s1")

    def ev(n: int) -> list[dict[str, Any]]:
        return [
            {"kind": "k", "value": f"v{i}", "source": "s", "count": 1, "confidence": 0.1}
            for i in range(n)
        ]

    ingest(engine, sid, small_batch("s1", devices=[device("device:x:1", evidence=ev(3))]), cap=5)
    ingest(engine, sid, small_batch("s1", devices=[device("device:x:1", evidence=ev(8))]), cap=5)
    with Session(engine) as s:
        rows = s.scalars(select(Evidence).order_by(Evidence.value)).all()
        assert len(rows) == 5
        assert {r.value: r.count for r in rows}["v0"] == 2


def test_an_older_heartbeat_does_not_replace_a_newer_one(engine: Engine) -> None:
    sid = sensor(engine, "s1")
    hb = {
        "at": "2026-01-05T10:00:00Z",
        "version": "0.1.0",
        "packets": 500,
        "kernel_drops": 3,
        "flows_unparsed": 41,
    }
    old = dict(hb, at="2026-01-05T09:00:00Z", packets=100, kernel_drops=0, flows_unparsed=2)
    ingest(engine, sid, small_batch("s1", heartbeat=hb))
    ingest(engine, sid, small_batch("s1", heartbeat=old))  # a spooled batch, sent late
    with Session(engine) as s:
        row = s.get(Sensor, sid)
        assert row is not None
        assert (row.packets, row.kernel_drops, row.batches) == (500, 3, 2)
        assert row.flows_unparsed == 41
        history = s.scalars(select(HeartbeatRecord).order_by(HeartbeatRecord.at)).all()
        assert [(h.packets, h.flows_unparsed) for h in history] == [(100, 2), (500, 41)]
        assert row.heartbeat_at == datetime(2026, 1, 5, 10, tzinfo=UTC)
        settings = Settings(sensor_late_seconds=60, sensor_silent_seconds=600)
        assert row.heartbeat_received_at is not None
        seen = row.heartbeat_received_at
        assert sensor_state(row, settings, seen + timedelta(seconds=30)) == "ok"
        assert sensor_state(row, settings, seen + timedelta(seconds=61)) == "late"
        assert sensor_state(row, settings, seen + timedelta(seconds=601)) == "silent"


def test_a_heartbeat_from_an_older_sensor_stores_flows_unparsed_0(engine: Engine) -> None:
    sid = sensor(engine, "s1")
    hb = {"at": "2026-01-05T10:00:00Z", "version": "0.0.9", "packets": 5}  # no flows_unparsed
    assert ingest(engine, sid, small_batch("s1", heartbeat=hb)).status == "stored"
    with Session(engine) as s:
        row = s.get(Sensor, sid)
        assert row is not None and (row.packets, row.flows_unparsed) == (5, 0)
        assert s.scalars(select(HeartbeatRecord.flows_unparsed)).all() == [0]


def test_a_newer_or_missing_schema_is_refused(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(SchemaError, match="newer than this medtap"):
        check_schema(engine)
    with pytest.raises(SchemaError, match="newer than this medtap"):
        upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    with pytest.raises(SchemaError, match="medtap collector migrate"):
        check_schema(engine)


def test_a_0001_database_upgrades_to_head_keeping_its_rows(kind: str, tmp_path: Path) -> None:
    """A collector database written before flows_unparsed (0001) with a sensor, its token and
    a heartbeat in it: ``migrate`` adds the column (0 for old rows), keeps every row, and
    going back down to 0001 keeps them too (no table rebuild cascading through the keys)."""
    at = datetime(2026, 1, 5, 10, tzinfo=UTC).replace(tzinfo=None)
    counters = ("packets", "bytes", "kernel_drops", "malformed", "flows_evicted")
    with migrated_engine(kind, tmp_path, revision="0001") as eng:
        with pytest.raises(SchemaError, match="at revision 0001.*medtap collector migrate"):
            check_schema(eng)  # serve refuses it until it is migrated
        with eng.begin() as conn:  # the tables as 0001 made them, not today's models
            old = MetaData()
            tables = {n: Table(n, old, autoload_with=conn) for n in TABLES_0001}
            assert "flows_unparsed" not in tables["sensor"].c
            sid = conn.execute(
                insert(tables["sensor"])
                .values(name="old-span", created_at=at, batches=3, uptime_seconds=1.5)
                .values({c: 1234 for c in counters})
                .values(parser_errors=7, spool_depth=2, spool_dropped=5)
                .returning(tables["sensor"].c.id)
            ).scalar_one()
            conn.execute(
                insert(tables["api_token"]).values(
                    token_hash="a" * 64, kind="sensor", sensor_id=sid, created_at=at
                )
            )
            conn.execute(
                insert(tables["heartbeat"]).values(
                    sensor_id=sid, received_at=at, at=at, packets=1234, kernel_drops=0,
                    malformed=0, parser_errors=7, flows_evicted=0, spool_depth=2,
                    spool_dropped=5,
                )
            )  # fmt: skip
        before = {n: _count(eng, n) for n in TABLES_0001}

        upgrade(eng)
        assert check_schema(eng) == head_revision()
        with eng.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert {n: _count(eng, n) for n in TABLES_0001} == before
        with Session(eng) as s:
            row = s.get(Sensor, sid)
            assert row is not None and row.name == "old-span"
            assert (row.packets, row.parser_errors, row.spool_dropped) == (1234, 7, 5)
            assert row.flows_unparsed == 0
            assert s.scalars(select(HeartbeatRecord.flows_unparsed)).all() == [0]
        hb = {"at": "2026-01-05T11:00:00Z", "version": "0.2.0", "flows_unparsed": 9}
        assert ingest(eng, sid, small_batch("old-span", heartbeat=hb)).status == "stored"
        with Session(eng) as s:
            row = s.get(Sensor, sid)
            assert row is not None and (row.flows_unparsed, row.batches) == (9, 4)

        cfg = alembic_config()
        with eng.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")
        with eng.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == "0001"
            for name in ("sensor", "heartbeat"):
                assert "flows_unparsed" not in {c["name"] for c in inspect(conn).get_columns(name)}
        after = dict(before, heartbeat=before["heartbeat"] + 1, ingested_batch=1)
        assert {n: _count(eng, n) for n in TABLES_0001} == after


TABLES_0001 = ("sensor", "api_token", "heartbeat", "ingested_batch")


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
