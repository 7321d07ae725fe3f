"""Binary COPY payloads, the staging SQL and the transaction of the writer.

Fixes are loaded into a temporary staging table whose columns are all fixed-width,
so the whole PGCOPY payload is one numpy structured array (big-endian, field
count and lengths included) turned into bytes in one go: no Python loop per row.
Unknown values travel as the dtype's own NaN / -1 and become NULL in the
``INSERT ... SELECT`` that moves the rows into ``positions``; the variable-width
columns (device, transport, protocol) sit in a small table of the flush's distinct
sources joined on its index, and per-fix attributes in a third table joined on the
row number, only when a flush carries any.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import psycopg

from decoders.model import FIX_DTYPE, FixArray
from ingest.model import Batch, DeadLetter

Conn = psycopg.Connection[tuple[Any, ...]]

PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
PGCOPY_TRAILER = struct.pack("!h", -1)
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 minus 1970-01-01, in microseconds
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# (staging column, SQL type, big-endian numpy type), in COPY order
_FIX_COLUMNS = (
    ("s", "int4", ">i4"),
    ("n", "int4", ">i4"),
    ("fix_time", "timestamptz", ">i8"),
    ("received_time", "timestamptz", ">i8"),
    ("lat", "float8", ">f8"),
    ("lon", "float8", ">f8"),
    ("speed_kmh", "float4", ">f4"),
    ("course_deg", "float4", ">f4"),
    ("altitude_m", "float4", ">f4"),
    ("satellites", "int2", ">i2"),
    ("hdop", "float4", ">f4"),
    ("valid", "bool", "u1"),
    ("ignition", "int2", ">i2"),
    ("odometer_m", "float8", ">f8"),
)
_ROW_DTYPE = np.dtype(
    [("nfields", ">i2")]
    + [f for name, _, typ in _FIX_COLUMNS for f in ((f"{name}_len", ">i4"), (name, typ))]
)
_TEMPLATE = np.zeros(1, _ROW_DTYPE)
_TEMPLATE["nfields"] = len(_FIX_COLUMNS)
for _name, _, _typ in _FIX_COLUMNS:
    _TEMPLATE[f"{_name}_len"] = np.dtype(_typ).itemsize

STAGING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS menara_stage_fix ("
    + ", ".join(f"{name} {sqltype}" for name, sqltype, _ in _FIX_COLUMNS)
    + ") ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS menara_stage_source (s int4, device_id text,"
    " transport text, protocol text) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS menara_stage_attr (n int4, attributes jsonb)"
    " ON COMMIT DELETE ROWS",
)
COPY_FIX = "COPY menara_stage_fix FROM STDIN (FORMAT BINARY)"
COPY_SOURCE = (
    "COPY menara_stage_source (s, device_id, transport, protocol) FROM STDIN (FORMAT BINARY)"
)
SOURCE_TYPES = ("int4", "text", "text", "text")
COPY_ATTR = "COPY menara_stage_attr (n, attributes) FROM STDIN (FORMAT BINARY)"
ATTR_TYPES = ("int4", "jsonb")
COPY_DEAD = (
    "COPY dead_letters (received_time, transport, protocol, peer, device_id, reason, detail, raw)"
    " FROM STDIN (FORMAT BINARY)"
)
DEAD_TYPES = ("timestamptz", "text", "text", "text", "text", "text", "text", "bytea")
# Registers unknown devices (``new``) and binds registered ones that have no protocol yet,
# each to its first stored fix's protocol; returns every one of them that now has a
# protocol, with it (the final SELECT sees ``devices`` as it was before this statement).
REGISTER = """
WITH w AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::bool[]) AS w(device_id, protocol, new)),
ins AS (
  INSERT INTO devices (device_id, protocol) SELECT device_id, protocol FROM w WHERE new
  ON CONFLICT (device_id) DO UPDATE SET protocol = excluded.protocol
  WHERE devices.protocol IS NULL
  RETURNING device_id, protocol),
upd AS (
  UPDATE devices d SET protocol = w.protocol FROM w
  WHERE NOT w.new AND d.device_id = w.device_id AND d.protocol IS NULL
  RETURNING d.device_id, d.protocol)
SELECT w.device_id, coalesce(i.protocol, u.protocol, d.protocol) AS protocol
FROM w LEFT JOIN ins i USING (device_id) LEFT JOIN upd u USING (device_id)
       LEFT JOIN devices d USING (device_id)
WHERE coalesce(i.protocol, u.protocol, d.protocol) IS NOT NULL"""

_INSERT = """
INSERT INTO positions (device_id, fix_time, received_time, lat, lon, speed_kmh, course_deg,
                       altitude_m, satellites, hdop, valid, ignition, odometer_m, attributes,
                       transport, protocol)
SELECT s.device_id, f.fix_time, f.received_time, f.lat, f.lon,
       nullif(f.speed_kmh, 'NaN') AS speed_kmh, nullif(f.course_deg, 'NaN') AS course_deg,
       nullif(f.altitude_m, 'NaN') AS altitude_m,
       CASE WHEN f.satellites >= 0 THEN f.satellites END AS satellites,
       nullif(f.hdop, 'NaN') AS hdop, f.valid,
       CASE WHEN f.ignition >= 0 THEN f.ignition <> 0 END AS ignition,
       nullif(f.odometer_m, 'NaN') AS odometer_m,
       {attributes} AS attributes, s.transport, s.protocol
FROM menara_stage_fix f JOIN menara_stage_source s USING (s) {join}"""


_FILLABLE = (
    "speed_kmh",
    "course_deg",
    "altitude_m",
    "satellites",
    "hdop",
    "ignition",
    "odometer_m",
)  # columns one sentence of an epoch may lack and a later one may carry

_MERGE = """
WITH src AS ({select}),
grp AS (
  SELECT device_id, fix_time, min(received_time) AS received_time,
         (array_agg(lat ORDER BY n))[1] AS lat, (array_agg(lon ORDER BY n))[1] AS lon,
         {firsts}, bool_and(valid) AS valid,
         (array_agg(attributes ORDER BY n) FILTER (WHERE attributes IS NOT NULL))[1] AS attributes,
         (array_agg(transport ORDER BY n))[1] AS transport,
         (array_agg(protocol ORDER BY n))[1] AS protocol
  FROM src GROUP BY device_id, fix_time),
ins AS (
  INSERT INTO positions ({columns}) SELECT {columns} FROM grp
  ON CONFLICT (device_id, fix_time) DO UPDATE SET {sets}
  WHERE positions.protocol IS DISTINCT FROM excluded.protocol OR {missing}
  RETURNING transport, xmax = 0 AS inserted)
SELECT transport, inserted, count(*) FROM ins GROUP BY 1, 2"""

_COLUMNS = (
    "device_id, fix_time, received_time, lat, lon, speed_kmh, course_deg, altitude_m,"
    " satellites, hdop, valid, ignition, odometer_m, attributes, transport, protocol"
)
# A stored row's columns after a merge with a fix of the same protocol; a row of another
# protocol (another transport's claim on the device, say an impersonator's) is replaced.
_SAME_PROTOCOL = {
    **{c: f"coalesce(positions.{c}, excluded.{c})" for c in _FILLABLE},
    "valid": "positions.valid AND excluded.valid",
    "attributes": "coalesce(positions.attributes, excluded.attributes)",
    **{c: f"positions.{c}" for c in ("received_time", "lat", "lon", "transport", "protocol")},
}


def insert_sql(*, attributes: bool) -> tuple[str, str]:
    """(fast, merging) statements moving the staged fixes into ``positions``.

    The fast one is a plain INSERT: ON CONFLICT costs about half again as much per row
    and a flush rarely holds a stored fix, so the writer tries it first in a savepoint
    and runs the merging one only after a unique violation. That one folds fixes with
    the same (device, fix time) into one row, first value winning, and fills columns a
    stored row lacks (an RMC and its GGA that arrived in different packets or messages
    become one row, as they would have in one packet); an exact resend changes nothing.
    A stored row of another protocol is not the device's own (ingest binds a device to
    one protocol): it is replaced whole, so it can neither block nor blend into the
    device's fix. It returns (transport, inserted, rows): inserted false means merged
    into, or replaced, a stored row.
    """
    plain = _INSERT.format(
        attributes="a.attributes" if attributes else "NULL::jsonb",
        join="LEFT JOIN menara_stage_attr a USING (n)" if attributes else "",
    )
    select = plain[plain.index("SELECT") :].replace(
        "SELECT s.device_id,", "SELECT f.n, s.device_id,", 1
    )
    merging = _MERGE.format(
        select=select,
        columns=_COLUMNS,
        firsts=",\n         ".join(
            f"(array_agg({c} ORDER BY n) FILTER (WHERE {c} IS NOT NULL))[1] AS {c}"
            for c in _FILLABLE
        ),
        sets=",\n    ".join(
            f"{c} = CASE WHEN positions.protocol IS DISTINCT FROM excluded.protocol"
            f" THEN excluded.{c} ELSE {same} END"
            for c, same in _SAME_PROTOCOL.items()
        ),
        missing=" OR ".join(
            f"(positions.{c} IS NULL AND excluded.{c} IS NOT NULL)" for c in _FILLABLE
        ),
    )
    return plain, merging


def encode_fixes(
    parts: Sequence[FixArray], source: Sequence[int], received_us: Sequence[int]
) -> bytes:
    """One PGCOPY payload for ``menara_stage_fix``; part ``i`` comes from ``source[i]``."""
    for p in parts:
        if p.dtype != FIX_DTYPE:
            raise TypeError(f"fixes must have FIX_DTYPE, not {p.dtype}")
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    # joining bytes is ~40x faster than np.concatenate over thousands of tiny arrays
    fixes = np.frombuffer(b"".join(p.tobytes() for p in parts), dtype=FIX_DTYPE)
    rows = np.repeat(_TEMPLATE, len(fixes))
    rows["s"] = np.repeat(np.asarray(source, dtype=np.int32), lengths)
    rows["n"] = np.arange(len(fixes), dtype=np.int32)
    rows["fix_time"] = fixes["fix_time_us"] - PG_EPOCH_US
    rows["received_time"] = np.repeat(
        np.asarray(received_us, dtype=np.int64) - PG_EPOCH_US, lengths
    )
    for name in ("lat", "lon", "speed_kmh", "course_deg", "altitude_m", "satellites", "hdop"):
        rows[name] = fixes[name]
    rows["valid"] = fixes["valid"]
    rows["ignition"] = fixes["ignition"]
    rows["odometer_m"] = fixes["odometer_m"]
    return PGCOPY_HEADER + rows.tobytes() + PGCOPY_TRAILER


def letter_row(d: DeadLetter) -> tuple[Any, ...]:
    """A ``COPY_DEAD`` row (dead letters are few: ``write_row`` is fast enough)."""
    received = _UNIX_EPOCH + timedelta(microseconds=d.received_us)
    return (received, d.transport, d.protocol, d.peer, d.device_id, d.code, d.detail, d.raw)


class Written(NamedTuple):
    """What one committed write did, for the writer's counters and callbacks."""

    outcome: Counter[tuple[str, bool]]  # rows per (transport, inserted-not-merged)
    letters: int
    bound: list[tuple[str, str]]  # (device, protocol) newly registered or bound


def write(conn: Conn, batches: Sequence[Batch]) -> Written:
    """One transaction, run on a worker thread: its round trips (COPYs, insert, commit)
    then never wait for a pass of the busy event loop, which cost up to 270 ms a commit
    at 10,000 packets a second."""
    with_fixes = [b for b in batches if len(b.fixes)]
    letters = [d for b in batches for d in b.dead_letters]
    # the first batch's protocol binds a device (claims make a second one rare)
    register = {  # device: (protocol, new)
        b.device_id: (b.protocol, b.register_device)
        for b in reversed(with_fixes)
        if b.register_device or b.bind_device
    }
    bound: list[tuple[str, str]] = []
    outcome: Counter[tuple[str, bool]] = Counter()
    with conn.cursor() as cur:
        if with_fixes:
            outcome = _write_fixes(cur, with_fixes)
        if letters:
            with cur.copy(COPY_DEAD) as cp:
                cp.set_types(DEAD_TYPES)
                for d in letters:
                    cp.write_row(letter_row(d))
        if register:
            protocols, new = zip(*register.values(), strict=True)
            cur.execute(REGISTER, (list(register), list(protocols), list(new)))
            bound = [(str(d), str(p)) for d, p in cur.fetchall()]
    conn.commit()
    return Written(outcome, len(letters), bound)


def _write_fixes(
    cur: psycopg.Cursor[tuple[Any, ...]], batches: Sequence[Batch]
) -> Counter[tuple[str, bool]]:
    """Stage and insert the fixes; returns rows per (transport, inserted-not-merged)."""
    sources: dict[tuple[str, str, str], int] = {}
    index = [
        sources.setdefault((b.device_id, b.transport, b.protocol), len(sources)) for b in batches
    ]
    with cur.copy(COPY_SOURCE) as cp:
        cp.set_types(SOURCE_TYPES)
        for key, i in sources.items():
            cp.write_row((i, *key))
    payload = encode_fixes([b.fixes for b in batches], index, [b.received_us for b in batches])
    with cur.copy(COPY_FIX) as cp:
        cp.write(payload)
    attrs = [b for b in batches if b.attributes]
    if attrs:
        with cur.copy(COPY_ATTR) as cp:
            cp.set_types(ATTR_TYPES)
            n = 0
            for b in batches:
                if b.attributes:  # one dict per fix, or a ValueError: refused content
                    for k, a in zip(range(n, n + len(b.fixes)), b.attributes, strict=True):
                        if a:
                            cp.write_row((k, a))
                n += len(b.fixes)
    fast, merging = insert_sql(attributes=bool(attrs))
    try:
        with cur.connection.transaction():  # a savepoint: a duplicate undoes only this
            cur.execute(fast)
    except psycopg.errors.UniqueViolation:
        cur.execute(merging)
        return Counter({(str(t), bool(i)): int(c) for t, i, c in cur.fetchall()})
    sent = Counter[tuple[str, bool]]()
    for b in batches:
        sent[b.transport, True] += len(b.fixes)
    return sent
