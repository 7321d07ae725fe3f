"""The issue's misbehaviour scenarios on a hand-laid world: one vehicle per fault, plus
a clean one, each driving a dispatched three-stop trip east of the depot.

Stops at 4 km east, 8 km east and 8 km east 4 km north (straight legs of 400 s at
36 km/h, 5 min service), then back along the diagonal. The faults sit mid-leg, away
from stops (a silence that swallowed a whole stop visit would rightly be reported as a
skipped stop too), so each vehicle should raise exactly the alerts in ``EXPECTED``.
The detour swings north of the first leg towards the return diagonal: the corridor
must follow the vehicle's progress, not measure to the nearest leg anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from decoders.model import FixArray, empty_fixes
from simulators.faults import Detour, Fault, LateDeparture, Silence, Speeding, UnplannedStop
from simulators.trip_driver import DrivenStop, DrivenTrip, drive_many
from simulators.vehicle import SimFix
from tests.tower.world import Fleet, TripSpec

STOPS_M = ((4000.0, 0.0), (8000.0, 0.0), (8000.0, 4000.0))
FAULTS: dict[str, tuple[Fault, ...]] = {
    "CLEAN-1": (),
    "DETOUR-1": (Detour(after_m=1000, length_m=1500, offset_m=600),),
    "SPEED-1": (Speeding(after_m=5000, length_m=1000, speed_kmh=120),),
    "STOP-1": (UnplannedStop(after_m=5500, duration_s=600),),
    "LATE-1": (LateDeparture(delay_s=2400),),
    "SILENT-1": (Silence(after_m=4100, duration_s=330),),
    # 15 min without a fix from 1 km out: the van drives to stop 1, serves it, leaves
    # and is 3 km on when fixes return (a visit only the van's progress shows)
    "GAP-1": (Silence(after_m=1000, duration_s=900),),
    # the same silence from 1 km before a 20-minute service: fixes return at the stop
    "GAP-LONG-1": (Silence(after_m=3000, duration_s=900),),
}
SERVICES: dict[str, tuple[int, ...]] = {"GAP-LONG-1": (1200,)}  # else SERVICE_S
# (alert type, key) per plate; eta_at_risk is keyed by stop (1..3 in trip order).
EXPECTED: dict[str, set[tuple[str, str]]] = {
    "CLEAN-1": set(),
    "DETOUR-1": {("route_deviation", "")},
    "SPEED-1": {("overspeed", "")},
    "STOP-1": {("unplanned_stop", "")},
    "LATE-1": {("late_departure", ""), *(("eta_at_risk", f"stop{k}") for k in (1, 2, 3))},
    "SILENT-1": {("silent_device", "")},
    "GAP-1": {("silent_device", "")},
    "GAP-LONG-1": {("silent_device", "")},
}


@dataclass(frozen=True)
class FixBatch:
    """What the writer hands on, for feeding the tower directly."""

    device_id: str
    fixes: FixArray
    received_us: int


def specs(departure: datetime) -> list[TripSpec]:
    return [
        TripSpec(plate, f"DEV-{plate}", STOPS_M, departure, service_s=SERVICES.get(plate, ()))
        for plate in FAULTS
    ]


def timeline(fleet: Fleet) -> list[SimFix]:
    """Every vehicle's fixes, merged in time order."""
    trips = []
    for plate, faults in FAULTS.items():
        b = fleet.trips[plate]
        driven = DrivenTrip(
            b.spec.device_id,
            fleet.depot_lat,
            fleet.depot_lon,
            b.route,
            tuple(
                DrivenStop(lat, lon, b.spec.service(k))
                for k, (lat, lon) in enumerate(b.stops_latlon)
            ),
            b.spec.departure,
        )
        trips.append((driven, faults))
    return drive_many(trips)


def to_array(fixes: Sequence[SimFix]) -> FixArray:
    """SimFixes as the decoders' record array."""
    a = empty_fixes(len(fixes))
    epoch = datetime(1970, 1, 1, tzinfo=fixes[0].fix_time.tzinfo) if fixes else None
    for i, f in enumerate(fixes):
        assert epoch is not None
        a[i]["fix_time_us"] = (f.fix_time - epoch) // timedelta(microseconds=1)
        a[i]["lat"], a[i]["lon"] = f.lat, f.lon
        a[i]["speed_kmh"], a[i]["course_deg"] = f.speed_kmh, f.course_deg
        a[i]["satellites"], a[i]["hdop"], a[i]["valid"] = f.satellites, f.hdop, True
        a[i]["ignition"] = -1 if f.ignition is None else int(f.ignition)
    return a


def chunks(fixes: Sequence[SimFix], seconds: float) -> list[list[SimFix]]:
    """The merged timeline cut into ``seconds`` of fix time (what arrives in a while)."""
    out: list[list[SimFix]] = []
    if not fixes:
        return out
    start = fixes[0].fix_time
    for f in fixes:
        k = int((f.fix_time - start).total_seconds() // seconds)
        while len(out) <= k:
            out.append([])
        out[k].append(f)
    return out


def batches(chunk: Sequence[SimFix], received_us: int) -> list[FixBatch]:
    by_device: dict[str, list[SimFix]] = {}
    for f in chunk:
        by_device.setdefault(f.device_id, []).append(f)
    return [FixBatch(d, to_array(fs), received_us) for d, fs in sorted(by_device.items())]


def stop_keys(fleet: Fleet) -> dict[str, str]:
    """Stop id → "stopN" (its place in its trip), to compare alert keys across runs."""
    return {
        str(sid): f"stop{k}" for b in fleet.trips.values() for k, sid in enumerate(b.stop_ids, 1)
    }
