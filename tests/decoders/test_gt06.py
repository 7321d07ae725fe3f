"""GT06: encoder round trips, framing under random cuts and noise, time replies, fuzz."""

from __future__ import annotations

import random
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from decoders import _gt06_frame, gt06
from decoders.model import Session
from simulators import gt06_out
from tests.decoders.invariants import check_fixes

IMEI = "359710049057012"
LOGGED_IN = Session(device_id=IMEI)
T0 = datetime(2024, 6, 1, 10, 20, 30, tzinfo=UTC)

times = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2099, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
).map(lambda t: t.replace(microsecond=0))
lats = st.floats(-90, 90, allow_nan=False)
lons = st.floats(-180, 180, allow_nan=False)


def _fix_kwargs() -> dict[str, st.SearchStrategy[Any]]:
    return {
        "time": times,
        "lat": lats,
        "lon": lons,
        "speed_kmh": st.integers(0, 255),
        "course_deg": st.integers(0, 360),
        "satellites": st.integers(0, 15),
        "valid": st.just(True),
        "serial": st.integers(0, 0xFFFF),
    }


def _stream(n: int, rng: random.Random) -> list[bytes]:
    """A login then ``n`` location, heartbeat and alarm packets."""
    frames = [gt06_out.login(IMEI, 1)]
    t = T0
    for i in range(n):
        t += timedelta(seconds=rng.randint(1, 30))
        kind = rng.random()
        fix: dict[str, Any] = {
            "time": t,
            "lat": rng.uniform(-60, 60),
            "lon": rng.uniform(-180, 180),
            "speed_kmh": rng.randint(0, 120),
            "course_deg": rng.randint(0, 359),
            "satellites": rng.randint(4, 12),
            "valid": True,
            "serial": i + 2,
        }
        if kind < 0.1:
            frames.append(gt06_out.heartbeat(i + 2))
        elif kind < 0.2:
            frames.append(gt06_out.alarm(**fix, alarm="sos"))
        else:
            proto = rng.choice((0x12, 0x22, 0xA0))
            frames.append(gt06_out.location(**fix, proto=proto, acc=rng.random() < 0.5))
    return frames


@given(
    st.fixed_dictionaries(_fix_kwargs()),
    st.sampled_from((0x12, 0x22, 0xA0)),
    st.sampled_from((None, False, True)),
    st.booleans(),
)
def test_location_round_trip(
    fix: dict[str, Any], proto: int, acc: bool | None, valid: bool
) -> None:
    frame = gt06_out.location(**{**fix, "valid": valid}, proto=proto, acc=acc)
    frames, rest = gt06.split_frames(frame)
    assert (frames, rest) == ([frame], b"")
    out = gt06.decode_frames(frames, session=LOGGED_IN)
    check_fixes(out)
    assert out.rejects == () and out.replies == ()  # locations are not acked
    raw = round(abs(fix["lat"]) * 1_800_000), round(abs(fix["lon"]) * 1_800_000)
    if not valid and raw == (0, 0):
        assert len(out.fixes) == 0 and out.ignored == 1  # no coordinates at all
        return
    [got] = out.fix_list()
    assert got.fix_time == fix["time"] and got.valid is valid
    assert abs(got.lat - fix["lat"]) < 3e-7 and abs(got.lon - fix["lon"]) < 3e-7
    assert (got.speed_kmh, got.course_deg) == (fix["speed_kmh"], fix["course_deg"])
    assert got.satellites == fix["satellites"] and got.ignition is acc
    assert got.attributes["serial"] == fix["serial"]


@given(
    st.fixed_dictionaries(_fix_kwargs()),
    st.sampled_from(sorted(gt06_out.ALARM_CODES)),
    st.sampled_from((0x16, 0x26)),
    st.booleans(),
)
def test_alarm_round_trip_is_acked(fix: dict[str, Any], name: str, proto: int, acc: bool) -> None:
    frame = gt06_out.alarm(**fix, alarm=name, proto=proto, acc=acc)
    out = gt06.decode_frames([frame], session=LOGGED_IN)
    check_fixes(out)
    assert out.replies == (gt06_out.server_ack(proto, fix["serial"]),)
    [got] = out.fix_list()
    assert got.attributes["alarm"] == name and got.ignition is acc
    assert "alarm_code" not in got.attributes


@given(st.from_regex(r"[0-9]{15}", fullmatch=True), st.integers(0, 0xFFFF))
def test_login_names_the_device_and_is_acked(imei: str, serial: int) -> None:
    out = gt06.decode_frames([gt06_out.login(imei, serial)], session=Session())
    assert out.device_id == out.session.device_id == imei
    assert out.replies == (gt06_out.server_ack(0x01, serial),)
    assert out.refused_reply == b""


@pytest.mark.parametrize(("zone", "hours"), [(0x3200, 8), (0x1F48, -5), (0x0000, 0)])
def test_a_login_time_zone_moves_the_connections_fixes_to_utc(zone: int, hours: int) -> None:
    """Login content: IMEI (8 BCD), type id (2), zone (bits 15-4 hhmm, bit 3 west): GMT+8:00
    is 800 << 4 = 0x3200, GMT-5:00 is 500 << 4 | 8 = 0x1F48. Devices that send it report
    local time (Traccar issues 325, 604), so 10:20:30 local is 10:20:30 - zone in UTC."""
    login = _gt06_frame.build(
        0x01, bytes.fromhex("0" + IMEI) + b"\x36\x08" + zone.to_bytes(2, "big"), 1
    )
    fix = gt06_out.location(
        time=T0,
        lat=-6.2,
        lon=106.8,
        speed_kmh=30,
        course_deg=90,
        satellites=9,
        valid=True,
        serial=2,
    )
    out = gt06.decode_frames([login, fix], session=Session())
    assert out.device_id == IMEI and out.session.utc_offset_s == hours * 3600
    assert [f.fix_time for f in out.fix_list()] == [T0 - timedelta(hours=hours)]
    later = gt06.decode_frames([fix], session=out.session)  # the zone holds for the connection
    assert [f.fix_time for f in later.fix_list()] == [T0 - timedelta(hours=hours)]


def test_heartbeat_is_acked_and_gives_no_fix() -> None:
    out = gt06.decode_frames([gt06_out.heartbeat(77, acc=True)], session=LOGGED_IN)
    assert out.replies == (gt06_out.server_ack(0x13, 77),) and len(out.fixes) == 0
    assert out.rejects == () and out.ignored == 0


def test_time_request_gets_the_given_utc_time() -> None:
    request = _gt06_frame.build(gt06.MSG_TIME_REQUEST, b"", 6)
    out = gt06.decode_frames([request], session=LOGGED_IN, now=lambda: T0)
    assert out.replies == (bytes.fromhex("78780b8a1806010a141e0006") + out.replies[0][-4:],)
    assert out.replies[0] == _gt06_frame.build(0x8A, bytes((24, 6, 1, 10, 20, 30)), 6)


def test_time_request_uses_the_wall_clock_by_default() -> None:
    request = _gt06_frame.build(gt06.MSG_TIME_REQUEST, b"", 1)
    before = datetime.now(UTC).replace(microsecond=0)
    [reply] = gt06.decode_frames([request], session=LOGGED_IN).replies
    after = datetime.now(UTC)
    y, mo, d, h, mi, sec = reply[4:10]
    sent = datetime(2000 + y, mo, d, h, mi, sec, tzinfo=UTC)
    assert before <= sent <= after


def test_crc_is_x25() -> None:
    assert _gt06_frame.crc_itu(b"123456789") == 0x906E  # CRC-16/X.25 check value
    # the login example of the GT06 V1.8 document (§5.1)
    assert gt06_out.login("123456789012345", 1).hex() == "78780d01012345678901234500018cdd0d0a"
    assert gt06_out.server_ack(0x01, 1).hex() == "787805010001d9dc0d0a"


def test_one_batch_equals_packet_by_packet() -> None:
    frames = _stream(40, random.Random(3))
    frames.insert(5, frames[5][:-3] + b"\x00\r\n")  # a bad CRC mid-stream
    batch = gt06.decode_frames(frames, session=Session())
    session, fixes = Session(), 0
    replies: list[bytes] = []
    for frame in frames:
        one = gt06.decode(frame, session=session)
        session, fixes = one.session, fixes + len(one.fixes)
        replies += one.replies
    assert [r.code for r in batch.rejects] == ["bad_crc"]
    assert fixes == len(batch.fixes) and tuple(replies) == batch.replies
    assert session == batch.session


@given(st.randoms(use_true_random=False), st.integers(1, 30))
def test_random_cuts_give_the_same_frames(rng: random.Random, n: int) -> None:
    frames = _stream(n, rng)
    stream = b"".join(frames)
    cuts = sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randint(0, 20))))
    got, rest = _feed(stream, cuts)
    assert got == frames and rest == b""


def _feed(stream: bytes, cuts: list[int]) -> tuple[list[bytes], bytes]:
    """Split ``stream`` as a socket would see it, in pieces ending at ``cuts``."""
    got: list[bytes] = []
    rest, start = b"", 0
    for end in [*cuts, len(stream)]:
        frames, rest = gt06.split_frames(rest + stream[start:end])
        got += frames
        start = end
    return got, rest


@given(st.binary(max_size=40), st.randoms(use_true_random=False))
def test_noise_is_kept_as_garbage_and_frames_survive(noise: bytes, rng: random.Random) -> None:
    frames = _stream(3, rng)
    # Noise that starts like a frame (7878/7979 and a length) is rightly waited on until
    # its claimed length has arrived, so the device keeps talking for longer than that.
    more = b"".join(_stream(3, random.Random(0)))
    after = more * (_gt06_frame.MAX_FRAME // len(more) + 2)
    stream = noise + b"".join(frames) + after
    got, rest = gt06.split_frames(stream)
    assert b"".join(got) + rest == stream  # nothing dropped
    survived = [got[i : i + 3] for i in range(len(got) - 2)]
    assert frames[-3:] in survived  # the packets after the noise are intact
    out = gt06.decode_frames([*got, rest] if rest else got, session=Session())
    assert len(out.fixes) + out.ignored + len(out.replies) >= 1


def test_impossible_length_resyncs_at_the_next_start_marker() -> None:
    login = gt06_out.login(IMEI, 1)
    junk = b"\x79\x79\xff\xff\x01\x02"  # a 7979 length beyond MAX_FRAME
    frames, rest = gt06.split_frames(junk + login)
    assert (frames, rest) == ([junk, login], b"")
    out = gt06.decode_frames(frames, session=Session())
    assert [r.code for r in out.rejects] == ["bad_length"] and out.device_id == IMEI


def test_a_lying_length_byte_costs_only_its_own_frame() -> None:
    stream = _stream(3, random.Random(1))
    bad = bytearray(stream[1])
    bad[2] += 7  # the length now runs into the next frame
    frames, rest = gt06.split_frames(stream[0] + bytes(bad) + stream[2] + stream[3])
    assert rest == b"" and frames == [stream[0], bytes(bad), stream[2], stream[3]]


def _mutate(stream: bytes, rng: random.Random) -> bytes:
    b = bytearray(stream)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        i = rng.randrange(len(b))
        if op < 0.6:
            b[i] = rng.randrange(256)
        elif op < 0.8:
            del b[i]
        else:
            b.insert(i, rng.choice((0x78, 0x79, 0x0D, 0x0A, rng.randrange(256))))
    return bytes(b)


def _survives(buf: bytes, session: Session) -> None:
    """Split and decode ``buf``: only DecodeError may escape, every fix is sound."""
    frames, rest = gt06.split_frames(buf)
    assert b"".join(frames) + rest == buf
    assert all(len(f) <= gt06.MAX_FRAME for f in frames) and len(rest) < gt06.MAX_FRAME
    check_fixes(gt06.decode_frames([*frames, rest], session=session))


@given(st.binary(max_size=400), st.sampled_from((Session(), LOGGED_IN)))
def test_random_bytes_never_raise(buf: bytes, session: Session) -> None:
    _survives(buf, session)


@given(st.randoms(use_true_random=False))
def test_mutated_streams_only_give_rejects_or_sound_fixes(rng: random.Random) -> None:
    _survives(_mutate(b"".join(_stream(6, rng)), rng), Session())


@pytest.mark.slow
def test_long_fuzz(capsys: pytest.CaptureFixture[str]) -> None:
    """200,000 mutated and random inputs; the count is printed past the capture."""
    rng = random.Random(20240601)
    base = b"".join(_stream(20, rng))
    runs = 0
    for i in range(200_000):
        if i % 4 == 0:
            buf = rng.randbytes(rng.randint(0, 300))
        else:
            start = rng.randrange(len(base) - 200)
            buf = _mutate(base[start : start + rng.randint(20, 200)], rng)
        _survives(buf, LOGGED_IN if i % 2 else Session())
        runs += 1
    with capsys.disabled():
        print(f"\ngt06 fuzz: {runs:,} inputs split and decoded")
    assert runs == 200_000


# A WiFi + cell packet without serial or CRC (Traccar Gt06ProtocolDecoderTest, 0x69).
WIFI = bytes.fromhex(
    "787803691604130318491475905BD30E25001E10BBF7635D14759006E626560501CC0028660F2132"
    "28660F1F2828660EA81E286610731428660F20140D0A"
)


def test_wifi_packets_without_crc_are_ignored_only_in_their_exact_shape() -> None:
    assert gt06.decode_frames([WIFI], session=LOGGED_IN).ignored == 1
    assert [r.code for r in gt06.decode_frames([WIFI], session=Session()).rejects] == [
        "no_identity"
    ]
    for bad in (WIFI[:-3] + WIFI[-2:], WIFI[:2] + b"\x04" + WIFI[3:]):  # a byte short, count
        out = gt06.decode_frames([bad], session=LOGGED_IN)
        assert [r.code for r in out.rejects] == ["bad_length"] and out.ignored == 0


def _gps_block(t: datetime, lat: float, lon: float) -> bytes:
    flags = 0x1000 | 0x0400 | 90  # positioned, north, east, course 90
    raw = (round(lat * 1_800_000), round(lon * 1_800_000))
    date = bytes((t.year - 2000, t.month, t.day, t.hour, t.minute, t.second))
    return date + b"\xc9" + struct.pack(">IIBH", *raw, 40, flags)


def test_x1_packet_needs_its_exact_length() -> None:
    """0x34: the port word counts the analog inputs that end the packet."""
    head = b"\0" * 4 + _gps_block(T0, 52.5, 13.25) + b"\0\0" + struct.pack(">I", 1234)
    tail = struct.pack(">HBHIIHHIBB", 204, 8, 1, 2, 0, 1250, 410, 1 << 20, 0, 0)
    [fix] = gt06.decode_frames(
        [_gt06_frame.build(0x34, head + tail + b"\0\x07", 9)], session=LOGGED_IN
    ).fix_list()
    assert (fix.fix_time, fix.odometer_m, fix.speed_kmh) == (T0, 1234.0, 40.0)
    assert (
        fix.attributes["external_voltage_v"] == 12.5 and fix.attributes["battery_voltage_v"] == 4.1
    )
    out = gt06.decode_frames([_gt06_frame.build(0x34, head + tail, 9)], session=LOGGED_IN)
    assert [r.code for r in out.rejects] == ["bad_length"] and out.replies == ()


def _module(kind: int, value: bytes) -> bytes:
    return struct.pack(">HH", kind, len(value)) + value


def test_modular_packet() -> None:
    """0x70: GPS module 0x33 (unix time), mileage 0x2E big endian, event 0x2B; acked with
    a short header; without a GPS module it is ignored, with an impossible time bad_date."""
    unix = int(T0.timestamp())
    gps = struct.pack(">IBhIIBH", unix, 9, -12, 94_500_000, 23_850_000, 30, 0x1400 | 45)
    body = _module(0x33, gps) + _module(0x2E, (62_045).to_bytes(4, "big")) + _module(0x2B, b"\x13")
    frame = _gt06_frame.build(0x70, body, 5, extended=True)
    out = gt06.decode_frames([frame], session=LOGGED_IN)
    assert out.replies == (_gt06_frame.build(0x70, b"", 5),)
    [fix] = out.fix_list()
    assert (fix.fix_time, fix.lat, fix.lon, fix.altitude_m) == (T0, 52.5, 13.25, -12.0)
    assert (fix.odometer_m, fix.attributes["alarm"]) == (62_045.0, "power_cut")
    no_gps = gt06.decode_frames(
        [_gt06_frame.build(0x70, body[22:], 6, extended=True)], session=LOGGED_IN
    )
    assert no_gps.ignored == 1 and len(no_gps.replies) == 1
    late = _module(0x33, struct.pack(">I", 0xFFFF_FFF0) + gps[4:])  # 2106
    out = gt06.decode_frames([_gt06_frame.build(0x70, late, 7, extended=True)], session=LOGGED_IN)
    assert [r.code for r in out.rejects] == ["bad_date"] and len(out.replies) == 1


def test_text_position_answer() -> None:
    """0x21 (UTF-16 or ASCII): only the 'Current position!' answer is a fix."""
    text = (
        "Current position!Lat:S33.5,Lon:W70.25,Course:10.00,Speed:5.5,DateTime:2024-06-01 10:20:30"
    )
    for enc_byte, codec in ((b"\x01", "ascii"), (b"\x02", "utf-16-be")):
        body = b"\0" * 4 + enc_byte + text.encode(codec)
        [fix] = gt06.decode_frames(
            [_gt06_frame.build(0x21, body, 3, extended=True)], session=LOGGED_IN
        ).fix_list()
        assert (fix.fix_time, fix.lat, fix.lon, fix.speed_kmh) == (T0, -33.5, -70.25, 5.5)
    other = _gt06_frame.build(0x21, b"\0\0\0\0\x01Command error!", 4, extended=True)
    assert gt06.decode_frames([other], session=LOGGED_IN).ignored == 1
