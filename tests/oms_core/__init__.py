"""Shared seed data for the order core tests: one depot in Amsterdam, two SKUs, a customer.

Round numbers so expected totals are obvious: SKU A is 2 kg / 0.01 m³ at 10.00, SKU B is
0.5 kg / 0.002 m³ at 2.50; the depot holds 10 A and 5 B.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from oms_core.model import LineIn, OrderIn
from oms_core.states import PaymentMethod

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
DEPOT_LAT, DEPOT_LON = 52.3700, 4.9000
OMS_TABLES = "customers, products, depots, vehicles, drivers, files"


@dataclass(frozen=True)
class World:
    """Ids of the seeded rows."""

    dsn: str
    customer_id: int
    depot_id: int


def seed(dsn: str) -> World:
    """Empty the order core tables (and what references them) and seed the basics."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {OMS_TABLES} RESTART IDENTITY CASCADE")
        cust = one(conn, "INSERT INTO customers (name, email) VALUES ('Ada', 'ada@example.org')")
        depot = one(
            conn,
            "INSERT INTO depots (name, lat, lon, time_zone) VALUES ('AMS', %s, %s,"
            " 'Europe/Amsterdam')",
            (DEPOT_LAT, DEPOT_LON),
        )
        conn.execute(
            "INSERT INTO products (sku, unit_weight_kg, unit_volume_m3) VALUES"
            " ('A', 2, 0.01), ('B', 0.5, 0.002)"
        )
        conn.execute(
            "INSERT INTO stock (depot_id, sku, on_hand) VALUES (%s, 'A', 10), (%s, 'B', 5)",
            (depot, depot),
        )
    return World(dsn, cust, depot)


def one(conn: psycopg.Connection[Any], sql: Any, params: tuple[Any, ...] = ()) -> int:
    """Run an INSERT and return the id it made."""
    row = conn.execute(sql + " RETURNING id", params).fetchone()
    assert row is not None
    return int(row[0])


def order_in(w: World, **changes: Any) -> OrderIn:
    """A valid order: 3 A + 2 B, 2 km from the depot, tomorrow 09–12."""
    fields: dict[str, Any] = {
        "customer_id": w.customer_id,
        "depot_id": w.depot_id,
        "address_text": "Damrak 1, Amsterdam",
        "lat": DEPOT_LAT + 0.018,
        "lon": DEPOT_LON,
        "window_start": NOW + timedelta(days=1, hours=1),
        "window_end": NOW + timedelta(days=1, hours=4),
        "lines": (LineIn("A", 3, Decimal("10.00")), LineIn("B", 2, Decimal("2.50"))),
        "payment_method": PaymentMethod.PREPAID,
    }
    fields.update(changes)
    return OrderIn(**fields)


def stock_of(conn: psycopg.Connection[Any], depot_id: int) -> dict[str, tuple[int, int]]:
    """{sku: (on_hand, reserved)} at the depot."""
    rows = conn.execute(
        "SELECT sku, on_hand, reserved FROM stock WHERE depot_id = %s", (depot_id,)
    ).fetchall()
    return {sku: (on_hand, reserved) for sku, on_hand, reserved in rows}
