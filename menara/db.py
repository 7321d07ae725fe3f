"""Database setup: create the database, apply versioned migrations, pick the engine.

Migrations are the ``menara/migrations/NNNN_name.sql`` files, applied in order, each
in its own transaction together with its ``schema_version`` row, under a session
advisory lock so that several services starting at once apply each one exactly once.
The engine step runs after them on every upgrade: TimescaleDB (hypertable,
compression, retention) when the extension can be created, otherwise plain tables
and a ``time_bucket`` shim, so the same SQL runs on both; then the position summary
(``menara.position_summary``) as the engine's kind of aggregate.
"""

from __future__ import annotations

import getpass
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from menara import position_summary

if TYPE_CHECKING:
    from menara.settings import Settings

__all__ = [
    "DatabaseError",
    "DatabaseUnavailable",
    "Migration",
    "UpgradeResult",
    "connect",
    "ensure_database",
    "migrations",
    "status",
    "upgrade",
]

log = logging.getLogger(__name__)

_LOCK_KEY = 0x6D656E617261  # "menara": serialises concurrent upgrades of one database
_MIGRATION_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")

# TimescaleDB's time_bucket() aligns buckets shorter than a month to Monday
# 2000-01-03 00:00 UTC and month/year buckets to 2000-01-01 (see the time_bucket and
# time_bucket_ng pages of the TimescaleDB docs); date_bin() has no month buckets, so
# the shim does those by counting months. Both stay inlinable SQL functions.
_SHIM_SQL = """
CREATE OR REPLACE FUNCTION time_bucket(bucket_width interval, ts timestamptz)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN date_part('year', bucket_width) = 0 AND date_part('month', bucket_width) = 0
      THEN date_bin(bucket_width, ts, timestamptz '2000-01-03 00:00:00+00')
    WHEN bucket_width <> make_interval(months => (date_part('year', bucket_width) * 12
                                      + date_part('month', bucket_width))::int)
      THEN date_bin(bucket_width, ts, timestamptz '2000-01-01 00:00:00+00')  -- raises
    ELSE (timestamp '2000-01-01' + make_interval(months => (floor(
            ((date_part('year', ts AT TIME ZONE 'UTC') - 2000) * 12
             + date_part('month', ts AT TIME ZONE 'UTC') - 1)
            / (date_part('year', bucket_width) * 12 + date_part('month', bucket_width)))
          * (date_part('year', bucket_width) * 12 + date_part('month', bucket_width)))::int))
         AT TIME ZONE 'UTC'
  END
$$;
CREATE OR REPLACE FUNCTION time_bucket(bucket_width interval, ts timestamp)
RETURNS timestamp LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN date_part('year', bucket_width) = 0 AND date_part('month', bucket_width) = 0
      THEN date_bin(bucket_width, ts, timestamp '2000-01-03 00:00:00')
    WHEN bucket_width <> make_interval(months => (date_part('year', bucket_width) * 12
                                      + date_part('month', bucket_width))::int)
      THEN date_bin(bucket_width, ts, timestamp '2000-01-01 00:00:00')  -- raises
    ELSE timestamp '2000-01-01' + make_interval(months => (floor(
            ((date_part('year', ts) - 2000) * 12 + date_part('month', ts) - 1)
            / (date_part('year', bucket_width) * 12 + date_part('month', bucket_width)))
          * (date_part('year', bucket_width) * 12 + date_part('month', bucket_width)))::int)
  END
$$;
"""


class DatabaseError(RuntimeError):
    """Root of database setup errors; the message says what to do."""


class DatabaseUnavailable(DatabaseError):
    """The server (or the database) cannot be reached."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One ``NNNN_name.sql`` file."""

    version: int
    name: str
    sql: str


@dataclass(frozen=True, slots=True)
class UpgradeResult:
    """What ``upgrade`` did: versions applied now, the version reached, the engine."""

    applied: tuple[int, ...]
    version: int
    timescaledb: bool


def _where(dsn: str) -> str:
    p = conninfo_to_dict(dsn)
    return f"{p.get('host') or 'localhost'}:{p.get('port') or 5432}"


def connect(dsn: str, *, autocommit: bool = True) -> psycopg.Connection[tuple[Any, ...]]:
    """A connection, or ``DatabaseUnavailable`` with what to do about it."""
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if "does not exist" in reason:
            raise DatabaseUnavailable(
                f"{reason} — create it with `menara db upgrade` (ensure_database)"
                " or fix MENARA_DB_DSN"
            ) from exc
        raise DatabaseUnavailable(
            f"PostgreSQL not reachable at {_where(dsn)} ({reason}) — start it"
            " (pg_ctlcluster 15 main start) or set MENARA_DB_DSN"
        ) from exc


def ensure_database(dsn: str) -> bool:
    """Create the database named in ``dsn`` if missing; True when this call created it."""
    params = conninfo_to_dict(dsn)
    name = str(params.get("dbname") or params.get("user") or getpass.getuser())
    with connect(make_conninfo(dsn, dbname="postgres")) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except (errors.DuplicateDatabase, errors.UniqueViolation):
            return False  # another process created it between our check and our CREATE
        log.info("created database %s", name)
        return True


def migrations() -> list[Migration]:
    """The packaged migrations, in version order; a gap or duplicate is a packaging bug."""
    found: list[Migration] = []
    for entry in resources.files("menara").joinpath("migrations").iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            found.append(Migration(int(m[1]), m[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    if [mig.version for mig in found] != list(range(1, len(found) + 1)):
        raise DatabaseError(f"migrations must be numbered 1..n: {[m.version for m in found]}")
    return found


def ready(cfg: Settings) -> tuple[bool, UpgradeResult]:
    """``cfg``'s database created when missing and migrated with its engine settings
    (every command that touches the database starts here): (created, result)."""
    created = ensure_database(cfg.db_dsn)
    res = upgrade(
        cfg.db_dsn,
        timescale=cfg.timescale,
        compress_after=cfg.compress_after,
        retention=cfg.retention,
    )
    return created, res


def upgrade(
    dsn: str, *, timescale: str = "auto", compress_after: str = "7 days", retention: str = ""
) -> UpgradeResult:
    """Apply missing migrations and the engine step; idempotent and safe to run concurrently."""
    if timescale not in ("auto", "on", "off"):
        raise ValueError(f"timescale must be auto, on or off, not {timescale!r}")
    with connect(dsn) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version int PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {v for (v,) in conn.execute("SELECT version FROM schema_version")}
            applied: list[int] = []
            for mig in migrations():
                if mig.version in done:
                    continue
                with conn.transaction():
                    conn.execute(mig.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_version (version, name) VALUES (%s, %s)",
                        (mig.version, mig.name),
                    )
                log.info("applied migration %04d_%s", mig.version, mig.name)
                applied.append(mig.version)
            with conn.transaction():
                ts = _engine(conn, timescale, compress_after, retention)
            row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return UpgradeResult(tuple(applied), int(row[0]) if row else 0, ts)


def _engine(
    conn: psycopg.Connection[tuple[Any, ...]], timescale: str, compress_after: str, retention: str
) -> bool:
    """Set up TimescaleDB objects or the plain-PostgreSQL shim; record the engine used."""
    installed = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    use_ts = installed is not None or (timescale != "off" and _create_timescale(conn))
    if timescale == "on" and not use_ts:
        raise DatabaseError(
            "timescale=on but the timescaledb extension cannot be created on this server:"
            " install TimescaleDB (and add it to shared_preload_libraries) or set"
            " MENARA_TIMESCALE=auto to use plain PostgreSQL"
        )
    if use_ts:
        _timescale_objects(conn, compress_after, retention)
    else:
        conn.execute(_SHIM_SQL.encode())
    position_summary.create(conn, timescaledb=use_ts)
    conn.execute(
        "INSERT INTO menara_meta (key, value) VALUES ('engine', %s)"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        ("timescaledb" if use_ts else "postgresql",),
    )
    return use_ts


def _create_timescale(conn: psycopg.Connection[tuple[Any, ...]]) -> bool:
    """Try the extension in a savepoint; the shim goes first as it would clash with it."""
    if not conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone():
        return False
    try:
        with conn.transaction():
            conn.execute("DROP FUNCTION IF EXISTS time_bucket(interval, timestamptz)")
            conn.execute("DROP FUNCTION IF EXISTS time_bucket(interval, timestamp)")
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as exc:
        log.warning("timescaledb unavailable, using plain PostgreSQL: %s", exc)
        return False
    return True


def _timescale_objects(
    conn: psycopg.Connection[tuple[Any, ...]], compress_after: str, retention: str
) -> None:
    conn.execute(
        "SELECT create_hypertable('positions', 'fix_time',"
        " if_not_exists => TRUE, migrate_data => TRUE)"
    )
    row = conn.execute(
        "SELECT compression_enabled FROM timescaledb_information.hypertables"
        " WHERE hypertable_name = 'positions'"
    ).fetchone()
    if row and not row[0]:
        conn.execute(
            "ALTER TABLE positions SET (timescaledb.compress,"
            " timescaledb.compress_segmentby = 'device_id',"
            " timescaledb.compress_orderby = 'fix_time DESC')"
        )
    conn.execute(
        "SELECT add_compression_policy('positions', %s::interval, if_not_exists => TRUE)",
        (compress_after,),
    )
    if retention:
        conn.execute(
            "SELECT add_retention_policy('positions', %s::interval, if_not_exists => TRUE)",
            (retention,),
        )


def status(dsn: str) -> dict[str, Any]:
    """Schema version, engine and row counts, for the CLI summary."""
    with connect(dsn) as conn:
        if not _has_table(conn, "schema_version"):
            return {"version": 0, "engine": None}
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
        out: dict[str, Any] = {"version": int(row[0]) if row else 0, "engine": None}
        if _has_table(conn, "menara_meta"):
            eng = conn.execute("SELECT value FROM menara_meta WHERE key = 'engine'").fetchone()
            out["engine"] = eng[0] if eng else None
        for table in ("devices", "positions", "dead_letters"):
            if _has_table(conn, table):
                q = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                n = conn.execute(q).fetchone()
                out[table] = int(n[0]) if n else 0
        return out


def _has_table(conn: psycopg.Connection[tuple[Any, ...]], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])
