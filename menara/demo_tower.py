"""The control-tower side of ``menara demo``: the planned day replayed on the fleet clock.

The demo plans a Jakarta day (07:30–18:30 local) but runs at any hour, sped up. So the
day is moved in time (``rebase``) until, replayed at the speed-up, its last fix lands
at about the wall-clock end of the replay: the tower (on the fleet clock) then sees
vans that are on schedule, and fixes that are never in the future. Everything is shifted
relative to the stored times, so a second run of the same day simply moves it again.

Five vans misbehave on purpose (``assign_faults``), one fault each, placed in the middle
of their longest leg so no stop visit hides them; ``ALERT_FOR`` is the alert each one
should raise. ``AlertFeed`` reads new alerts back for the live lines and the summary.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import psycopg

from menara import demo_history, demo_oms, demo_pace, service
from menara.settings import Settings
from oms_core import trips
from oms_core.alerts import store
from oms_core.errors import OmsError
from simulators.errors import SimulatorError
from simulators.faults import Detour, Fault, LateDeparture, Silence, Speeding, UnplannedStop
from simulators.fleet import FleetConfig
from simulators.routes import EARTH_RADIUS_M
from simulators.trip_driver import DrivenStop, DrivenTrip, drive
from simulators.vehicle import SimFix

__all__ = [
    "ALERT_FOR",
    "AlertFeed",
    "DemoTrip",
    "FaultPlan",
    "Replay",
    "alert_summary",
    "assign_faults",
    "links",
    "load_trips",
    "prepare",
    "rebase",
    "replay_offset",
    "shift",
    "timeline",
]

Conn = psycopg.Connection[Any]
ACTOR = "demo"
BEFORE_S, AFTER_S = 180.0, 60.0  # parked at the depot before leaving / after returning
LEG_MARGIN_M = 300.0  # a fault keeps this far from the stops at both ends of its leg
# The faults in the order the first five vans (by device id) get them.
FAULT_ORDER = ("detour", "speeding", "unplanned_stop", "late_departure", "silence")
ALERT_FOR = {
    "detour": "route_deviation",
    "speeding": "overspeed",
    "unplanned_stop": "unplanned_stop",
    "late_departure": "late_departure",
    "silence": "silent_device",
}


@dataclass(frozen=True, slots=True)
class DemoTrip:
    """A dispatched trip as the replay needs it: who drives, the plate, the drive plan."""

    trip_id: int
    vehicle_id: int
    plate: str
    driven: DrivenTrip
    vertex_m: tuple[float, ...]  # distance along the route of each route vertex

    @property
    def device_id(self) -> str:
        return self.driven.device_id


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """One van's misbehaviour: the fault, its kind (``ALERT_FOR`` key) and a sentence."""

    kind: str
    fault: Fault
    says: str


def load_trips(conn: Conn, trip_ids: Sequence[int]) -> list[DemoTrip]:
    """The trips with their depot, tracker and plate, ordered by device id; trips whose
    route has fewer than two distinct points (nothing to drive) are left out."""
    rows = conn.execute(
        "SELECT t.id, v.id, v.plate, v.tracker_device_id, d.lat, d.lon FROM trips t"
        " JOIN vehicles v ON v.id = t.vehicle_id JOIN depots d ON d.id = t.depot_id"
        " WHERE t.id = ANY(%s) AND v.tracker_device_id IS NOT NULL",
        (list(trip_ids),),
    ).fetchall()
    out: list[DemoTrip] = []
    for trip_id, vehicle_id, plate, device, lat, lon in rows:
        t = trips.get_trip(conn, trip_id)
        vertex_m = _vertex_m(float(lat), float(lon), t.route_geometry)
        if vertex_m[-1] <= 0:
            continue
        driven = DrivenTrip(
            device_id=str(device),
            depot_lat=float(lat),
            depot_lon=float(lon),
            route=t.route_geometry,
            stops=tuple(
                DrivenStop(s.lat, s.lon, float(s.service_time_s), _serve_from(s)) for s in t.stops
            ),
            planned_departure=t.planned_departure,
        )
        out.append(DemoTrip(trip_id, int(vehicle_id), str(plate), driven, vertex_m))
    return sorted(out, key=lambda d: d.device_id)


def _serve_from(s: trips.Stop) -> datetime:
    """The plan's service start at a stop: its departure less its service time (a van
    there before it waits, as the plan does, for the window to open)."""
    return s.planned_departure - timedelta(seconds=s.service_time_s)


def _vertex_m(lat0: float, lon0: float, route: Sequence[tuple[float, float]]) -> tuple[float, ...]:
    """Cumulative metres along ``route`` in the driver's flat frame around the depot."""
    ky = math.radians(1.0) * EARTH_RADIUS_M
    kx = ky * math.cos(math.radians(lat0))
    out = [0.0]
    for (lon_a, lat_a), (lon_b, lat_b) in itertools.pairwise(route):
        out.append(out[-1] + math.hypot((lon_b - lon_a) * kx, (lat_b - lat_a) * ky))
    return tuple(out) if len(out) > 1 else (0.0, 0.0)


def _middle(trip: DemoTrip, length_m: float) -> float | None:
    """Where a stretch of ``length_m`` starts when centred on the trip's longest leg,
    or None when no leg has room for it and the margins."""
    legs = list(itertools.pairwise(trip.vertex_m))
    a, b = max(legs, key=lambda leg: leg[1] - leg[0])
    if b - a < length_m + 2 * LEG_MARGIN_M:
        return None
    return round((a + b) / 2 - length_m / 2)


def _fault(kind: str, trip: DemoTrip, cruise_kmh: float, fix_interval_s: float) -> FaultPlan | None:
    """``kind`` shaped for ``trip``, or None when its longest leg has no room for it.
    The speeding stretch lasts at least four fix intervals, so the rule sees it."""
    van = f"van {trip.plate}"
    if kind == "late_departure":
        return FaultPlan(kind, LateDeparture(2400), f"{van} will leave the depot 40 min late")
    silence_s = 360.0
    speeding_m = round(max(1000.0, 120 / 3.6 * 4 * fix_interval_s), -2)
    length = {"detour": 1500.0, "speeding": speeding_m, "unplanned_stop": 0.0}.get(
        kind, cruise_kmh / 3.6 * silence_s
    )
    at = _middle(trip, length)
    if at is None:
        return None
    if kind == "detour":
        fault: Fault = Detour(after_m=at, length_m=length, offset_m=600)
        return FaultPlan(kind, fault, f"{van} will take a detour 600 m off its route")
    if kind == "speeding":
        fault = Speeding(after_m=at, length_m=length, speed_kmh=120)
        return FaultPlan(kind, fault, f"{van} will speed at 120 km/h for {length / 1000:g} km")
    if kind == "unplanned_stop":
        fault = UnplannedStop(after_m=at, duration_s=600)
        return FaultPlan(kind, fault, f"{van} will stop for 10 min away from its stops")
    fault = Silence(duration_s=silence_s, after_m=at)
    return FaultPlan(kind, fault, f"{van}'s tracker will go silent for 6 min")


def assign_faults(
    demo_trips: Sequence[DemoTrip], *, cruise_kmh: float, fix_interval_s: float = 5.0
) -> dict[str, FaultPlan]:
    """One fault per van, in ``FAULT_ORDER``, to the first vans by device id: each fault
    goes to the first van without one whose longest leg has room for it, so a van with
    only short legs passes its fault on. Deterministic; the other vans drive clean."""
    out: dict[str, FaultPlan] = {}
    vans = sorted(demo_trips, key=lambda t: t.device_id)
    for kind in FAULT_ORDER:
        for trip in vans:
            plan = None if trip.device_id in out else _fault(kind, trip, cruise_kmh, fix_interval_s)
            if plan is not None:
                out[trip.device_id] = plan
                break
    return out


def timeline(
    demo_trips: Sequence[DemoTrip],
    faults: dict[str, FaultPlan],
    *,
    cruise_kmh: float,
    fix_interval_s: float = 5.0,
) -> list[SimFix]:
    """Every trip driven (faults included) at its stored times, merged in time order
    (then device id). A van back early stays parked at the depot, its tracker still
    sending, until the last one is back: a tracker that went quiet while its trip is
    still open would rightly be reported silent."""

    def run(t: DemoTrip, after_s: float) -> list[SimFix]:
        plan = faults.get(t.device_id)
        return drive(
            t.driven,
            faults=() if plan is None else (plan.fault,),
            fix_interval_s=fix_interval_s,
            cruise_kmh=cruise_kmh,
            before_s=BEFORE_S,
            after_s=after_s,
        )

    driven = {t.device_id: run(t, AFTER_S) for t in demo_trips}
    ends = [fixes[-1].fix_time for fixes in driven.values() if fixes]
    for t in demo_trips:
        fixes = driven[t.device_id]
        if fixes and fixes[-1].fix_time < max(ends):
            driven[t.device_id] = run(t, AFTER_S + (max(ends) - fixes[-1].fix_time).total_seconds())
    merged = [f for fixes in driven.values() for f in fixes]
    return sorted(merged, key=lambda f: (f.fix_time, f.device_id))


def replay_offset(
    first: datetime,
    last: datetime,
    *,
    speedup: float,
    now: datetime,
    window_s: float | None = None,
) -> timedelta:
    """How far to move a day whose fixes run ``first`` … ``last`` so that, replayed from
    ``now`` at ``speedup``, the last fix replayed lands at the wall-clock end of the
    replay: the day starts at now − span × (speedup − 1) / speedup. ``window_s`` (wall
    seconds) shortens the span to what a bounded run replays. Whole seconds."""
    if not (math.isfinite(speedup) and speedup > 0):
        raise ValueError(f"speedup must be a finite number > 0, not {speedup}")
    span = (last - first).total_seconds()
    if window_s is not None:
        span = min(span, max(window_s, 0.0) * speedup)
    start = now - timedelta(seconds=span * (speedup - 1) / speedup)
    return timedelta(seconds=round((start - first).total_seconds()))


def rebase(conn: Conn, trip_ids: Sequence[int], offset: timedelta) -> None:
    """Move the trips, their stops and their orders' windows by ``offset`` in one
    transaction, and start their day afresh: stop visits and ETAs of an earlier replay
    are cleared, the vehicles' rule states dropped and their live alerts resolved (an
    earlier run's incidents would otherwise absorb this run's)."""
    ids = list(trip_ids)
    with conn.transaction():
        conn.execute(
            "UPDATE trips SET planned_departure = planned_departure + %s,"
            " planned_return = planned_return + %s, loaded_at = NULL, actual_departure = NULL"
            " WHERE id = ANY(%s)",
            (offset, offset, ids),
        )
        conn.execute(
            "UPDATE stops SET planned_arrival = planned_arrival + %s,"
            " planned_departure = planned_departure + %s, window_start = window_start + %s,"
            " window_end = window_end + %s, actual_arrival = NULL, actual_departure = NULL,"
            " arrival_method = NULL, geofence_arrival = NULL, driver_arrival = NULL, eta = NULL,"
            " eta_updated_at = NULL, out_of_sequence = false"
            " WHERE trip_id = ANY(%s)",
            (offset, offset, offset, offset, ids),
        )
        conn.execute(
            "UPDATE orders SET window_start = window_start + %s, window_end = window_end + %s"
            " WHERE id IN (SELECT so.order_id FROM stop_orders so JOIN stops s"
            " ON s.id = so.stop_id WHERE s.trip_id = ANY(%s))",
            (offset, offset, ids),
        )
        conn.execute(
            "DELETE FROM rule_state WHERE vehicle_id IN"
            " (SELECT vehicle_id FROM trips WHERE id = ANY(%s))",
            (ids,),
        )
        live = conn.execute(
            "SELECT id FROM alerts WHERE trip_id = ANY(%s) AND state <> 'resolved' ORDER BY id",
            (ids,),
        ).fetchall()
        for (alert_id,) in live:
            store.resolve(conn, int(alert_id), ACTOR, "the demo replays the day again")


def moved(trip: DemoTrip, offset: timedelta) -> DemoTrip:
    """The trip's plan moved by ``offset`` (as ``rebase`` moved it in the database)."""
    d = trip.driven
    stops = tuple(
        s if s.serve_from is None else dataclasses.replace(s, serve_from=s.serve_from + offset)
        for s in d.stops
    )
    driven = dataclasses.replace(d, planned_departure=d.planned_departure + offset, stops=stops)
    return dataclasses.replace(trip, driven=driven)


def shift(fixes: Sequence[SimFix], offset: timedelta) -> list[SimFix]:
    """The fixes moved by ``offset`` (as ``rebase`` moved their trips)."""
    return [dataclasses.replace(f, fix_time=f.fix_time + offset) for f in fixes]


@dataclass(frozen=True, slots=True)
class Replay:
    """The day to replay: trips, faults, and the fixes already moved onto the fleet clock."""

    trips: list[DemoTrip]
    faults: dict[str, FaultPlan]
    fixes: list[SimFix]
    speedup: float

    @property
    def span_s(self) -> float:
        return (self.fixes[-1].fix_time - self.fixes[0].fix_time).total_seconds()


def prepare(
    cfg: Settings,
    planned: list[demo_oms.PlannedTrip],
    *,
    speedup: float | None,
    duration_s: float | None,
) -> Replay | None:
    """Drive the trips (faults included), move the day so it ends about when the replay
    does, and return it; None (with the reason printed) when it cannot be driven. The
    demo vans' positions stored for the replayed hours (by an earlier run) are dropped.
    Without ``speedup`` the whole day is paced into ``duration_s`` (``demo_pace``); with
    it, ``duration_s`` cuts the replay short."""
    cruise = cfg.plan_avg_speed_kmh / cfg.plan_road_factor  # the planner's travel times
    try:
        with psycopg.connect(cfg.db_dsn, autocommit=True) as conn:
            driven = load_trips(conn, [t.trip_id for t in planned])
            faults = assign_faults(driven, cruise_kmh=cruise)
            fixes = timeline(driven, faults, cruise_kmh=cruise)
            if not fixes:
                print("replay: the planned trips have nowhere to go; driving the stock routes")
                return None
            span = (fixes[-1].fix_time - fixes[0].fix_time).total_seconds()
            p = demo_pace.pace(span, speedup=speedup, duration_s=duration_s)
            if p.fix_interval_s != demo_pace.BASE_FIX_INTERVAL_S:
                faults = assign_faults(driven, cruise_kmh=cruise, fix_interval_s=p.fix_interval_s)
                fixes = timeline(driven, faults, cruise_kmh=cruise, fix_interval_s=p.fix_interval_s)
            speedup, window_s = p.speedup, None if speedup is None else duration_s
            first, last = fixes[0].fix_time, fixes[-1].fix_time
            offset = replay_offset(
                first, last, speedup=speedup, now=datetime.now(UTC), window_s=window_s
            )
            rebase(conn, [t.trip_id for t in driven], offset)
            demo_history.date_history(conn, [t.trip_id for t in driven], offset)
            # An earlier run replayed over the same hours: its positions would stand in
            # for this run's (a fix is stored once per device and time).
            conn.execute(
                "DELETE FROM positions WHERE device_id = ANY(%s) AND fix_time BETWEEN %s AND %s",
                ([t.device_id for t in driven], first + offset, last + offset),
            )
    except (SimulatorError, OmsError, psycopg.Error) as exc:
        print(f"replay: cannot drive the planned trips ({exc}); driving the stock routes")
        return None
    j = demo_oms.JAKARTA
    hours = offset.total_seconds() / 3600
    print(
        f"replay: the planned day {first.astimezone(j):%H:%M}–{last.astimezone(j):%H:%M}"
        f" (Jakarta) moved by {hours:+.2f} h to {(first + offset).astimezone(j):%H:%M}–"
        f"{(last + offset).astimezone(j):%H:%M}, so that replayed {speedup:.0f}× faster"
        f" (a fix every {p.fix_interval_s:g} s of fleet time per van) it ends about now"
    )
    return Replay([moved(t, offset) for t in driven], faults, shift(fixes, offset), speedup)


MQTT_PROTOCOL = "menara-json"  # what the MQTT link publishes (``<prefix>/<device>/json``)


def replayed_as(protocol: str, cfg: Settings) -> str:
    """The protocol a van speaking ``protocol`` is replayed in (``links``): its own when
    its TCP listener is on, else MQTT JSON. Ingest binds a device to one protocol, so
    the demo registers its vans with this one before the replay."""
    port = service.TCP_PORTS.get(protocol)
    return protocol if port is not None and int(getattr(cfg, port)) > 0 else MQTT_PROTOCOL


def links(
    fixes: list[SimFix], spoken: dict[str, str], cfg: Settings, fleet: FleetConfig
) -> list[tuple[str, list[SimFix], dict[str, Any]]]:
    """The fixes per link: each TCP protocol with a listener, and MQTT JSON for the rest
    (MQTT vans, and phones whose protocol is HTTP-only)."""
    by: dict[str, list[SimFix]] = {}
    for f in fixes:
        p = spoken.get(f.device_id, "")
        by.setdefault("mqtt" if replayed_as(p, cfg) == MQTT_PROTOCOL else p, []).append(f)
    out: list[tuple[str, list[SimFix], dict[str, Any]]] = []
    for key, group in sorted(by.items()):
        kw: dict[str, Any] = (
            {"transport": "mqtt", "host": cfg.mqtt_host, "port": cfg.mqtt_port,
             "topic_prefix": cfg.mqtt_topic_prefix}
            if key == "mqtt"
            else {"transport": "tcp", "protocol": key, "host": fleet.tcp_host,
                  "port": fleet.port_for(key)}
        )  # fmt: skip
        out.append((key, group, kw))
    return out


class AlertFeed:
    """New alerts of the demo's trips, read back from ``alerts`` as they open."""

    def __init__(self, conn: Conn, trip_ids: Sequence[int], *, tz: tzinfo) -> None:
        self._conn, self._trips, self._tz = conn, list(trip_ids), tz
        row = conn.execute("SELECT coalesce(max(id), 0) FROM alerts").fetchone()
        self._after = int(row[0]) if row else 0
        self.by_type: Counter[str] = Counter()
        self.by_device: dict[str, set[str]] = {}

    def poll(self) -> list[str]:
        """One line per alert opened since the last poll."""
        rows = self._conn.execute(
            "SELECT a.id, a.type, a.opened_at, coalesce(v.plate, a.device_id), a.device_id,"
            " a.message, a.order_ids FROM alerts a LEFT JOIN vehicles v ON v.id = a.vehicle_id"
            " WHERE a.id > %s AND a.trip_id = ANY(%s) ORDER BY a.id",
            (self._after, self._trips),
        ).fetchall()
        lines = []
        for alert_id, kind, opened, plate, device, message, order_ids in rows:
            self._after = max(self._after, int(alert_id))
            self.by_type[kind] += 1
            self.by_device.setdefault(str(device), set()).add(kind)
            orders = f" (orders {', '.join(map(str, order_ids))})" if order_ids else ""
            lines.append(
                f"ALERT {opened.astimezone(self._tz):%H:%M} {kind} van {plate}: {message}{orders}"
            )
        return lines


def alert_summary(feed: AlertFeed, replay: Replay) -> None:
    """Alerts opened by type, and whether each faulty van raised the one it should."""
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(feed.by_type.items())) or "none"
    print(f"  alerts opened: {sum(feed.by_type.values())} ({kinds})")
    plates = {t.device_id: t.plate for t in replay.trips}
    for device, plan in replay.faults.items():
        want = ALERT_FOR[plan.kind]
        seen = "raised" if want in feed.by_device.get(device, set()) else "not seen (yet)"
        print(f"  van {plates[device]}: {plan.kind} -> {want} {seen}")
