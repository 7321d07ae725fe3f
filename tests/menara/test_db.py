"""Database setup against the real server: migrations, concurrency, the time_bucket shim."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from menara import db
from tests.conftest import ADMIN_DSN
from tests.ports import free_port

pytestmark = pytest.mark.db


def _dsn_for(name: str) -> str:
    return ADMIN_DSN.rpartition("/")[0] + "/" + name


@pytest.fixture
def fresh_dsn() -> Iterator[str]:
    """The DSN of a database that does not exist yet; dropped afterwards."""
    name = f"menara_test_fresh_{uuid.uuid4().hex[:8]}"
    yield _dsn_for(name)
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _schema(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT 'v', version::text, name FROM schema_version"
            " UNION ALL SELECT 'c', table_name::text, column_name::text"
            "   FROM information_schema.columns WHERE table_schema = 'public'"
            " UNION ALL SELECT 'i', indexname::text, indexdef FROM pg_indexes"
            "   WHERE schemaname = 'public'"
            " UNION ALL SELECT 'f', p.oid::regprocedure::text, '' FROM pg_proc p"
            "   WHERE p.proname = 'time_bucket'"
            " ORDER BY 1, 2, 3"
        ).fetchall()


def test_upgrade_twice_changes_nothing(db_dsn: str) -> None:
    before = _schema(db_dsn)
    result = db.upgrade(db_dsn)
    latest = len(db.migrations())
    assert result == db.UpgradeResult(applied=(), version=latest, timescaledb=False)
    assert _schema(db_dsn) == before
    assert ("v", "1", "initial") in before


def test_concurrent_upgrade_of_a_fresh_database(fresh_dsn: str) -> None:
    created: list[bool] = []
    results: list[db.UpgradeResult] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker() -> None:
        try:
            start.wait()
            created.append(db.ensure_database(fresh_dsn))
            results.append(db.upgrade(fresh_dsn))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(created) == [False, False, False, True]
    every = tuple(m.version for m in db.migrations())
    assert sorted(r.applied for r in results) == [(), (), (), every]
    assert {r.version for r in results} == {every[-1]}
    with psycopg.connect(fresh_dsn) as conn:
        rows = conn.execute("SELECT version, name FROM schema_version ORDER BY 1").fetchall()
    assert rows == [(m.version, m.name) for m in db.migrations()]
    assert rows[:2] == [(1, "initial"), (2, "oms")]


def test_ensure_database_is_false_when_present(db_dsn: str) -> None:
    assert db.ensure_database(db_dsn) is False


def test_unreachable_server_says_what_to_do() -> None:
    port = free_port()
    with pytest.raises(db.DatabaseUnavailable) as info:
        db.ensure_database(f"postgresql://postgres@127.0.0.1:{port}/menara")
    msg = str(info.value)
    assert f"not reachable at 127.0.0.1:{port}" in msg
    assert "pg_ctlcluster" in msg and "MENARA_DB_DSN" in msg


def test_missing_database_says_what_to_do() -> None:
    with pytest.raises(db.DatabaseUnavailable, match=r"does not exist.*ensure_database"):
        db.status(_dsn_for(f"menara_missing_{uuid.uuid4().hex[:8]}"))


def test_timescale_on_without_the_extension_is_a_clear_error(fresh_dsn: str) -> None:
    db.ensure_database(fresh_dsn)
    with psycopg.connect(ADMIN_DSN) as conn:
        if conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone():
            pytest.skip("this server has TimescaleDB")
    with pytest.raises(db.DatabaseError, match=r"timescale=on.*MENARA_TIMESCALE=auto"):
        db.upgrade(fresh_dsn, timescale="on")


def test_status_reports_engine_and_counts(clean_db: str) -> None:
    with psycopg.connect(clean_db) as conn:
        conn.execute("INSERT INTO devices (device_id, protocol) VALUES ('d1', 't55')")
    assert db.status(clean_db) == {
        "version": len(db.migrations()),
        "engine": "postgresql",
        "devices": 1,
        "positions": 0,
        "dead_letters": 0,
    }


def test_positions_refuse_out_of_range_coordinates(clean_db: str) -> None:
    with psycopg.connect(clean_db) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO positions (device_id, fix_time, received_time, lat, lon, valid,"
            " transport, protocol) VALUES ('d', now(), now(), 91, 0, true, 'tcp', 't55')"
        )


def _utc(s: str) -> datetime:
    return datetime.fromisoformat(s).astimezone(UTC)


# Expected values worked out by hand from TimescaleDB's documented rules:
# "Buckets are aligned to start at midnight in UTC+0" (time_bucket() API reference,
# https://docs.timescale.com/api/latest/hyperfunctions/time_bucket/) and "time_bucket()
# uses an origin date of January 3, 2000, for buckets shorter than a month" while
# month buckets start from January 1, 2000 (time_bucket_ng() page,
# https://docs.timescale.com/api/latest/hyperfunctions/time_bucket_ng/).
# The session time zone is Asia/Kolkata (+05:30) so that a bucket aligned to local
# midnight instead of UTC midnight would show. The same table passes against a real
# TimescaleDB (2.23-dev in PGlite) in test_timescaledb_engine below.
BUCKETS = [
    ("5 minutes", "2024-03-15T10:07:31+00:00", "2024-03-15T10:05:00+00:00"),
    ("5 minutes", "2024-03-15T10:05:00+00:00", "2024-03-15T10:05:00+00:00"),
    ("5 minutes", "1999-12-31T23:58:00+00:00", "1999-12-31T23:55:00+00:00"),
    ("1 hour", "2024-03-15T10:59:59.999999+00:00", "2024-03-15T10:00:00+00:00"),
    ("1 hour", "2024-03-15T10:07:00+05:30", "2024-03-15T04:00:00+00:00"),
    ("1 day", "2024-03-15T02:00:00+05:30", "2024-03-14T00:00:00+00:00"),
    ("1 day", "2024-03-15T23:59:00+00:00", "2024-03-15T00:00:00+00:00"),
    ("1 week", "2024-03-15T12:00:00+00:00", "2024-03-11T00:00:00+00:00"),  # a Monday
    ("90 minutes", "2000-01-03T01:31:00+00:00", "2000-01-03T01:30:00+00:00"),
    ("1 month", "2024-03-15T12:00:00+00:00", "2024-03-01T00:00:00+00:00"),
    ("3 months", "2024-05-15T12:00:00+00:00", "2024-04-01T00:00:00+00:00"),
]


@pytest.mark.parametrize(("width", "ts", "expected"), BUCKETS)
def test_time_bucket_matches_timescaledb(db_dsn: str, width: str, ts: str, expected: str) -> None:
    with psycopg.connect(db_dsn) as conn:
        conn.execute("SET TIME ZONE 'Asia/Kolkata'")
        tz = conn.execute("SELECT time_bucket(%s::interval, %s::timestamptz)", (width, ts))
        naive = conn.execute(
            "SELECT time_bucket(%s::interval, %s::timestamp)",
            (width, _utc(ts).replace(tzinfo=None)),
        )
        assert tz.fetchone() == (_utc(expected),)
        assert naive.fetchone() == (_utc(expected).replace(tzinfo=None),)


def test_time_bucket_refuses_mixed_month_and_day_widths(db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as conn, pytest.raises(psycopg.errors.FeatureNotSupported):
        conn.execute("SELECT time_bucket('1 month 1 day', now())")


def test_time_bucket_is_inlined_for_index_use(db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as conn:
        plan = conn.execute(
            "EXPLAIN VERBOSE SELECT time_bucket('5 minutes', fix_time) FROM positions"
        ).fetchall()
    assert "date_bin" in str(plan)


TIMESCALE_DSN = os.environ.get("MENARA_TEST_TIMESCALE_DSN", "")


@pytest.mark.skipif(not TIMESCALE_DSN, reason="set MENARA_TEST_TIMESCALE_DSN (PGlite+TimescaleDB)")
def test_timescaledb_engine() -> None:
    """Hypertable, compression and policies on a real TimescaleDB; its time_bucket agrees."""
    first = db.upgrade(TIMESCALE_DSN, timescale="on", retention="90 days")
    again = db.upgrade(TIMESCALE_DSN, timescale="on", retention="90 days")
    assert first.timescaledb and again == db.UpgradeResult((), len(db.migrations()), True)
    assert db.status(TIMESCALE_DSN)["engine"] == "timescaledb"
    with psycopg.connect(TIMESCALE_DSN, autocommit=True, prepare_threshold=None) as conn:
        assert conn.execute(
            "SELECT compression_enabled FROM timescaledb_information.hypertables"
            " WHERE hypertable_name = 'positions'"
        ).fetchall() == [(True,)]
        jobs = conn.execute(
            "SELECT proc_name FROM timescaledb_information.jobs"
            " WHERE hypertable_name = 'positions' ORDER BY 1"
        ).fetchall()
        assert jobs == [("policy_compression",), ("policy_retention",)]
        for width, ts, expected in BUCKETS:
            got = conn.execute("SELECT time_bucket(%s::interval, %s::timestamptz)", (width, ts))
            assert got.fetchone() == (_utc(expected),), (width, ts)
