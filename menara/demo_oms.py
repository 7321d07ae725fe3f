"""The order side of ``menara demo``: a day of Jakarta deliveries, planned and dispatched.

``seed_and_plan`` makes sure the sample world exists (one depot, ten products with stock,
sixty customers spread over Jakarta, one van and driver per simulated tracker), enters a
day's orders through the order core (create, verify, reserve), plans them into trips
and dispatches every trip, so the simulated fleet can drive the planned routes.

Everything is keyed so a second run changes nothing it does not have to: rows are found
by name, e-mail, tracker id or invoice number before they are created, and a day that
already has trips is not planned again (the order state machine cannot send scheduled
orders back to reserved), its trips are reused.

Orders are verified as of ``ORDER_CUTOFF`` local time on the day, as if the day's orders
had been taken before the vans go out, so the demo works at any hour of the real day.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from oms_core import dispatch, fleet, orders, trips, verify
from oms_core.errors import InvalidOrder
from oms_core.model import LineIn, OrderIn
from oms_core.planning.matrix import MatrixProvider
from oms_core.states import OrderState, PaymentMethod, PaymentState

__all__ = ["JAKARTA", "ORDER_CUTOFF", "PlannedTrip", "demo_day", "seed_and_plan", "today"]

Conn = psycopg.Connection[Any]
Progress = Callable[[str], None]
JAKARTA = ZoneInfo("Asia/Jakarta")
ACTOR = "demo"
DEPOT_NAME = "Jakarta demo depot"
DEPOT_LAT, DEPOT_LON = -6.2250, 106.8250  # Setiabudi, central to the delivery area
DEPOT_HOURS = (time(7), time(19))
SHIFT = (time(7, 30), time(18, 30))
ORDER_CUTOFF = time(6)  # orders for a day are taken (and verified) until 06:00 local
# Where customers live: a box over Jakarta (lat, lon ranges).
AREA_LAT, AREA_LON = (-6.35, -6.10), (106.70, 106.95)
CUSTOMERS = 60
VAN_KG, VAN_M3 = Decimal(800), Decimal(6)
STOCK_HEADROOM = 10_000  # units per SKU kept free beyond what is reserved
# (sku, name, unit kg, unit m³, unit price IDR)
PRODUCTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("RICE-5", "Rice 5 kg", "5", "0.006", "75000"),
    ("OIL-2L", "Cooking oil 2 L", "1.9", "0.0025", "38000"),
    ("WATER-19", "Drinking water 19 L", "19.5", "0.022", "20000"),
    ("SUGAR-1", "Sugar 1 kg", "1", "0.0012", "17000"),
    ("NOODLE-40", "Instant noodles, box of 40", "3.4", "0.03", "115000"),
    ("EGG-30", "Eggs, tray of 30", "1.9", "0.008", "55000"),
    ("SOAP-12", "Soap bars, pack of 12", "1.2", "0.002", "42000"),
    ("COFFEE-1", "Ground coffee 1 kg", "1", "0.003", "120000"),
    ("MILK-12", "UHT milk, box of 12", "12.5", "0.014", "180000"),
    ("TISSUE-6", "Tissue, pack of 6", "0.9", "0.012", "35000"),
)
STREETS = (
    "Jl. Kebon Sirih", "Jl. Cikini Raya", "Jl. Tebet Raya", "Jl. Kemang Raya",
    "Jl. Fatmawati", "Jl. Panjang", "Jl. Pluit Raya", "Jl. Boulevard Kelapa Gading",
    "Jl. Jatinegara Barat", "Jl. Daan Mogot", "Jl. Pramuka", "Jl. Cempaka Putih Raya",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PlannedTrip:
    """A dispatched trip as the simulator needs it: which tracker drives which polyline."""

    trip_id: int
    vehicle_id: int
    device_id: str
    route: tuple[tuple[float, float], ...]  # (lon, lat), depot to depot
    stops: int
    orders: int


@dataclass(frozen=True, slots=True)
class _Customer:
    id: int
    address_id: int
    address: str


def seed_and_plan(
    conn: Conn,
    *,
    day: date,
    device_ids: Sequence[str],
    orders: int = 200,
    seed: int = 1,
    time_limit_s: float = 5.0,
    matrix: MatrixProvider | None = None,
    progress: Progress = print,
) -> list[PlannedTrip]:
    """Seed the sample world, enter and plan ``orders`` orders on ``day`` (reusing the
    day's trips when it is already planned), dispatch every trip and return the trips.

    One van per tracker in ``device_ids`` (vehicles.tracker_device_id is the device id);
    ``time_limit_s`` bounds the planner's search, ``matrix`` defaults to the planner's.
    Raises ``OmsError`` (from the order core) or ``psycopg.Error`` when a step fails.
    """
    with conn.transaction():
        depot = _depot(conn)
        _fleet(conn, depot, day, device_ids)
    if _planned(conn, day, depot):
        progress(f"{day} is already planned: reusing its trips")
        unassigned = dict.fromkeys(_reserved(conn, day, depot), "left out when the day was planned")
    else:
        with conn.transaction():
            _catalogue(conn, depot)
            customers = _customers(conn, seed)
        with conn.transaction():
            entered = _enter_orders(conn, depot, day, customers, orders, seed)
        progress(f"orders entered: {entered} new, {orders} for {day} (verified and reserved)")
        result = dispatch.plan_day(
            conn,
            day,
            depot_id=depot,
            matrix=matrix,
            time_limit_s=time_limit_s,
            seed=seed,
            progress=progress,
        )
        progress(
            f"trips planned: {len(result.trip_ids)}, orders scheduled: {len(result.scheduled)},"
            f" {result.distance_m / 1000:.1f} km in all"
        )
        unassigned = dict(result.unassigned)
    reasons = ", ".join(f"{n} {why}" for why, n in Counter(unassigned.values()).most_common())
    progress(
        f"orders unassigned (left reserved): {len(unassigned)}"
        + (f" ({reasons})" if reasons else "")
    )
    dispatched = 0
    for trip in trips.list_trips(conn, day, depot):
        if trip.state == "planned":
            trips.dispatch_trip(conn, trip.id, actor=ACTOR)
            dispatched += 1
    out = _planned_trips(conn, day, depot)
    progress(f"trips dispatched: {dispatched} now, {len(out)} on the road for {day}")
    return out


def _one(conn: Conn, sql: str, params: tuple[Any, ...]) -> int:
    row = conn.execute(sql, params).fetchone()
    assert row is not None  # callers use INSERT … RETURNING or a row known to exist
    return int(row[0])


def _depot(conn: Conn) -> int:
    """The demo depot's id, created (or its hours set back) as documented above."""
    return _one(
        conn,
        "INSERT INTO depots (name, lat, lon, open_time, close_time, time_zone)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE"
        " SET open_time = EXCLUDED.open_time, close_time = EXCLUDED.close_time,"
        " time_zone = EXCLUDED.time_zone RETURNING id",
        (DEPOT_NAME, DEPOT_LAT, DEPOT_LON, *DEPOT_HOURS, JAKARTA.key),
    )


def _fleet(conn: Conn, depot: int, day: date, device_ids: Sequence[str]) -> None:
    """A van per tracker and a driver per van, assigned to it on ``day``."""
    for device in device_ids:
        row = conn.execute(
            "SELECT id FROM vehicles WHERE tracker_device_id = %s", (device,)
        ).fetchone()
        if row is None:
            vehicle = fleet.add_vehicle(
                conn,
                plate=f"DEMO {device}",
                capacity_kg=VAN_KG,
                capacity_m3=VAN_M3,
                depot_id=depot,
                tracker_device_id=device,
                max_speed_kmh=80,
            ).id
        else:
            vehicle = int(row[0])
        if conn.execute(
            "SELECT 1 FROM driver_assignments WHERE vehicle_id = %s AND day = %s", (vehicle, day)
        ).fetchone():
            continue
        name = f"Demo driver {device}"
        row = conn.execute("SELECT id FROM drivers WHERE name = %s LIMIT 1", (name,)).fetchone()
        driver = (
            int(row[0])
            if row is not None
            else fleet.add_driver(conn, name=name, shift_start=SHIFT[0], shift_end=SHIFT[1]).id
        )
        fleet.assign(conn, driver, vehicle, day)


def _catalogue(conn: Conn, depot: int) -> None:
    """The products, and stock with ``STOCK_HEADROOM`` free units of each at the depot."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO products (sku, name, unit_weight_kg, unit_volume_m3)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (sku) DO NOTHING",
            [(sku, name, kg, m3) for sku, name, kg, m3, _ in PRODUCTS],
        )
        cur.executemany(
            "INSERT INTO stock (depot_id, sku, on_hand) VALUES (%s, %s, %s)"
            " ON CONFLICT (depot_id, sku) DO UPDATE"
            " SET on_hand = GREATEST(stock.on_hand, stock.reserved + EXCLUDED.on_hand)",
            [(depot, p[0], STOCK_HEADROOM) for p in PRODUCTS],
        )


def _customers(conn: Conn, seed: int) -> list[_Customer]:
    """``CUSTOMERS`` customers with one address each, found by e-mail or created."""
    rng = random.Random(f"demo-customers/{seed}")
    out: list[_Customer] = []
    for n in range(1, CUSTOMERS + 1):
        lat, lon = round(rng.uniform(*AREA_LAT), 6), round(rng.uniform(*AREA_LON), 6)
        text = f"{rng.choice(STREETS)} No. {rng.randint(1, 200)}, Jakarta"
        email = f"demo-customer-{n:02d}@example.org"
        row = conn.execute(
            "SELECT c.id, a.id, a.text FROM customers c JOIN addresses a ON a.customer_id = c.id"
            " WHERE c.email = %s ORDER BY a.id LIMIT 1",
            (email,),
        ).fetchone()
        if row is not None:
            out.append(_Customer(*row))
            continue
        cid = _one(
            conn,
            "INSERT INTO customers (name, email, phone, notify_prefs, language)"
            " VALUES (%s, %s, %s, '{\"email\": true}', %s) RETURNING id",
            (f"Demo customer {n:02d}", email, f"+62 21 555 {n:04d}", "en" if n % 4 == 0 else "id"),
        )
        aid = _one(
            conn,
            "INSERT INTO addresses (customer_id, text, lat, lon) VALUES (%s, %s, %s, %s)"
            " RETURNING id",
            (cid, text, lat, lon),
        )
        out.append(_Customer(cid, aid, text))
    return out


def _enter_orders(
    conn: Conn, depot: int, day: date, customers: Sequence[_Customer], count: int, seed: int
) -> int:
    """Enter, verify and reserve orders ``DEMO-<day>-0001`` … ``count`` not entered yet;
    returns how many were new. Prepaid orders are authorised first, COD ones need not be."""
    prefix = f"DEMO-{day:%Y%m%d}-"
    taken = {
        r[0]
        for r in conn.execute(
            "SELECT invoice_number FROM orders WHERE invoice_number LIKE %s", (prefix + "%",)
        )
    }
    as_of = datetime.combine(day, ORDER_CUTOFF, JAKARTA)
    new = 0
    for n in range(1, count + 1):
        invoice = f"{prefix}{n:04d}"
        if invoice in taken:
            continue
        rng = random.Random(f"demo-orders/{seed}/{day}/{n}")
        who = rng.choice(customers)
        start = datetime.combine(day, time(rng.randint(8, 15)), JAKARTA)
        end = min(start + timedelta(hours=rng.choice((2, 3, 4))), start.replace(hour=18))
        lines = tuple(
            LineIn(sku, rng.randint(1, 4), Decimal(price))
            for sku, _, _, _, price in rng.sample(PRODUCTS, rng.randint(1, 3))
        )
        method = PaymentMethod.COD if rng.random() < 0.4 else PaymentMethod.PREPAID
        order = orders.create_order(
            conn,
            OrderIn(
                customer_id=who.id,
                depot_id=depot,
                address_text=who.address,
                address_id=who.address_id,
                window_start=start,
                window_end=end,
                lines=lines,
                payment_method=method,
                invoice_number=invoice,
            ),
            actor=ACTOR,
        )
        if method == PaymentMethod.PREPAID:
            orders.set_payment(conn, order.id, PaymentState.AUTHORISED, actor=ACTOR)
        problems = verify.verify(conn, order.id, now=as_of, actor=ACTOR)
        if problems:
            raise InvalidOrder(problems)
        orders.transition(conn, order.id, OrderState.RESERVED, actor=ACTOR, reason="demo stock")
        new += 1
    return new


def today() -> date:
    """The demo's today: the date in Jakarta now."""
    return datetime.now(JAKARTA).date()


def demo_day(conn: Conn, today: date) -> date:
    """The day the demo plans: today, or the first day after it whose demo trips are not
    all finished (a demo run that delivered everything leaves its day completed; the next
    run brings a new day's orders, replayed at the same hours)."""
    day = today
    while True:
        states = {
            r[0]
            for r in conn.execute(
                "SELECT t.state FROM trips t JOIN depots d ON d.id = t.depot_id"
                " WHERE d.name = %s AND t.day = %s",
                (DEPOT_NAME, day),
            )
        }
        if not states or states - {"completed", "cancelled"}:
            return day
        day += timedelta(days=1)


def _planned(conn: Conn, day: date, depot: int) -> bool:
    return any(t.state != "cancelled" for t in trips.list_trips(conn, day, depot))


def _reserved(conn: Conn, day: date, depot: int) -> list[int]:
    """The day's demo orders still reserved at the depot."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT id FROM orders WHERE depot_id = %s AND state = 'reserved'"
            " AND invoice_number LIKE %s ORDER BY id",
            (depot, f"DEMO-{day:%Y%m%d}-%"),
        )
    ]


def _planned_trips(conn: Conn, day: date, depot: int) -> list[PlannedTrip]:
    """The day's dispatched trips with their trackers (in progress too: an earlier demo
    run drove them out of the depot, and the next run replays them again)."""
    devices = dict(
        conn.execute(
            "SELECT v.id, v.tracker_device_id FROM trips t JOIN vehicles v ON v.id = t.vehicle_id"
            " WHERE t.day = %s AND t.depot_id = %s",
            (day, depot),
        ).fetchall()
    )
    return [
        PlannedTrip(
            trip_id=t.id,
            vehicle_id=t.vehicle_id,
            device_id=devices[t.vehicle_id],
            route=t.route_geometry,
            stops=len(t.stops),
            orders=sum(len(s.order_ids) for s in t.stops),
        )
        for t in trips.list_trips(conn, day, depot)
        if t.state in ("dispatched", "in_progress") and devices.get(t.vehicle_id) is not None
    ]
