"""Zones drawn by people (restricted areas, speed zones, named areas) in the ``zones`` table.

Geometry is checked by ``geofence.geojson`` before it is stored and kept as the cleaned
GeoJSON; deleting a zone only deactivates it, so alerts that name it still resolve.
``load_zones`` is what the rule worker reads to build its ``ZoneIndex``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from geofence import GeofenceError, Zone, parse_geometry
from geofence.geojson import ZoneSpec
from oms_core.errors import NotFound

__all__ = [
    "ZoneRecord",
    "add_zone",
    "deactivate_zone",
    "get_zone",
    "list_zones",
    "load_zones",
]

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class ZoneRecord:
    """One row of ``zones``; ``geometry`` is GeoJSON (lon/lat)."""

    id: int
    name: str
    kind: str
    geometry: dict[str, Any]
    speed_limit_kmh: float | None
    depot_id: int | None
    active: bool
    created_at: datetime


def add_zone(conn: Conn, spec: ZoneSpec, depot_id: int | None = None) -> ZoneRecord:
    """Store a checked zone; it is active at once."""
    with conn.cursor(row_factory=class_row(ZoneRecord)) as cur:
        row = cur.execute(
            "INSERT INTO zones (name, kind, geometry, speed_limit_kmh, depot_id)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING *",
            (spec.name, spec.kind, Jsonb(spec.geojson), spec.speed_limit_kmh, depot_id),
        ).fetchone()
    assert row is not None
    return row


def get_zone(conn: Conn, zone_id: int) -> ZoneRecord:
    """The zone, active or not; ``NotFound`` if there is none."""
    with conn.cursor(row_factory=class_row(ZoneRecord)) as cur:
        row = cur.execute("SELECT * FROM zones WHERE id = %s", (zone_id,)).fetchone()
    if row is None:
        raise NotFound(f"no zone {zone_id}")
    return row


def list_zones(
    conn: Conn,
    *,
    kind: str | None = None,
    active: bool | None = None,
    depot_id: int | None = None,
    limit: int = 50,
    cursor: int | None = None,
) -> tuple[list[ZoneRecord], str | None]:
    """Zones newest first, ``limit`` at a time, and the cursor of the next page (None: last).

    Keyset paging on the id, as orders are paged: a page never repeats or skips a zone
    when zones are added meanwhile.
    """
    with conn.cursor(row_factory=class_row(ZoneRecord)) as cur:
        rows = cur.execute(
            "SELECT * FROM zones WHERE (%(c)s::bigint IS NULL OR id < %(c)s)"
            " AND (%(k)s::text IS NULL OR kind = %(k)s)"
            " AND (%(a)s::boolean IS NULL OR active = %(a)s)"
            " AND (%(d)s::bigint IS NULL OR depot_id = %(d)s)"
            " ORDER BY id DESC LIMIT %(n)s",
            {
                "c": None if cursor is None else min(cursor, MAX_ID),
                "k": kind,
                "a": active,
                "d": depot_id,
                "n": limit + 1,
            },
        ).fetchall()
    more = len(rows) > limit
    page = rows[:limit]
    return page, str(page[-1].id) if more else None


def deactivate_zone(conn: Conn, zone_id: int) -> ZoneRecord:
    """Switch the zone off (the rules stop seeing it on their next reload); idempotent."""
    with conn.cursor(row_factory=class_row(ZoneRecord)) as cur:
        row = cur.execute(
            "UPDATE zones SET active = false WHERE id = %s RETURNING *", (zone_id,)
        ).fetchone()
    if row is None:
        raise NotFound(f"no zone {zone_id}")
    return row


def load_zones(conn: Conn) -> list[Zone]:
    """Every active zone as the rules see it, ids as text. A stored geometry that no longer
    parses (written around the API) is logged and left out rather than stopping the rules."""
    rows = conn.execute(
        "SELECT id, name, kind, geometry, speed_limit_kmh FROM zones WHERE active ORDER BY id"
    ).fetchall()
    zones = []
    for zid, name, kind, geometry, limit in rows:
        try:
            geom, _ = parse_geometry(geometry)
        except GeofenceError as exc:
            log.warning("zone %s left out: %s", zid, exc)
            continue
        zones.append(Zone(str(zid), name, kind, geom, None if limit is None else float(limit)))
    return zones
