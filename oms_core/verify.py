"""Order verification: the checks a draft must pass before it becomes ``verified``.

``problems`` is pure (order + facts in, list of problems out) so each rule is tested
without a database; ``verify`` gathers the facts under the order's row lock and moves
the order to verified only when the list is empty. The service area is a radius around
the order's depot or a polygon; plain haversine and ray casting are enough at city scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from oms_core import orders
from oms_core.errors import Problem
from oms_core.model import Order
from oms_core.states import OrderState, PaymentMethod, PaymentState, check

__all__ = [
    "ACCEPTABLE_PAYMENT",
    "Polygon",
    "Radius",
    "ServiceArea",
    "haversine_km",
    "inside_polygon",
    "problems",
    "verify",
]

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
P = PaymentState
# Prepaid goods leave once the money is at least authorised; COD orders carry it pending.
ACCEPTABLE_PAYMENT: dict[PaymentMethod, frozenset[PaymentState]] = {
    PaymentMethod.PREPAID: frozenset({P.AUTHORISED, P.PAID}),
    PaymentMethod.COD: frozenset({P.COD_PENDING}),
}


@dataclass(frozen=True, slots=True)
class Radius:
    """Deliver within ``km`` of the order's depot."""

    km: float = 50.0


@dataclass(frozen=True, slots=True)
class Polygon:
    """Deliver inside a ring of (lon, lat) points (closing point optional)."""

    points: tuple[tuple[float, float], ...]


ServiceArea = Radius | Polygon


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def inside_polygon(lon: float, lat: float, ring: Sequence[tuple[float, float]]) -> bool:
    """Ray casting (even-odd rule) in lon/lat treated as planar."""
    inside = False
    n = len(ring)
    for i in range(n):
        x1, y1 = ring[i]
        x2, y2 = ring[(i + 1) % n]
        if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def problems(
    order: Order,
    *,
    depot: tuple[float, float],
    active_skus: set[str],
    now: datetime,
    min_lead_s: float = 3600,
    service_area: ServiceArea = Radius(),
) -> list[Problem]:
    """Everything that stops ``order`` from being verified; ``depot`` is (lat, lon)."""
    found = orders.line_problems(order.lines, active_skus)
    if order.lat is None or order.lon is None:
        found.append(
            Problem("no_coordinates", f"address {order.address_text!r} has no coordinates")
        )
    elif isinstance(service_area, Radius):
        km = haversine_km(depot[0], depot[1], order.lat, order.lon)
        if km > service_area.km:
            found.append(
                Problem(
                    "outside_service_area",
                    f"address is {km:.1f} km from the depot; the limit is {service_area.km:g} km",
                )
            )
    elif not inside_polygon(order.lon, order.lat, service_area.points):
        found.append(Problem("outside_service_area", "address is outside the service area"))
    lead_s = (order.window_start - now).total_seconds()
    if lead_s <= 0:
        found.append(
            Problem("window_in_past", f"the window starts {order.window_start.isoformat()}")
        )
    elif lead_s < min_lead_s:
        found.append(
            Problem(
                "lead_time_too_short",
                f"the window starts in {lead_s / 60:.0f} min; at least"
                f" {min_lead_s / 60:.0f} min are needed",
            )
        )
    if order.payment_state not in ACCEPTABLE_PAYMENT[order.payment_method]:
        allowed = " or ".join(sorted(ACCEPTABLE_PAYMENT[order.payment_method]))
        found.append(
            Problem(
                "payment_not_acceptable",
                f"a {order.payment_method} order needs payment {allowed},"
                f" not {order.payment_state}",
            )
        )
    return found


def verify(
    conn: psycopg.Connection[Any],
    order_id: int,
    *,
    now: datetime,
    min_lead_s: float = 3600,
    service_area: ServiceArea = Radius(),
    actor: str = "system",
) -> list[Problem]:
    """Check a draft order; when nothing is wrong move it to verified. Returns the
    problems (empty means verified); a non-draft order raises ``IllegalTransition``."""
    with conn.transaction():
        order = orders.get_order(conn, order_id, for_update=True)
        check(order.state, OrderState.VERIFIED)
        row = conn.execute(
            "SELECT lat, lon FROM depots WHERE id = %s", (order.depot_id,)
        ).fetchone()
        assert row is not None  # orders.depot_id is a foreign key
        skus = orders.active_skus(conn, [ln.sku for ln in order.lines])
        found = problems(
            order,
            depot=(row[0], row[1]),
            active_skus=set(skus),
            now=now,
            min_lead_s=min_lead_s,
            service_area=service_area,
        )
        if not found:
            orders.transition(conn, order_id, OrderState.VERIFIED, actor=actor, reason="verified")
        return found
