"""GPS103: encoder round trips across time zones, framing under arbitrary cuts, replies."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from decoders import gps103
from decoders.model import Fix, Session
from simulators import gps103_out
from tests.decoders.invariants import check_fixes

COORD_STEP_DEG = 1 / 600_000  # four decimals of arc minutes, about 0.19 m
IMEI = "359710045559474"
T0 = datetime(2024, 6, 1, 23, 50, 10, tzinfo=UTC)

times = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30), timezones=st.just(UTC)
)
offsets = st.integers(min_value=-12 * 60 + 1, max_value=12 * 60).map(lambda m: timedelta(minutes=m))
lats = st.floats(min_value=-90, max_value=90, allow_nan=False)
lons = st.floats(min_value=-180, max_value=180, allow_nan=False)

POSITION = gps103_out.position(
    IMEI, time=T0, lat=-6.2, lon=106.8, speed_kmh=40.0, course_deg=90.0, valid=True
)
LOGIN = gps103_out.login(IMEI)
HEARTBEAT = gps103_out.heartbeat(IMEI)


def _fix(line: bytes, session: Session | None = None) -> Fix:
    frames, rest = gps103.split_frames(line)
    assert rest == b"" and len(frames) == 1
    out = gps103.decode_frames(frames, session=session or Session())
    check_fixes(out)
    assert out.rejects == () and len(out.fixes) == 1, out.rejects
    return out.fix_list()[0]


@given(times, offsets, lats, lons, st.floats(0, 500), st.floats(0, 359.99), st.booleans())
def test_round_trip_in_every_time_zone(
    t: datetime,
    offset: timedelta,
    lat: float,
    lon: float,
    speed: float,
    course: float,
    valid: bool,
) -> None:
    line = gps103_out.position(
        IMEI, time=t, lat=lat, lon=lon, speed_kmh=speed, course_deg=course, valid=valid,
        utc_offset=offset,
    )  # fmt: skip
    fix = _fix(line)
    assert abs((fix.fix_time - t).total_seconds()) <= 0.0005 + 1e-9
    assert abs(fix.lat - lat) <= COORD_STEP_DEG / 2 + 1e-12
    assert abs(fix.lon - lon) <= COORD_STEP_DEG / 2 + 1e-12
    assert fix.speed_kmh is not None and abs(fix.speed_kmh - speed) <= 0.005 * 1.852 + 1e-3
    assert fix.course_deg is not None and abs(fix.course_deg - course) <= 0.005 + 1e-4
    assert fix.valid is valid and fix.attributes == {}


def test_local_date_ahead_of_utc_gives_the_previous_utc_day() -> None:
    """23:50 UTC at UTC+8 is written 07:50 the next day; the fix stays on the UTC day."""
    line = gps103_out.position(
        IMEI, time=T0, lat=1, lon=1, speed_kmh=0, course_deg=0, valid=True,
        utc_offset=timedelta(hours=8),
    )  # fmt: skip
    assert b",240602075" in line
    assert _fix(line).fix_time == T0


def test_keywords_become_alarms() -> None:
    def attrs(keyword: str) -> tuple[dict[str, object], bool | None]:
        line = gps103_out.position(
            IMEI, time=T0, lat=1, lon=1, speed_kmh=0, course_deg=0, valid=True, keyword=keyword
        )
        fix = _fix(line)
        return fix.attributes, fix.ignition

    assert attrs("tracker") == ({}, None)
    assert attrs("help me") == ({"alarm": "sos"}, None)
    assert attrs("stockade") == ({"alarm": "geofence"}, None)
    assert attrs("ac alarm") == ({"alarm": "ac_alarm"}, None)
    assert attrs("acc on") == ({"alarm": "acc_on"}, True)
    assert attrs("acc off") == ({"alarm": "acc_off"}, False)
    assert attrs("bonnet alarm") == ({"alarm": "other", "alarm_code": "bonnet alarm"}, None)


def test_login_heartbeat_and_sos_replies() -> None:
    sos = gps103_out.position(
        IMEI, time=T0, lat=1, lon=1, speed_kmh=0, course_deg=0, valid=True, keyword="help me"
    )
    frames, rest = gps103.split_frames(LOGIN + b"\r\n" + HEARTBEAT + POSITION + sos)
    out = gps103.decode_frames(frames, session=Session())
    assert rest == b"" and out.rejects == () and len(out.fixes) == 2
    assert out.replies == (
        gps103_out.LOGIN_REPLY,
        gps103_out.HEARTBEAT_REPLY,
        f"**,imei:{IMEI},E;".encode(),
    )
    assert out.device_id == out.session.device_id == IMEI and out.refused_reply == b""


def test_cell_only_lines_keep_alarms_and_answer_sos() -> None:
    """``L`` lines have no position: routine ones are counted, alarms rejected ``no_fix``
    (kept, not counted away), and SOS answered as Traccar does so it is not resent."""
    line = f"imei:{IMEI},{{}},,,L,,,113b,,558f,,,,,0,0,,,;".format
    for keyword, code in [("tracker", None), ("help me", "no_fix"), ("ac alarm", "no_fix")]:
        frames, _ = gps103.split_frames(line(keyword).encode())
        out = gps103.decode_frames(frames, session=Session())
        assert [r.code for r in out.rejects] == ([code] if code else []), keyword
        assert out.ignored == (0 if code else 1) and len(out.fixes) == 0
        sos = (f"**,imei:{IMEI},E;".encode(),) if keyword == "help me" else ()
        assert out.replies == sos and out.device_id == IMEI


def test_a_second_imei_is_refused() -> None:
    other = gps103_out.login("359710045559475")
    out = gps103.decode_frames([LOGIN[:-1], other[:-1], POSITION[:-1]], session=Session())
    assert [r.code for r in out.rejects] == ["identity_changed"]
    assert out.replies == (b"LOAD",) and len(out.fixes) == 1


def test_a_rejected_heartbeat_prefixed_line_gets_no_on() -> None:
    """``<imei>imei:<other>,…``: the ``ON`` answers the line, so a refused line gets none."""
    other = POSITION[:-1].replace(IMEI.encode(), b"359710049999999")
    out = gps103.decode_frames([IMEI.encode() + other], session=Session(device_id=IMEI))
    assert [r.code for r in out.rejects] == ["identity_changed"] and out.replies == ()
    good = gps103.decode_frames([IMEI.encode() + POSITION[:-1]], session=Session(device_id=IMEI))
    assert good.replies == (b"ON",) and len(good.fixes) == 1


def _feed(pieces: list[bytes]) -> list[bytes]:
    frames: list[bytes] = []
    rest = b""
    for piece in pieces:
        got, rest = gps103.split_frames(rest + piece)
        frames += got
    assert rest == b""
    return frames


@given(st.lists(st.sampled_from([LOGIN, HEARTBEAT, POSITION]), min_size=1, max_size=12),
       st.lists(st.booleans(), min_size=12, max_size=12), st.randoms())  # fmt: skip
def test_random_cuts_give_the_same_frames(
    lines: list[bytes], crlf: list[bool], rng: random.Random
) -> None:
    stream = b"".join(ln + (b"\r\n" if nl else b"") for ln, nl in zip(lines, crlf, strict=False))
    cuts = sorted({rng.randrange(1, len(stream)) for _ in range(rng.randint(0, 8))})
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert _feed(pieces) == [ln[:-1] for ln in lines]


@given(st.binary(max_size=300))
def test_random_bytes_never_raise(buf: bytes) -> None:
    frames, rest = gps103.split_frames(buf)
    check_fixes(gps103.decode_frames([*frames, rest], session=Session(device_id=IMEI)))


@given(st.lists(st.sampled_from([LOGIN, HEARTBEAT, POSITION]), min_size=1, max_size=8),
       st.randoms())  # fmt: skip
def test_mutated_streams_only_give_rejects_or_sound_fixes(
    lines: list[bytes], rng: random.Random
) -> None:
    b = bytearray(b"".join(lines))
    for _ in range(rng.randint(1, 6)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    frames, rest = gps103.split_frames(bytes(b))
    check_fixes(gps103.decode_frames([*frames, rest], session=Session()))


@pytest.mark.slow
def test_long_fuzz(record_property: Callable[[str, object], None]) -> None:
    rng = random.Random(103)
    alt = (
        b"imei:861359038609986,Equipo 1,---,------,----,214734,241018,26,1,"
        b"-33.4,-70.6,067,229,0674,1.00,08,0,1,---,*"
    )
    seeds = [LOGIN, HEARTBEAT, POSITION, alt, b"imei:864895030279986,ac alarm,180404174252,,L,,,;"]
    runs = 0
    for _ in range(20_000):
        b = bytearray(b"".join(rng.choices(seeds, k=rng.randint(1, 6))))
        for _ in range(rng.randint(0, 10)):
            b[rng.randrange(len(b))] = rng.choice(b"0123456789,;*.:-NSEWAVF \r\n\xff")
        if rng.random() < 0.2:
            b = bytearray(rng.randbytes(rng.randint(0, 200)))
        frames, rest = gps103.split_frames(bytes(b))
        check_fixes(gps103.decode_frames([*frames, rest], session=Session()))
        runs += 1
    record_property("fuzz_inputs", runs)
    assert runs == 20_000
