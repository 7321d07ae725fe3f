"""The demo's drivers: each van's driver works the trip through the driver app's API,
as a person with the phone page would.

A driver signs in with a one-time link, checks the load and taps departed when the van
leaves the depot, taps arrived at each stop, records each order's ePOD (recipient, a
drawn signature, a doorstep photo now and then, the COD cash) before the van leaves,
and taps back at the depot when it returns. When they tap is read off the van's own
fixes (``script``): standing still at a stop is a visit; a stop the tracker said nothing
about (a silent tracker) is placed between its neighbours' visits. One order of the day
is not delivered (the customer is absent) and one only partly (a damaged item), so the
demo shows the follow-ups. Taps carry the fleet clock's time (the replay's world) and
are sent with the wall clock's, as a phone that queued them would.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import io
import itertools
import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import psycopg
from PIL import Image, ImageDraw

from menara.demo_tower import DemoTrip
from oms_core.api.auth import create_sign_in_code
from simulators.routes import haversine_m
from simulators.vehicle import SimFix

__all__ = ["Drivers", "Script", "Visit", "script"]

Conn = psycopg.Connection[Any]
Place = tuple[float, float]  # (lat, lon)
AT_STOP_M = 50.0  # a fix this close to a stop, standing still, is the van at the stop
STILL_KMH = 2.0
DEPOT_M = 300.0  # the depot zone (depot_radius_m's default)
SERVICE = timedelta(seconds=300)  # the planner's service time per order
HANDOVER_AFTER = timedelta(seconds=30)  # into an order's service, the goods change hands
TICK_S = 0.25  # how often (wall seconds) the drivers look at the fleet clock
PHONE_JITTER_DEG = 0.00004  # about 4 m: where the phone says it is, beside the door
PHONE_ACCURACY_M = 8.0
NAMES = ("Siti", "Budi", "Dewi", "Agus", "Rina", "Hendra", "Wati", "Joko", "Lestari",
         "Yusuf", "Maya", "Eko", "Putri", "Andi", "Sri", "Bambang")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Visit:
    """The van at a stop, by the fleet clock."""

    seq: int
    arrive: datetime
    leave: datetime


@dataclass(frozen=True, slots=True)
class Script:
    """When the driver taps, read off the van's fixes."""

    depart: datetime | None
    visits: tuple[Visit, ...]
    back: datetime | None


def script(trip: DemoTrip, fixes: Sequence[SimFix]) -> Script:
    """The driver's day from the van's fixes (time order), as the module doc says: a
    visit starts with the first fix standing at the stop and ends with its service."""
    d = trip.driven
    out = [
        i
        for i, f in enumerate(fixes)
        if haversine_m(f.lat, f.lon, d.depot_lat, d.depot_lon) > DEPOT_M
    ]
    if not out:
        return Script(None, (), None)
    moving = out[0]  # back from the first fix out of the depot to where the van set off
    while moving > 0 and fixes[moving - 1].speed_kmh >= STILL_KMH:
        moving -= 1
    depart = fixes[moving].fix_time
    found: list[tuple[datetime, datetime] | None] = []
    start = out[0]
    for stop in d.stops:

        def at_stop(i: int, stop: Any = stop) -> bool:
            f = fixes[i]
            return (
                f.speed_kmh < STILL_KMH
                and haversine_m(f.lat, f.lon, stop.lat, stop.lon) < AT_STOP_M
            )

        first = next((i for i in range(start, len(fixes)) if at_stop(i)), None)
        if first is None:
            found.append(None)
            continue
        arrive = fixes[first].fix_time
        # the van serves once the plan's service start has come (it waits for it when
        # early); the next stop may be at the same door, so the visit ends with the
        # service, not with the standing still
        served = max(arrive, stop.serve_from or arrive)
        leave = served + timedelta(seconds=stop.service_s)
        found.append((arrive, leave))
        start = next(
            (i for i in range(first, len(fixes)) if fixes[i].fix_time >= leave), len(fixes)
        )
    back = next((fixes[i].fix_time for i in range(out[-1] + 1, len(fixes))), None)
    return Script(depart, _fill(found, depart, back or fixes[-1].fix_time), back)


def _fill(
    found: list[tuple[datetime, datetime] | None], depart: datetime, back: datetime
) -> tuple[Visit, ...]:
    """Visits with the missing ones placed evenly between their seen neighbours."""
    times: list[tuple[datetime, datetime]] = []
    for k, seen in enumerate(found):
        if seen is not None:
            times.append(seen)
            continue
        before = times[-1][1] if times else depart
        after = next((s[0] for s in found[k + 1 :] if s is not None), back)
        gap = (after - before) / (sum(1 for s in found[k:] if s is None) + 1)
        times.append((before + gap, before + gap * 1.5))
    return tuple(Visit(k + 1, a, b) for k, (a, b) in enumerate(times))


def signature_png(name: str) -> bytes:
    """A scribble that looks signed (different per name)."""
    rng = random.Random(f"signature/{name}")
    img = Image.new("RGB", (300, 120), "white")
    draw = ImageDraw.Draw(img)
    x, y = 20.0, 70.0
    for _ in range(14):
        nx, ny = x + rng.uniform(8, 22), 60 + rng.uniform(-35, 35)
        draw.line((x, y, nx, ny), fill=(20, 30, 90), width=3)
        x, y = nx, ny
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def doorstep_jpeg(seed: int) -> bytes:
    """A small photo of "the parcel at the door"."""
    rng = random.Random(seed)
    img = Image.new("RGB", (320, 240), (rng.randint(150, 200), 170, 140))
    ImageDraw.Draw(img).rectangle((110, 110, 210, 200), fill=(160, 110, 60))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=70)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class _Order:
    id: int
    cod: bool
    lines: list[tuple[int, int, Decimal]]  # line_no, qty, unit price


@dataclass(slots=True)
class _Trip:
    trip_id: int
    driver_id: int
    plate: str
    depot: Place
    stops: dict[int, tuple[int, Place, list[_Order]]]  # seq -> (stop id, where, orders)
    token: str = ""


class Drivers:
    """Every trip's driver, acting on the fleet clock through the driver API at ``api``
    (``http://host:port/api/v1``). ``prepare`` (before the replay) signs them up and plans
    their taps; inside ``async with``, ``until(fleet_now)`` does the taps now due."""

    def __init__(
        self,
        api: str,
        trips: Sequence[DemoTrip],
        scripts: dict[int, Script],
        say: Callable[[str], None] = print,
    ) -> None:
        self.api, self.trips, self.scripts, self.say = api, list(trips), scripts, say
        self.counts: Counter[str] = Counter()
        self._queue: list[tuple[datetime, int, Callable[[], Awaitable[None]]]] = []
        self._order = itertools.count()
        self._trips: dict[int, _Trip] = {}
        self._codes: dict[int, str] = {}
        self._http: aiohttp.ClientSession | None = None

    def prepare(self, conn: Conn) -> None:
        """Make each driver a sign-in link and plan every tap (module doc)."""
        for t in self.trips:
            info = _load(conn, t)
            plan = self.scripts.get(t.trip_id)
            if info is None or plan is None or plan.depart is None:
                continue
            self._trips[t.trip_id] = info
            self._codes[t.trip_id] = create_sign_in_code(conn, info.driver_id, 86_400)
        twists = _twists(self._trips.values())
        for tid, info in self._trips.items():
            plan = self.scripts[tid]
            assert plan.depart is not None  # trips without one were skipped above
            self._push(plan.depart - timedelta(minutes=5), self._load_van, tid, plan.depart)
            self._push(plan.depart, self._tap, tid, f"/driver/trips/{tid}/departed", plan.depart,
                       info.depot)  # fmt: skip
            for v in plan.visits:
                if v.seq not in info.stops:
                    continue
                stop_id, door, orders = info.stops[v.seq]
                tap = v.arrive + timedelta(seconds=30)
                self._push(tap, self._tap, tid, f"/driver/stops/{stop_id}/arrived", tap, door)
                # each order half a minute into its own service; the services end the
                # visit (a van early for the window waits before them)
                for k, o in enumerate(orders):
                    hand = max(tap, v.leave - SERVICE * (len(orders) - k) + HANDOVER_AFTER)
                    self._push(hand, self._deliver, tid, o, hand, door, twists.get(o.id))
            if plan.back is not None:
                back = plan.back + timedelta(minutes=1)
                self._push(back, self._return, tid, back)

    def _push(self, at: datetime, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        task: Callable[[], Awaitable[None]] = functools.partial(fn, *args)
        heapq.heappush(self._queue, (at, next(self._order), task))

    async def __aenter__(self) -> Drivers:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        for trip_id, code in self._codes.items():
            async with self._http.post(f"{self.api}/driver/sign-in", json={"code": code}) as r:
                r.raise_for_status()
                self._trips[trip_id].token = (await r.json())["token"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()

    async def until(self, fleet_now: datetime) -> None:
        """Do every tap due by ``fleet_now``, in time order."""
        while self._queue and self._queue[0][0] <= fleet_now:
            _, _, fn = heapq.heappop(self._queue)
            await fn()

    async def follow(self, clock: Callable[[], datetime], done: asyncio.Event) -> None:
        """Tap along with the fleet clock until ``done`` is set."""
        while not done.is_set():
            await self.until(clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), TICK_S)

    # -- the taps ------------------------------------------------------------------

    async def _call(
        self, trip_id: int, path: str, body: dict[str, Any], at: datetime, where: Place
    ) -> Any:
        """POST an action as the phone does: a fresh key, the tap's time, the phone's
        position (a few metres off ``where``, as GPS is) and the time it is sent."""
        assert self._http is not None
        rng = random.Random(f"{path}/{at}")
        lat, lon = (c + rng.uniform(-PHONE_JITTER_DEG, PHONE_JITTER_DEG) for c in where)
        body = {
            "idempotency_key": uuid.uuid4().hex,
            "at": at.isoformat(),
            "sent_at": datetime.now(UTC).isoformat(),
            "position": {"lat": lat, "lon": lon, "accuracy_m": PHONE_ACCURACY_M},
            **body,
        }
        headers = {"Authorization": f"Bearer {self._trips[trip_id].token}"}
        async with self._http.post(self.api + path, json=body, headers=headers) as r:
            answer = await r.json()
        if r.status != 200:
            self.counts["refused"] += 1
            err = answer.get("error", {})
            self.say(f"  driver app: {path} refused: {err.get('code')}: {err.get('message')}")
            return None
        return answer

    async def _tap(self, trip_id: int, path: str, at: datetime, where: Place) -> None:
        await self._call(trip_id, path, {}, at, where)

    async def _load_van(self, trip_id: int, depart: datetime) -> None:
        lines = [
            {"order_id": o.id, "line_no": n, "loaded_qty": q}
            for _, _, orders in self._trips[trip_id].stops.values()
            for o in orders
            for n, q, _ in o.lines
        ]
        await self._call(trip_id, f"/driver/trips/{trip_id}/loaded", {"lines": lines},
                         depart - timedelta(minutes=5), self._trips[trip_id].depot)  # fmt: skip

    async def _deliver(
        self, trip_id: int, o: _Order, at: datetime, door: Place, twist: str | None
    ) -> None:
        rng = random.Random(o.id)
        name = rng.choice(NAMES)
        delivered = {n: q for n, q, _ in o.lines}
        body: dict[str, Any] = {"outcome": "delivered", "recipient_name": name}
        if twist == "failed":
            body = {"outcome": "failed", "reason_code": "customer_absent",
                    "notes": "Nobody answered; the neighbour was out too."}  # fmt: skip
            delivered = {}
        elif twist == "partial":
            broken = max(o.lines, key=lambda ln: ln[1])[0]
            delivered[broken] -= 1
            body |= {
                "outcome": "partially_delivered", "reason_code": "damaged",
                "notes": "One unit crushed in transit; taken back.",
                "lines": [{"line_no": n, "delivered_qty": delivered[n],
                           "damaged_qty": int(n == broken)} for n, _, _ in o.lines],
            }  # fmt: skip
        if body["outcome"] != "failed":
            body["signature"] = await self._upload(trip_id, signature_png(name), "image/png")
            if rng.random() < 0.3:
                body["photos"] = [await self._upload(trip_id, doorstep_jpeg(o.id), "image/jpeg")]
            if o.cod:
                due = sum((p * delivered[n] for n, _, p in o.lines), Decimal(0))
                body["cod_collected"] = str(due.quantize(Decimal("0.01")))
        answer = await self._call(trip_id, f"/driver/orders/{o.id}/delivery", body, at, door)
        if answer is None:
            return
        self.counts[body["outcome"]] += 1
        self.counts["flagged"] += bool(answer.get("needs_review"))
        if twist:
            self.say(
                f"DELIVERY van {self._trips[trip_id].plate}: order {o.id} {body['outcome']}"
                f" ({body['reason_code']}); re-delivery order {answer['follow_up_order_id']}"
            )

    async def _upload(self, trip_id: int, data: bytes, media: str) -> str:
        assert self._http is not None
        form = aiohttp.FormData()
        form.add_field("file", data, filename="epod", content_type=media)
        headers = {"Authorization": f"Bearer {self._trips[trip_id].token}"}
        async with self._http.post(f"{self.api}/driver/files", data=form, headers=headers) as r:
            r.raise_for_status()
            return str((await r.json())["sha256"])

    async def _return(self, trip_id: int, at: datetime) -> None:
        trip = self._trips[trip_id]
        answer = await self._call(trip_id, f"/driver/trips/{trip_id}/returned", {}, at, trip.depot)
        if answer is None:
            return
        self.counts["trips_closed"] += 1
        cod = answer["cod"]
        self.say(
            f"TRIP van {self._trips[trip_id].plate} back at the depot: {answer['orders_closed']}"
            f" orders closed, COD due {cod['expected']}, handed in {cod['handed_in']}"
        )


def _twists(trips: Iterable[_Trip]) -> dict[int, str]:
    """The day's one failed order (the first of a stop after the first, on the first
    van) and one partial (an order with more than one unit, on another van)."""
    out: dict[int, str] = {}
    for info in trips:
        later = [o for seq, (_, _, orders) in sorted(info.stops.items()) if seq > 1 for o in orders]
        if "failed" not in out.values() and later:
            out[later[0].id] = "failed"
        elif "partial" not in out.values():
            multi = [o for o in later if max(q for _, q, _ in o.lines) > 1]
            if multi:
                out[multi[0].id] = "partial"
    return out


def _load(conn: Conn, t: DemoTrip) -> _Trip | None:
    row = conn.execute("SELECT driver_id FROM trips WHERE id = %s", (t.trip_id,)).fetchone()
    if row is None or row[0] is None:
        return None
    stops: dict[int, tuple[int, Place, list[_Order]]] = {}
    for seq, stop_id, lat, lon, order_id, method in conn.execute(
        "SELECT s.seq, s.id, s.lat, s.lon, o.id, o.payment_method FROM stops s"
        " JOIN stop_orders so ON so.stop_id = s.id JOIN orders o ON o.id = so.order_id"
        " WHERE s.trip_id = %s AND o.state IN ('dispatched', 'out_for_delivery', 'arrived')"
        " ORDER BY s.seq, o.id",
        (t.trip_id,),
    ).fetchall():
        lines = [
            (int(n), int(q), Decimal(p))
            for n, q, p in conn.execute(
                "SELECT line_no, qty, unit_price FROM order_lines WHERE order_id = %s"
                " ORDER BY line_no",
                (order_id,),
            ).fetchall()
        ]
        stops.setdefault(int(seq), (int(stop_id), (float(lat), float(lon)), []))[2].append(
            _Order(int(order_id), method == "cod", lines)
        )
    depot = (t.driven.depot_lat, t.driven.depot_lon)
    return _Trip(t.trip_id, int(row[0]), t.plate, depot, stops)


def scripts(trips: Sequence[DemoTrip], fixes: Sequence[SimFix]) -> dict[int, Script]:
    """Each trip's script from its van's fixes."""
    by: dict[str, list[SimFix]] = {}
    for f in fixes:
        by.setdefault(f.device_id, []).append(f)
    return {t.trip_id: script(t, by.get(t.device_id, [])) for t in trips}
