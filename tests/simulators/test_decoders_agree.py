"""The project's own decoders read simulator bytes back to the fixes the simulator drove."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest

from decoders import menara_json, t55, teltonika
from decoders.model import Fix, Session
from simulators import nmea_out
from simulators.dialects import DIALECTS
from simulators.routes import JAKARTA_ROUTES
from simulators.vehicle import SimFix, Vehicle, garbage_line

START = datetime(2026, 11, 25, 23, 59, 50, tzinfo=UTC)  # crosses midnight


def _drive(n: int) -> list[SimFix]:
    v = Vehicle("SIM00007", JAKARTA_ROUTES[3], start=START, rate_hz=2.0, seed=7)
    fixes = v.fixes()
    return [next(fixes) for _ in range(n)]


def _same(got: Fix, want: SimFix) -> None:
    assert (got.device_id, got.fix_time) == want.key
    assert got.lat == pytest.approx(want.lat, abs=1e-6)
    assert got.lon == pytest.approx(want.lon, abs=1e-6)
    assert got.speed_kmh == pytest.approx(want.speed_kmh, abs=0.01)
    assert got.course_deg == pytest.approx(want.course_deg, abs=0.01)
    assert got.altitude_m == pytest.approx(want.altitude_m, abs=0.05)
    assert (got.satellites, got.valid) == (want.satellites, True)
    assert got.hdop == pytest.approx(want.hdop, abs=0.005)


def test_t55_stream_decodes_to_the_driven_fixes() -> None:
    want = _drive(40)
    rng = random.Random(3)
    junk = [garbage_line(rng, f) for f in want[:5]]
    stream = nmea_out.pgid("SIM00007") + b"".join(junk) + b"".join(f.nmea() for f in want)
    frames, rest = t55.split_frames(stream)
    assert rest == b""
    decoded = t55.decode_frames(frames, session=Session())
    got = decoded.fix_list()
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        _same(g, w)
    assert len(decoded.rejects) == len(junk)


def test_json_payload_decodes_to_the_driven_fix() -> None:
    for want in _drive(5):
        frames, _ = menara_json.split_frames(want.json())
        decoded = menara_json.decode_frames(frames, session=Session(device_id=want.device_id))
        (got,) = decoded.fix_list()
        _same(got, want)
        assert json.loads(want.json())["fix_time"].endswith("Z")


@pytest.mark.parametrize(("ignition", "decoded"), [(True, 1), (False, 0), (None, -1)])
def test_teltonika_trackers_report_the_ignition_they_have(
    ignition: bool | None, decoded: int
) -> None:
    """A van standing at a customer with the engine off must not read as idling (the
    dialect once sent IO 239 = 1 whatever the fix said)."""
    fix = SimFix("356307042441013", START, -6.2, 106.8, 0.0, 90.0, 8.0, 9, 0.9, ignition)
    frame = DIALECTS["teltonika"].encode(fix, 0)
    frames, rest = teltonika.split_frames(frame)
    out = teltonika.decode_frames(frames, session=Session(device_id=fix.device_id))
    assert rest == b""
    assert out.fixes["ignition"].tolist() == [decoded]
