"""The encoders write exactly what pynmea2 (the project's NMEA reference) reads back."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pynmea2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators import nmea_out
from simulators.errors import EncodeError

# One metre of latitude in degrees, rounded down: a bound that is easy to read.
M_PER_DEG = 111_000.0

# pynmea2 reads two-digit years 69..99 as 19xx.
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2068, 12, 31, 23), timezones=st.just(UTC)
)
lats = st.floats(min_value=-90, max_value=90, allow_nan=False)
lons = st.floats(min_value=-180, max_value=180, allow_nan=False)
speeds = st.floats(min_value=0, max_value=400, allow_nan=False)
courses = st.floats(min_value=0, max_value=360, allow_nan=False, exclude_max=True)


def _parse(line: bytes) -> pynmea2.NMEASentence:
    assert line.endswith(b"\r\n") and line.count(b"\r\n") == 1
    return pynmea2.parse(line.decode("ascii").rstrip("\r\n"), check=True)


def _cs(t: datetime) -> datetime:
    t = t + timedelta(microseconds=5000)
    return t.replace(microsecond=t.microsecond // 10000 * 10000)


def _close_deg(got: float, want: float) -> bool:
    return abs(got - want) * M_PER_DEG < 0.1


@given(times, lats, lons, speeds, courses, st.booleans())
def test_rmc_round_trips(
    t: datetime, lat: float, lon: float, speed: float, course: float, valid: bool
) -> None:
    msg = _parse(nmea_out.rmc(t, lat, lon, speed, course, valid=valid))
    assert msg.sentence_type == "RMC"
    assert msg.datetime == _cs(t)
    assert _close_deg(msg.latitude, lat) and _close_deg(msg.longitude, lon)
    assert abs(msg.spd_over_grnd * nmea_out.KMH_PER_KNOT - speed) < 0.001
    assert abs((msg.true_course - course + 180) % 360 - 180) <= 0.005 + 1e-9
    assert msg.status == ("A" if valid else "V")


@given(times, lats, lons, st.integers(0, 99), st.floats(0, 50), st.floats(-400, 9000))
def test_gga_round_trips(
    t: datetime, lat: float, lon: float, sats: int, hdop: float, alt: float
) -> None:
    msg = _parse(nmea_out.gga(t, lat, lon, satellites=sats, hdop=hdop, altitude_m=alt))
    assert msg.timestamp == _cs(t).timetz()
    assert _close_deg(msg.latitude, lat) and _close_deg(msg.longitude, lon)
    assert (msg.gps_qual, int(msg.num_sats)) == (1, sats)
    assert abs(float(msg.horizontal_dil) - hdop) <= 0.005 + 1e-9
    assert abs(msg.altitude - alt) <= 0.05 + 1e-9


@given(times, lats, lons, speeds, courses)
def test_pubx00_round_trips(
    t: datetime, lat: float, lon: float, speed: float, course: float
) -> None:
    line = nmea_out.pubx00(
        t, lat, lon, altitude_m=12.5, speed_kmh=speed, course_deg=course, satellites=9, hdop=0.9
    )
    msg = _parse(line)
    assert msg.ubx_type == "00"
    assert msg.timestamp == _cs(t).timetz()
    assert _close_deg(msg.latitude, lat) and _close_deg(msg.longitude, lon)
    assert abs(float(msg.sog) - speed) <= 0.0005 + 1e-9
    assert (msg.nav_stat, msg.num_svs) == ("G3", "9")


def test_known_sentences_byte_for_byte() -> None:
    t = datetime(2011, 11, 9, 9, 49, 7, tzinfo=UTC)
    assert nmea_out.rmc(t, 60.00888667, 30.34198667, 1.17 * 1.852, 60.26) == (
        b"$GPRMC,094907.00,A,6000.53320,N,03020.51920,E,1.170,60.26,091111,,,A*5E\r\n"
    )
    assert nmea_out.gga(t, -6.2, 106.8, satellites=8, hdop=0.9, altitude_m=7.0) == (
        b"$GPGGA,094907.00,0612.00000,S,10648.00000,E,1,08,0.90,7.0,M,,M,,*54\r\n"
    )
    # Identity lines from Traccar's T55 decoder tests.
    assert nmea_out.pgid("359853000144328") == b"$PGID,359853000144328*0F\r\n"
    assert nmea_out.sentence("PCPTI,CradlePoint Test,184453,184453.0,6F") == (
        b"$PCPTI,CradlePoint Test,184453,184453.0,6F*57\r\n"
    )


def test_checksum_is_xor_of_the_body() -> None:
    line = nmea_out.rmc(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), -6.2, 106.8, 30, 90)
    body, cs = line[1:-5], line[-4:-2]
    x = 0
    for b in body:
        x ^= b
    assert cs == f"{x:02X}".encode()


def test_rounding_carries_into_the_next_day_and_degree() -> None:
    t = datetime(2026, 12, 31, 23, 59, 59, 996_000, tzinfo=UTC)
    msg = _parse(nmea_out.rmc(t, -6.999999999, 106.9999999999, 0, 0))
    assert msg.datetime == datetime(2027, 1, 1, tzinfo=UTC)
    assert (msg.lat, msg.lon) == ("0700.00000", "10700.00000")


def test_talker_and_identity_lines() -> None:
    t = datetime(2026, 1, 2, 18, 44, 53, tzinfo=UTC)
    assert nmea_out.rmc(t, 0, 0, 0, 0, talker="GN").startswith(b"$GNRMC,")
    assert _parse(nmea_out.pcpti("T55-1", t)).data[1:3] == ["T55-1", "184453"]
    assert nmea_out.pcpti("T55-1").startswith(b"$PCPTI,T55-1,,,00*")


@pytest.mark.parametrize(
    "call",
    [
        lambda: nmea_out.rmc(datetime(2026, 1, 1), 0, 0, 0, 0),  # naive time
        lambda: nmea_out.rmc(datetime(2026, 1, 1, tzinfo=UTC), 91, 0, 0, 0),
        lambda: nmea_out.rmc(datetime(2026, 1, 1, tzinfo=UTC), math.nan, 0, 0, 0),
        lambda: nmea_out.rmc(datetime(2026, 1, 1, tzinfo=UTC), 0, 0, -1, 0),
        lambda: nmea_out.rmc(datetime(2026, 1, 1, tzinfo=UTC), 0, 0, 0, 0, talker="gp"),
        lambda: nmea_out.gga(
            datetime(2026, 1, 1, tzinfo=UTC), 0, 0, satellites=100, hdop=1, altitude_m=0
        ),
        lambda: nmea_out.pgid("A,B"),
        lambda: nmea_out.pgid("A*B"),
        lambda: nmea_out.pgid(""),
    ],
)
def test_bad_values_raise_encode_error(call: object) -> None:
    with pytest.raises(EncodeError):
        call()  # type: ignore[operator]


def test_json_fix_shape() -> None:
    t = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
    doc = nmea_out.json_fix(
        t, -6.2, 106.8, speed_kmh=30.5, course_deg=90.0, altitude_m=7.0, satellites=9, hdop=0.9
    )
    assert doc == {
        "fix_time": "2026-03-04T05:06:07.890000Z",
        "lat": -6.2,
        "lon": 106.8,
        "speed_kmh": 30.5,
        "course_deg": 90.0,
        "altitude_m": 7.0,
        "satellites": 9,
        "hdop": 0.9,
        "valid": True,
    }
    assert datetime.fromisoformat(doc["fix_time"]) == t
