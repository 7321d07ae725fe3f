"""OsmAnd: round trips through the phone-side encoder, identity rules, hostile requests."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from decoders import osmand
from decoders.errors import DecodeError
from decoders.model import Decoded, Session
from simulators.osmand_out import json_body, query
from tests.decoders.invariants import check_fixes

T0 = datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)
BASE = "id=phone-7&lat=-6.2&lon=106.8&timestamp=1767600000"

times = st.datetimes(
    min_value=datetime(1980, 1, 6), max_value=datetime(2099, 12, 30), timezones=st.just(UTC)
).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
readings = st.none() | st.floats(0, 359.0)


def decode(text: str | bytes) -> Decoded:
    out = osmand.decode(text.encode() if isinstance(text, str) else text, session=Session())
    check_fixes(out)
    return out


def codes(out: Decoded) -> list[str]:
    return [r.code for r in out.rejects]


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)


@given(
    time=times,
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    speed=st.none() | st.floats(0, 1999),
    bearing=readings,
    altitude=st.none() | st.floats(-999, 99_999),
    accuracy=st.none() | st.floats(0, 10_000),
    batt=st.none() | st.floats(0, 100),
    as_json=st.booleans(),
)
def test_round_trip(
    time: datetime,
    lat: float,
    lon: float,
    speed: float | None,
    bearing: float | None,
    altitude: float | None,
    accuracy: float | None,
    batt: float | None,
    as_json: bool,
) -> None:
    kw: dict[str, Any] = dict(time=time, lat=lat, lon=lon, speed_kmh=speed, bearing=bearing)
    kw |= dict(altitude_m=altitude, accuracy_m=accuracy, batt_pct=batt)
    body = json_body("phone-7", **kw) if as_json else query("phone-7", **kw).encode()
    out = decode(body)
    assert out.rejects == () and out.device_id == "phone-7"
    (fix,) = out.fix_list()
    assert (fix.fix_time, fix.lat, fix.lon, fix.valid) == (time, lat, lon, True)
    assert close(fix.speed_kmh, speed) and close(fix.course_deg, bearing)
    assert close(fix.altitude_m, altitude)
    assert close(fix.attributes.get("accuracy_m"), accuracy)
    want_batt = None if batt is None else (round(batt, 2) if as_json else batt)
    assert close(fix.attributes.get("battery_level_pct"), want_batt)


def test_query_speed_is_knots_and_json_speed_is_metres_per_second() -> None:
    (q,) = decode(BASE + "&speed=10").fix_list()
    coords = {"latitude": 1.0, "longitude": 2.0, "speed": 10}
    location = {"timestamp": "2026-01-05T08:00:00Z", "coords": coords}
    (j,) = decode(json.dumps({"device_id": "p", "location": location})).fix_list()
    assert (q.speed_kmh, j.speed_kmh) == (18.52, 36.0)


def test_timestamp_forms() -> None:
    for stamp, want in [
        ("1767600000", T0),
        ("1767600000250", T0 + timedelta(milliseconds=250)),
        ("2026-01-05T08:00:00Z", T0),
        ("2026-01-05T10:00:00%2B02:00", T0),
        ("2026-01-05+08:00:00", T0),
        ("2026-01-05T08:00:00", T0),  # no offset: UTC
        ("2026-01-05%2008:00:00.250", T0 + timedelta(milliseconds=250)),  # traccar#1664
    ]:
        (fix,) = decode(f"id=a&lat=1&lon=2&timestamp={stamp}").fix_list()
        assert fix.fix_time == want, stamp
    for stamp in ("12", "-1767600000", "4102444800", "yesterday", "2026-13-05T08:00:00Z", "9" * 30):
        assert codes(decode(f"id=a&lat=1&lon=2&timestamp={stamp}")) == ["bad_date"], stamp


def test_identity_rules() -> None:
    assert codes(decode("lat=1&lon=2&timestamp=1767600000")) == ["no_identity"]
    assert codes(decode("id=&lat=1&lon=2&timestamp=1767600000")) == ["no_identity"]
    assert codes(decode("id=a&deviceid=b&lat=1&lon=2&timestamp=1767600000")) == [
        "conflicting_identity"
    ]
    assert codes(decode("id=a%2Fb&lat=1&lon=2&timestamp=1767600000")) == ["bad_identity"]
    assert codes(decode("id=" + "7" * 65 + "&lat=1&lon=2&timestamp=1767600000")) == ["bad_identity"]
    out = osmand.decode(BASE.encode(), session=Session(device_id="other"))
    assert codes(out) == ["identity_changed"] and len(out.fixes) == 0


def test_frames_of_one_phone_share_a_session() -> None:
    lines = [BASE.encode(), b"", BASE.replace("1767600000", "1767600001").encode()]
    out = osmand.decode_frames(lines, session=Session())
    assert len(out.fixes) == 2 and out.session.device_id == "phone-7" and out.rejects == ()


def test_one_bad_request_spoils_no_other() -> None:
    frames = [b"id=phone-7&lat=x&lon=2&timestamp=1767600000", BASE.encode(), b"\xff\xfe"]
    out = osmand.decode_frames(frames, session=Session())
    assert codes(out) == ["bad_number", "no_identity"] and len(out.fixes) == 1
    assert out.rejects[0].raw == frames[0]


def test_optional_readings_out_of_range_are_unknown_not_rejected() -> None:
    (fix,) = decode(BASE + "&speed=-1&bearing=400&hdop=-3&batt=250&altitude=1e7").fix_list()
    assert (fix.speed_kmh, fix.course_deg, fix.hdop, fix.altitude_m) == (None, None, None, None)
    assert "battery_level_pct" not in fix.attributes


def test_unknown_parameters_are_typed_and_bounded() -> None:
    many = "".join(f"&p{i}={i}" for i in range(50))
    (fix,) = decode(BASE + "&driverUniqueId=D1&flag=true&x=1e999" + many).fix_list()
    assert fix.attributes["driverUniqueId"] == "D1" and fix.attributes["flag"] is True
    assert fix.attributes["x"] == "1e999"  # not a finite number: kept as text
    assert len(fix.attributes) == osmand.MAX_EXTRA
    (fix,) = decode(BASE + "&k=" + "v" * 300 + "&" + "k" * 70 + "=1&n=%00&alarm_code=9").fix_list()
    assert fix.attributes == {}


def test_json_batch_rejects_per_element() -> None:
    good = {"timestamp": "2026-01-05T08:00:00Z", "coords": {"latitude": 1, "longitude": 2}}
    bad = {"timestamp": "2026-01-05T08:00:00Z", "coords": {"latitude": 91, "longitude": 2}}
    body = json.dumps({"device_id": "p", "location": [good, bad, "x"]})
    out = decode(body)
    assert len(out.fixes) == 1 and codes(out) == ["bad_coordinates", "no_fix"]
    assert json.loads(out.rejects[0].raw) == bad


def test_hostile_json() -> None:
    for body in [
        '{"device_id": "p", "location": {"coords": {"latitude": NaN, "longitude": 1}}}',
        "{" * 100_000,
        '{"device_id": 1e999}',
        '{"device_id": "p", "location": {"timestamp": "2026-01-05T08:00:00Z",'
        ' "coords": {"latitude": 1' + "0" * 400 + ', "longitude": 1}}}',
        '{"device_id": "p", "location": {"timestamp": "2026-01-05T08:00:00Z",'
        ' "coords": {"latitude": "1", "longitude": true}}}',
        '{"device_id": "p", "location": {"timestamp": "2026-01-05T08:00:00Z",'
        ' "coords": {"latitude": 1, "longitude": 2}, "extras": {"\\ud800": "\\u0000"}}}',
        '["not", "an", "object"]',
    ]:
        out = decode(body)
        assert out.rejects or len(out.fixes) == 1
        for attrs in out.attributes:
            assert attrs == {}


def test_hostile_queries() -> None:
    for q in [
        BASE + "&lat=nan",
        BASE + "&lat=inf",
        BASE + "&lat=1_0",
        BASE + "&lat=" + "9" * 5000,
        BASE + "&location=1",
        BASE + "&cell=1,2",
        BASE + "&sat=3.5",
        BASE + "&ignition=maybe",
        "&".join(["a=1"] * 500),
        "id=é&lat=1&lon=2&timestamp=1767600000",
        "id=%F0%9F%9A%9A&lat=1&lon=2&timestamp=1767600000",
    ]:
        out = decode(q)
        assert len(out.rejects) == 1 and len(out.fixes) == 0, q


def test_flags_are_true_false_one_zero_or_on_off_in_any_case() -> None:
    for value, want in [("true", True), ("1", True), ("ON", True), ("Off", False), ("0", False)]:
        (fix,) = decode(f"{BASE}&ignition={value}").fix_list()
        assert fix.ignition is want, value


def test_repeated_parameters_last_wins() -> None:
    (fix,) = decode(BASE + "&lat=1&lat=2&speed=1&speed=").fix_list()
    assert fix.lat == 2.0 and fix.speed_kmh == 1.852


@given(st.binary(max_size=400))
def test_random_bytes_never_raise(buf: bytes) -> None:
    try:
        frames, rest = osmand.split_frames(buf)
        decode(b"\n".join([*frames, rest]))
        check_fixes(osmand.decode_frames([*frames, rest], session=Session()))
    except DecodeError:
        pass


@given(st.text(alphabet='id=&lat0123456789.,-+eE%xyz{}[]":ntrufals ', max_size=200))
def test_near_miss_text_never_raises(text: str) -> None:
    decode(text)
    decode("id=a&timestamp=1767600000&" + text)


def test_split_frames_keeps_the_tail() -> None:
    frames, rest = osmand.split_frames(b"a=1\r\nb=2\nc=")
    assert (frames, rest) == ([b"a=1", b"b=2"], b"c=")
