"""A dispatched trip to deliver, on the real clock: what the driver app, the ePOD, the
tracking page and the notification tests start from.

Round numbers: the depot in Amsterdam holds 10 A (10.00 each) and 5 B (2.50 each). The
trip has two stops 2 km north and 2 km east of the depot; stop 1 serves order 1
(3 A + 2 B, COD, 35.00) and stop 2 serves order 2 (2 A, prepaid and paid, 20.00). Both
windows run from an hour ago to three hours ahead, so a delivery now is on time. The
van's tracker is ``TRK1``; the driver is Dee, whose token is ``driver_token``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from oms_core import orders, trips
from oms_core.api import Role, create_token, make_app, utc_now
from oms_core.api.context import Execution
from oms_core.api.spec import PREFIX
from oms_core.files import FileStore
from oms_core.model import LineIn
from oms_core.states import OrderState, PaymentState
from tests.oms_core import DEPOT_LAT, DEPOT_LON, one, order_in, seed
from tests.oms_core.test_api import Api, serve, stop

S = OrderState
STOP1 = (DEPOT_LAT + 0.018, DEPOT_LON)  # 2 km north
STOP2 = (DEPOT_LAT, DEPOT_LON + 0.0295)  # 2 km east
TRACKER = "TRK1"


@dataclass(frozen=True)
class TripWorld:
    """Ids of the trip under test, its tokens and the API serving it."""

    api: Api
    trip_id: int
    driver_id: int
    vehicle_id: int
    stop_ids: tuple[int, int]
    order_ids: tuple[int, int]
    tracking: tuple[str, str]  # public tokens of the two orders
    files: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dsn(self) -> str:
        return self.api.world.dsn

    @property
    def driver_token(self) -> str:
        return self.api.tokens[Role.DRIVER]


def build(dsn: str, now: datetime) -> dict[str, Any]:
    """Seed the world and the dispatched trip (no API); returns the ids."""
    world = seed(dsn)
    start, end = now - timedelta(hours=1), now + timedelta(hours=3)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE customers SET phone = '+31 6 1234 5678', notify_prefs = '{\"email\": true}'"
            " WHERE id = %s",
            (world.customer_id,),
        )
        driver = one(conn, "INSERT INTO drivers (name) VALUES ('Dee')")
        vehicle = one(
            conn,
            "INSERT INTO vehicles (plate, capacity_kg, capacity_m3, tracker_device_id)"
            " VALUES ('B 1234 XY', 500, 5, %s)",
            (TRACKER,),
        )
        first = orders.create_order(
            conn,
            order_in(world, window_start=start, window_end=end, lat=STOP1[0], lon=STOP1[1],
                     payment_method="cod", invoice_number="INV-1",
                     instructions="Ring twice; the dog is friendly."),
        )  # fmt: skip
        second = orders.create_order(
            conn,
            order_in(world, window_start=start, window_end=end, lat=STOP2[0], lon=STOP2[1],
                     address_text="Plantage 5, Amsterdam", invoice_number="INV-2",
                     lines=(LineIn("A", 2, Decimal("10.00")),)),
        )  # fmt: skip
        for o in (first, second):
            for state in (S.VERIFIED, S.RESERVED, S.SCHEDULED):
                orders.transition(conn, o.id, state, actor="test")
        orders.set_payment(conn, second.id, PaymentState.PAID, actor="test")
        trip = one(
            conn,
            "INSERT INTO trips (vehicle_id, driver_id, depot_id, day, planned_departure,"
            " planned_return, route_geometry) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (vehicle, driver, world.depot_id, now.date(), now - timedelta(minutes=30),
             now + timedelta(hours=4),
             f"[[{DEPOT_LON}, {DEPOT_LAT}], [{STOP1[1]}, {STOP1[0]}], [{STOP2[1]}, {STOP2[0]}],"
             f" [{DEPOT_LON}, {DEPOT_LAT}]]"),
        )  # fmt: skip
        stops = []
        for seq, (o, (lat, lon)) in enumerate(((first, STOP1), (second, STOP2)), 1):
            arrive = now + timedelta(minutes=20 * seq)
            stop_id = one(
                conn,
                "INSERT INTO stops (trip_id, seq, lat, lon, planned_arrival, planned_departure,"
                " service_time_s, window_start, window_end) VALUES"
                " (%s, %s, %s, %s, %s, %s, 300, %s, %s)",
                (trip, seq, lat, lon, arrive, arrive + timedelta(minutes=5), start, end),
            )
            conn.execute("INSERT INTO stop_orders VALUES (%s, %s)", (stop_id, o.id))
            stops.append(stop_id)
        trips.dispatch_trip(conn, trip, actor="test")
    return {
        "world": world,
        "driver": driver,
        "vehicle": vehicle,
        "trip": trip,
        "stops": tuple(stops),
        "orders": (first.id, second.id),
        "tracking": (first.public_token, second.public_token),
    }


def serve_trip(
    dsn: str, files: Path, *, now: datetime | None = None, **execution: Any
) -> Iterator[TripWorld]:
    """``build`` the trip, then serve the API on the real clock (or ``now``) with a
    token per role (the driver's is Dee's); yields the ``TripWorld``."""
    clock = now or datetime.now(UTC)
    made = build(dsn, clock)
    with psycopg.connect(dsn, autocommit=True) as conn:
        tokens = {
            r: create_token(conn, f"{r}-desk", r, made["driver"] if r == Role.DRIVER else None)
            for r in Role
        }
    ex = replace(Execution(FileStore(files)), **execution)
    with ConnectionPool(dsn, min_size=1, max_size=4, kwargs={"autocommit": True}) as pool:
        served = serve(make_app(pool, now=(lambda: clock) if now else utc_now, execution=ex))
        try:
            yield TripWorld(
                Api(served.url + PREFIX, tokens, made["world"]),
                made["trip"], made["driver"], made["vehicle"], made["stops"], made["orders"],
                made["tracking"], files,
            )  # fmt: skip
        finally:
            stop(served)
