"""Planned trips driven by a simulated vehicle: the plan is followed, and each fault shows.

The trip is a 1 km square from the depot, in metres east/north of it (movingpandas
style): out east to stop A, north to stop B, west to stop C, south home. At the default
36 km/h the vehicle covers 10 m/s, so distances and times are easy to check by hand.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from decoders import menara_json
from decoders.model import Fix, Session
from simulators.errors import SimulatorError
from simulators.faults import (
    Detour,
    FaultError,
    Idle,
    LateDeparture,
    Silence,
    Speeding,
    UnplannedStop,
)
from simulators.routes import EARTH_RADIUS_M, Route
from simulators.trip_driver import (
    DrivenStop,
    DrivenTrip,
    TripError,
    drive,
    drive_many,
)
from simulators.trip_sender import send_timeline
from simulators.vehicle import SimFix
from tests.polling import until
from tests.ports import free_port

LAT0, LON0 = -6.2, 106.8
KY = math.radians(1.0) * EARTH_RADIUS_M
KX = KY * math.cos(math.radians(LAT0))
T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
SQUARE = [(0, 0), (1000, 0), (1000, 1000), (0, 1000), (0, 0)]
SERVICE = (120.0, 300.0, 60.0)
STEP = 5.0  # default fix interval


def lonlat(x: float, y: float) -> tuple[float, float]:
    return LON0 + x / KX, LAT0 + y / KY


def metres(f: SimFix) -> tuple[float, float]:
    return (f.lon - LON0) * KX, (f.lat - LAT0) * KY


def trip(device: str = "TRIP1", service: tuple[float, ...] = SERVICE) -> DrivenTrip:
    stops = tuple(
        DrivenStop(lonlat(*p)[1], lonlat(*p)[0], s)
        for p, s in zip(SQUARE[1:4], service, strict=True)
    )
    return DrivenTrip(device, LAT0, LON0, [lonlat(*p) for p in SQUARE], stops, T0)


ROUTE = Route("square", tuple(lonlat(*p) for p in SQUARE), "bounce")


def off_route(f: SimFix) -> float:
    return ROUTE.distance_to_m(f.lat, f.lon)


def near(f: SimFix, x: float, y: float, r: float = 20.0) -> bool:
    fx, fy = metres(f)
    return math.hypot(fx - x, fy - y) <= r


def stationary_away(fixes: list[SimFix]) -> list[SimFix]:
    """Speed-0 fixes not at the depot or a planned stop."""
    return [f for f in fixes if f.speed_kmh == 0 and not any(near(f, *p) for p in SQUARE)]


def secs(f: SimFix) -> float:
    return (f.fix_time - T0).total_seconds()


# --- the plan is followed ---------------------------------------------------------------


def test_clean_trip_follows_route_dwells_and_departs_on_time() -> None:
    fixes = drive(trip())
    assert max(off_route(f) for f in fixes) <= 3.0 + 0.1  # jitter_m, plus rounding
    moving = [f for f in fixes if f.speed_kmh > 0]
    assert fixes[0].fix_time == T0 - timedelta(seconds=180)
    assert moving[0].fix_time == T0
    assert near(moving[0], 0, 0, 5)
    assert {f.speed_kmh for f in moving} == {36.0}
    for (x, y), service in zip(SQUARE[1:4], SERVICE, strict=True):
        dwell = [f for f in fixes if f.speed_kmh == 0 and near(f, x, y)]
        assert abs(len(dwell) * STEP - service) <= STEP
        assert all(f.ignition is False for f in dwell)
    assert all(f.ignition for f in moving)
    # 4 km at 10 m/s plus the service times, then parked 60 s at the depot
    assert secs(fixes[-1]) == pytest.approx(400 + sum(SERVICE) + 60, abs=STEP)
    assert near(fixes[-1], 0, 0, 5) and fixes[-1].speed_kmh == 0
    assert not stationary_away(fixes)
    assert all(
        b.fix_time - a.fix_time == timedelta(seconds=STEP) for a, b in itertools.pairwise(fixes)
    )


def test_same_seed_same_timeline_other_seed_other_jitter() -> None:
    assert drive(trip(), seed=7) == drive(trip(), seed=7)
    a, b = drive(trip(), seed=7), drive(trip(), seed=8)
    assert [f.fix_time for f in a] == [f.fix_time for f in b]
    assert [f.lat for f in a] != [f.lat for f in b]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 600), min_size=3, max_size=3), st.sampled_from([1.0, 2.0, 5.0]))
def test_time_at_stops_is_their_service_time(service: list[int], step: float) -> None:
    fixes = drive(trip(service=tuple(float(s) for s in service)), fix_interval_s=step, jitter_m=0)
    for (x, y), s in zip(SQUARE[1:4], service, strict=True):
        dwell = [f for f in fixes if f.speed_kmh == 0 and near(f, x, y)]
        assert abs(len(dwell) * step - s) <= step


def test_a_van_early_for_a_stop_waits_for_the_plans_service_start() -> None:
    """Stop 2 (1000 m + 1000 m + 120 s of stop 1 in) is served from 30 min after the
    departure: the van stands there from its arrival until then, then serves 300 s;
    a late van (a stop whose start has passed) serves at once."""
    plain = trip()
    ready = T0 + timedelta(minutes=30)
    stops = (plain.stops[0], replace(plain.stops[1], serve_from=ready), plain.stops[2])
    fixes = drive(replace(plain, stops=stops), jitter_m=0)
    at2 = [f for f in fixes if f.speed_kmh == 0 and near(f, *SQUARE[2])]
    arrive = (1000 + 1000) / (36 / 3.6) + 120  # cruise 36 km/h, stop 1's service
    assert abs(secs(at2[0]) - arrive) <= STEP
    assert abs(secs(at2[-1]) - (30 * 60 + 300)) <= STEP
    late = replace(plain.stops[1], serve_from=T0 - timedelta(hours=1))
    again = drive(replace(plain, stops=(plain.stops[0], late, plain.stops[2])), jitter_m=0)
    assert [secs(f) for f in again] == [secs(f) for f in drive(plain, jitter_m=0)]


# --- each fault shows exactly -----------------------------------------------------------


def test_detour_leaves_the_route_by_offset_over_its_stretch_only() -> None:
    # 200..800 m along the first leg, i.e. 20..80 s after leaving; full offset 300..700 m
    fixes = drive(trip(), faults=(Detour(after_m=200, length_m=600, offset_m=300),))
    away = [f for f in fixes if off_route(f) > 3.1]
    assert away and all(20 < secs(f) < 80 for f in away)
    full = [f for f in fixes if 30 <= secs(f) <= 70]
    assert all(abs(off_route(f) - 300) <= 3.1 for f in full)
    assert max(off_route(f) for f in fixes) == pytest.approx(300, abs=3.1)
    # positive offsets are to the left: heading east, left is north
    assert all(metres(f)[1] > 290 for f in full)


def test_speeding_drives_at_its_speed_over_its_stretch() -> None:
    # 200 m at 10 m/s (20 s), then 500 m at 20 m/s (25 s), then cruise again
    fixes = drive(trip(), faults=(Speeding(after_m=200, length_m=500, speed_kmh=72),))
    fast = [f for f in fixes if f.speed_kmh == 72.0]
    assert [secs(f) for f in fast] == [20, 25, 30, 35, 40]
    assert {f.speed_kmh for f in fixes} == {0.0, 36.0, 72.0}
    assert max(off_route(f) for f in fixes) <= 3.1
    clean_end = drive(trip())[-1].fix_time
    assert fixes[-1].fix_time == clean_end - timedelta(seconds=25)  # 500 m 25 s faster


def test_silence_is_a_gap_of_its_duration_while_the_vehicle_drives_on() -> None:
    clean = drive(trip(), jitter_m=0)
    fixes = drive(trip(), faults=(Silence(duration_s=120, after_m=300),), jitter_m=0)
    gaps = [(a, (b.fix_time - a.fix_time).total_seconds()) for a, b in itertools.pairwise(fixes)]
    big = [(a, g) for a, g in gaps if g > STEP]
    assert [(secs(a), g) for a, g in big] == [(30.0, 120.0)]  # 300 m in at 10 m/s
    assert len(fixes) == len(clean) - (120 / STEP - 1)
    by_time = {f.fix_time: f for f in clean}
    assert all(by_time[f.fix_time] == f for f in fixes)  # same places: it kept driving


def test_silence_after_seconds_counts_from_departure() -> None:
    fixes = drive(trip(), faults=(LateDeparture(60), Silence(duration_s=30, after_s=12)))
    gaps = [
        (secs(a), (b.fix_time - a.fix_time).total_seconds()) for a, b in itertools.pairwise(fixes)
    ]
    assert [g for g in gaps if g[1] > STEP] == [(75.0, 30.0)]  # 60 + 12 up to the 5 s grid


@pytest.mark.parametrize("ignition", [False, True])
def test_unplanned_stop_stands_still_for_its_duration(ignition: bool) -> None:
    fixes = drive(trip(), faults=(UnplannedStop(after_m=500, duration_s=600, ignition=ignition),))
    still = stationary_away(fixes)
    assert abs(len(still) * STEP - 600) <= STEP
    assert secs(still[-1]) - secs(still[0]) == pytest.approx(600, abs=STEP)
    assert all(near(f, 500, 0, 5) and f.ignition is ignition for f in still)
    assert fixes[-1].fix_time == drive(trip())[-1].fix_time + timedelta(seconds=600)


def test_late_departure_shifts_the_whole_trip() -> None:
    clean = drive(trip(), jitter_m=0)
    late = drive(trip(), faults=(LateDeparture(delay_s=900),), jitter_m=0)
    moving = [f for f in late if f.speed_kmh > 0]
    assert moving[0].fix_time == T0 + timedelta(seconds=900)
    assert all(
        near(f, 0, 0, 1) and f.speed_kmh == 0 for f in late if f.fix_time < moving[0].fix_time
    )
    shifted = [(f.fix_time - timedelta(seconds=900), f.lat, f.lon) for f in moving]
    assert shifted == [(f.fix_time, f.lat, f.lon) for f in clean if f.speed_kmh > 0]


def test_idle_at_depot_then_leave_on_time() -> None:
    fixes = drive(trip(), faults=(Idle(at="depot", duration_s=300),))
    idling = [f for f in fixes if f.speed_kmh == 0 and f.ignition]
    assert [secs(f) for f in idling] == [-300 + STEP * k for k in range(60)]
    assert all(near(f, 0, 0, 5) for f in idling)
    assert next(f for f in fixes if f.speed_kmh > 0).fix_time == T0
    assert fixes[0].fix_time == T0 - timedelta(seconds=300)  # the depot wait grew to fit


def test_idle_on_the_road() -> None:
    fixes = drive(trip(), faults=(Idle(at=1500.0, duration_s=240),))
    still = stationary_away(fixes)
    assert abs(len(still) * STEP - 240) <= STEP
    assert all(f.ignition and near(f, 1000, 500, 5) for f in still)


def test_parked_is_ignition_off_so_a_clean_trip_never_idles() -> None:
    fixes = drive(trip())
    assert not [f for f in fixes if f.speed_kmh == 0 and f.ignition]


# --- bad input says what to do ----------------------------------------------------------


def test_bad_input_is_refused_with_a_reason() -> None:
    with pytest.raises(FaultError, match="exactly one"):
        Silence(duration_s=10)
    with pytest.raises(FaultError, match="after_m"):
        Detour(after_m=-1, length_m=10, offset_m=5)
    with pytest.raises(FaultError, match="past the end"):
        drive(trip(), faults=(Speeding(after_m=5000, length_m=10, speed_kmh=90),))
    with pytest.raises(TripError, match="timezone-aware"):
        drive(DrivenTrip("X", LAT0, LON0, trip().route, (), datetime(2026, 12, 4)))
    far = DrivenStop(lonlat(500, 500)[1], lonlat(500, 500)[0], 60)
    with pytest.raises(TripError, match="stop 0 is 500 m"):
        drive(DrivenTrip("X", LAT0, LON0, trip().route, (far,), T0))


# --- fleets and payloads ----------------------------------------------------------------


def test_drive_many_merges_trips_in_time_order() -> None:
    fixes = drive_many([(trip("A"), ()), (trip("B"), (LateDeparture(7.5),))])
    assert fixes == sorted(fixes, key=lambda f: (f.fix_time, f.device_id))
    assert {f.device_id for f in fixes} == {"A", "B"}
    assert len(fixes) == len(drive(trip("A"))) + len(drive(trip("B"), faults=(LateDeparture(7.5),)))


def _decode(device: str, payload: bytes) -> list[Fix]:
    got = menara_json.decode(payload, session=Session(device_id=device))
    assert not got.rejects
    return [Fix.from_row(device, row) for row in got.fixes]


def test_json_payload_carries_ignition_only_when_known() -> None:
    fix = drive(trip())[0]
    assert json.loads(fix.json())["ignition"] is False
    (decoded,) = _decode("TRIP1", fix.json())
    assert decoded.ignition is False and decoded.fix_time == fix.fix_time
    unknown = SimFix("D", T0, LAT0, LON0, 0.0, 0.0, 0.0, 9, 0.9)
    assert "ignition" not in json.loads(unknown.json())
    assert _decode("D", unknown.json())[0].ignition is None


# --- sending through real transports ----------------------------------------------------


class _Subscriber:
    """A plain paho subscriber keeping every payload under one topic prefix."""

    def __init__(self, prefix: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        c.on_connect = lambda cl, *_: cl.subscribe(f"{prefix}/#", qos=1)
        c.on_subscribe = lambda *_: subscribed.set()
        c.on_message = self._on_message
        c.connect("127.0.0.1", 1883)
        c.loop_start()
        self.client = c
        assert subscribed.wait(5), "subscription not confirmed"

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.mqtt
@pytest.mark.parametrize("speedup", [None, 100.0])
def test_timeline_over_mqtt_arrives(speedup: float | None) -> None:
    asyncio.run(_over_mqtt(speedup))


async def _over_mqtt(speedup: float | None) -> None:
    prefix = f"menara-test/{uuid.uuid4().hex[:8]}"
    fixes = drive_many([(trip("MQ1"), ()), (trip("MQ2"), (LateDeparture(2.5),))])[:40]
    sub = _Subscriber(prefix)
    try:
        stats = await send_timeline(fixes, transport="mqtt", speedup=speedup, topic_prefix=prefix)
        assert stats.mqtt.fixes_sent == 40 and stats.sent == {f.key for f in fixes}
        await until(lambda: len(sub.messages) >= 40, what="40 fixes at the subscriber")
    finally:
        sub.close()
    got = {
        (fix.device_id, fix.fix_time, fix.ignition)
        for topic, payload in sub.messages
        for fix in _decode(topic.split("/")[-2], payload)
    }
    assert got == {(f.device_id, f.fix_time, f.ignition) for f in fixes}
    if speedup is not None:  # paced: fix time ran at most 100x faster than the clock
        span = (fixes[-1].fix_time - fixes[0].fix_time).total_seconds()
        assert stats.elapsed_s >= span / speedup


def test_timeline_over_tcp_t55_arrives() -> None:
    asyncio.run(_over_tcp())


async def _over_tcp() -> None:
    lines: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            lines.append(line)
        writer.close()

    port = free_port()
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    try:
        fixes = drive_many([(trip("TC1"), ()), (trip("TC2"), ())])[:20]
        stats = await send_timeline(fixes, transport="tcp", port=port)
        assert stats.tcp.fixes_sent == 20 and stats.tcp.vehicles == 2
        await until(
            lambda: sum(line.startswith(b"$GPRMC") for line in lines) == 20, what="20 RMC lines"
        )
        assert sum(line.startswith(b"$PGID") for line in lines) == 2
    finally:
        server.close()
        await server.wait_closed()


def test_unreachable_broker_says_so() -> None:
    timeline = drive(trip())[:1]
    with pytest.raises(SimulatorError, match="no MQTT broker"):
        asyncio.run(send_timeline(timeline, port=free_port(), connect_timeout_s=0.5))


_FAULTS = st.one_of(
    st.builds(LateDeparture, st.floats(1, 600)),
    st.builds(Detour, st.floats(0, 3500), st.floats(1, 2000), st.floats(-500, 500).filter(bool)),
    st.builds(Speeding, st.floats(0, 3500), st.floats(1, 2000), st.floats(1, 150)),
    st.builds(UnplannedStop, st.floats(0, 4000), st.floats(1, 600), st.booleans()),
    st.builds(Silence, st.floats(1, 300), after_m=st.floats(0, 4000)),
    st.builds(Silence, st.floats(1, 300), after_s=st.floats(0, 600)),
    st.builds(Idle, st.one_of(st.just("depot"), st.floats(0, 4000)), st.floats(1, 600)),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(_FAULTS, max_size=4), st.sampled_from([2.5, 5.0]))
def test_any_faults_give_an_ordered_timeline_near_the_route(faults: list[Any], step: float) -> None:
    fixes = drive(trip(), faults=faults, fix_interval_s=step)
    times = [f.fix_time for f in fixes]
    assert times == sorted(set(times))
    reach = sum(abs(f.offset_m) for f in faults if isinstance(f, Detour))  # they may overlap
    assert all(off_route(f) <= reach + 3.1 for f in fixes)
    assert all(f.ignition for f in fixes if f.speed_kmh > 0)
    assert near(fixes[0], 0, 0, 5) and fixes[0].speed_kmh == 0
    silences = sum(f.duration_s for f in faults if isinstance(f, Silence))
    assert max(b - a for a, b in itertools.pairwise(times)) <= timedelta(seconds=silences + step)
    if not silences:  # a silence may run past the return: then the last fixes never come
        # back at the depot, unless a detour still runs off the route's very end
        assert near(fixes[-1], 0, 0, 5 + reach) and fixes[-1].speed_kmh == 0
