"""H02: encoder round trips, framing under arbitrary cuts, identity, hostile bytes."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from decoders import h02
from decoders.model import Session
from simulators import h02_out
from tests.decoders.invariants import check_fixes

# Four decimals of arc minutes: 1/600000 degree, about 0.19 m.
COORD_STEP_DEG = 1 / 600_000
T0 = datetime(2024, 6, 1, 10, 10, 10, tzinfo=UTC)

times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23), timezones=st.just(UTC)
)
lats = st.floats(min_value=-90, max_value=90, allow_nan=False)
lons = st.floats(min_value=-180, max_value=180, allow_nan=False)
courses = st.floats(min_value=0, max_value=359.4, allow_nan=False)
statuses = st.integers(min_value=0, max_value=0xFFFFFFFF)

TEXT = h02_out.position(
    "4210051415", time=T0, lat=-6.2, lon=106.8, speed_kmh=40.0, course_deg=90.0, valid=True
)
BINARY = h02_out.binary_position(
    "4210051415", time=T0, lat=-6.2, lon=106.8, speed_kmh=40.0, course_deg=90.0, valid=True
)
# The 45-byte variant: the standard record and 13 more bytes (Traccar H02FrameDecoderTest).
LONG_45 = BINARY + bytes.fromhex("060000002c02dc0c000000001f")
HEARTBEAT = b"*HQ,4210051415,HTBT,100#"


def _one(frame: bytes) -> dict[str, Any]:
    frames, rest = h02.split_frames(frame)
    assert rest == b"" and frames == [frame]
    out = h02.decode_frames(frames, session=Session())
    check_fixes(out)
    assert out.rejects == () and len(out.fixes) == 1, out.rejects
    return out.fix_list()[0].to_json() | {"_fix": out.fix_list()[0]}


def _round_trip(
    encode: Callable[..., bytes], knots_step: float, t: datetime, lat: float, lon: float, **kw: Any
) -> None:
    speed_kmh, course, valid, status = kw["speed_kmh"], kw["course_deg"], kw["valid"], kw["status"]
    fix = _one(encode("4210051415", time=t, lat=lat, lon=lon, **kw))["_fix"]
    want_t = t.replace(microsecond=0)
    assert abs((fix.fix_time - want_t).total_seconds()) <= 1
    assert abs(fix.lat - lat) <= COORD_STEP_DEG / 2 + 1e-12
    assert abs(fix.lon - lon) <= COORD_STEP_DEG / 2 + 1e-12
    assert abs(fix.speed_kmh - speed_kmh) <= knots_step * h02_out.KMH_PER_KNOT / 2 + 1e-3
    assert fix.course_deg == round(course) % 360
    assert fix.valid is valid and fix.attributes["status"] == status
    assert fix.ignition is bool(status >> 10 & 1)


@given(times, lats, lons, st.floats(0, 1800), courses, st.booleans(), statuses)
def test_text_round_trip(
    t: datetime, lat: float, lon: float, speed: float, course: float, valid: bool, status: int
) -> None:
    _round_trip(
        h02_out.position, 0.01, t, lat, lon, speed_kmh=speed, course_deg=course, valid=valid,
        status=status,
    )  # fmt: skip


@given(times, lats, lons, st.floats(0, 1800), courses, st.booleans(), statuses)
def test_binary_round_trip(
    t: datetime, lat: float, lon: float, speed: float, course: float, valid: bool, status: int
) -> None:
    _round_trip(
        h02_out.binary_position, 1.0, t, lat, lon, speed_kmh=speed, course_deg=course,
        valid=valid, status=status,
    )  # fmt: skip


def test_status_alarms_follow_the_negative_logic_and_traccar_precedence() -> None:
    def alarm(status: int) -> Any:
        frame = h02_out.position(
            "1", time=T0, lat=1, lon=1, speed_kmh=0, course_deg=0, valid=True, status=status
        )
        return _one(frame)["attributes"].get("alarm")

    everything_clear = 0xFFFFFFFF
    assert alarm(everything_clear) is None
    assert alarm(everything_clear & ~(1 << 0)) == "vibration"
    assert alarm(everything_clear & ~(1 << 1)) == "sos"
    assert alarm(everything_clear & ~(1 << 18)) == "sos"
    assert alarm(everything_clear & ~(1 << 2)) == "overspeed"
    assert alarm(everything_clear & ~(1 << 19)) == "power_cut"
    assert alarm(everything_clear & ~0b111) == "vibration"  # one alarm: the first in order


def _feed(pieces: list[bytes]) -> list[bytes]:
    """Split pieces as ingest does: the tail is kept and prefixed to the next piece."""
    frames: list[bytes] = []
    rest = b""
    for piece in pieces:
        got, rest = h02.split_frames(rest + piece)
        frames += got
    assert rest == b""
    return frames


def _stream(kinds: list[int]) -> tuple[bytes, list[bytes], set[int]]:
    """A stream of frames, the frames, and cut points a reader cannot tell apart.

    A TCP read that ends 32 (or 42, 45, 46) bytes into a longer binary variant looks
    exactly like a shorter frame (the protocol has no length field), so those cuts are
    left out.
    """
    pool = [TEXT, BINARY, LONG_45, HEARTBEAT, TEXT + b"\r\n"]
    frames, ambiguous, stream = [], set(), b""
    for k in kinds:
        frame = pool[k]
        if len(frame) > h02.BINARY_LENGTHS[0] and frame[:1] == b"$":
            ambiguous |= {len(stream) + n for n in h02.BINARY_LENGTHS if n < len(frame)}
        frames.append(frame.removesuffix(b"\r\n"))
        stream += frame
    return stream, frames, ambiguous


@given(st.lists(st.integers(0, 4), min_size=1, max_size=12), st.randoms())
def test_random_cuts_give_the_same_frames(kinds: list[int], rng: random.Random) -> None:
    stream, frames, ambiguous = _stream(kinds)
    cuts = sorted(
        c for c in {rng.randrange(1, len(stream)) for _ in range(rng.randint(0, 8))}
        if c not in ambiguous
    )  # fmt: skip
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert _feed(pieces) == frames
    assert b"".join(frames) == stream.replace(b"\r\n", b"")  # nothing dropped
    out = h02.decode_frames(frames, session=Session())
    assert out.rejects == ()
    assert len(out.fixes) == sum(1 for f in frames if f != HEARTBEAT)


def test_noise_is_kept_as_its_own_frame_and_never_swallows_the_next() -> None:
    noise = b"junk,XYZ$ABC#"  # '$' and 'X' without BCD bytes are no markers
    frames, rest = h02.split_frames(noise + TEXT + BINARY)
    assert (frames, rest) == ([noise, TEXT, BINARY], b"")
    out = h02.decode_frames(frames, session=Session())
    assert [r.code for r in out.rejects] == ["garbage"] and len(out.fixes) == 2


def test_identity_is_named_by_every_frame_and_cannot_change() -> None:
    other = TEXT.replace(b"4210051415", b"4210051416")
    out = h02.decode_frames([TEXT, other, BINARY], session=Session())
    assert out.device_id == out.session.device_id == "4210051415"
    assert [r.code for r in out.rejects] == ["identity_changed"] and len(out.fixes) == 2
    anonymous = TEXT.replace(b"4210051415", b"")
    assert len(h02.decode(anonymous, session=out.session).fixes) == 1
    assert [r.code for r in h02.decode(anonymous, session=Session()).rejects] == ["no_identity"]


def test_blanks_between_frames_are_separators() -> None:
    """Some firmwares end frames with ``# \\r\\n`` (traccar-web issue 281)."""
    frames, rest = h02.split_frames(TEXT + b" \r\n" + BINARY + b"\t" + TEXT + b" ")
    assert (frames, rest) == ([TEXT, BINARY, TEXT], b"")


def test_47_byte_binary_frames_are_framed_whole() -> None:
    """45 bytes and two of external voltage (Traccar pull request 5703): alone in a read
    or followed by another frame, never cut at 32 with the rest left as garbage."""
    long_47 = LONG_45 + bytes.fromhex("0c1f")
    assert h02.split_frames(long_47) == ([long_47], b"")
    assert h02.split_frames(long_47 + TEXT + long_47) == ([long_47, TEXT, long_47], b"")
    out = h02.decode_frames([long_47], session=Session())
    assert out.rejects == () and _one(BINARY)["lat"] == out.fix_list()[0].lat


def test_v4_confirmations_carry_the_position_after_the_command() -> None:
    """``V4,<command>,<parameters…>,<command time>,<position…>`` (the confirm message)."""
    want = _one(TEXT)
    for command in (b"S20,DONE,130305", b"S14,100,10,1,3,130305", b"S23,1.2.3.4:5,130305"):
        frame = TEXT.replace(b",V1,", b",V4," + command + b",")
        got = _one(frame)
        assert {k: got[k] for k in ("fix_time", "lat", "lon", "speed_kmh")} == {
            k: want[k] for k in ("fix_time", "lat", "lon", "speed_kmh")
        }
    out = h02.decode(b"*HQ,4210051415,V4,S20,DONE,130305#", session=Session())
    assert (out.ignored, len(out.fixes), out.rejects) == (1, 0, ())


def test_zero_coordinates_without_hemisphere_are_no_fix() -> None:
    frame = b"*HQ,4210051415,V1,000000,V,0.0000,0,0.0000,0,0.00,0.00,000000,ffffffff#"
    assert [r.code for r in h02.decode(frame, session=Session()).rejects] == ["no_fix"]
    bad = frame.replace(b"0.0000,0,0.0000,0", b"12.0000,0,13.0000,0")
    assert [r.code for r in h02.decode(bad, session=Session()).rejects] == ["malformed"]


def test_heartbeats_are_echoed_and_positions_get_no_reply() -> None:
    out = h02.decode_frames([HEARTBEAT, TEXT, b"*HQ,4210051415,V0#"], session=Session())
    assert out.replies == (b"*HQ,4210051415,HTBT#", b"*HQ,4210051415,V0#")
    assert out.ignored == 2 and len(out.fixes) == 1


@given(st.binary(max_size=300))
def test_random_bytes_never_raise(buf: bytes) -> None:
    frames, rest = h02.split_frames(buf)
    check_fixes(h02.decode_frames([*frames, rest], session=Session(device_id="4210051415")))


@given(st.lists(st.integers(0, 4), min_size=1, max_size=8), st.randoms())
def test_mutated_streams_only_give_rejects_or_sound_fixes(
    kinds: list[int], rng: random.Random
) -> None:
    b = bytearray(_stream(kinds)[0])
    for _ in range(rng.randint(1, 6)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    frames, rest = h02.split_frames(bytes(b))
    check_fixes(h02.decode_frames([*frames, rest], session=Session()))


@pytest.mark.slow
def test_long_fuzz(record_property: Callable[[str, object], None]) -> None:
    rng = random.Random(2024)
    seeds = [TEXT, BINARY, LONG_45, HEARTBEAT, b"*HQ,1600068860,LINK,112137,20,8,67,0,0,081116#"]
    runs = 0
    for _ in range(20_000):
        b = bytearray(b"".join(rng.choices(seeds, k=rng.randint(1, 6))))
        for _ in range(rng.randint(0, 10)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        if rng.random() < 0.2:
            b = bytearray(rng.randbytes(rng.randint(0, 200)))
        frames, rest = h02.split_frames(bytes(b))
        check_fixes(h02.decode_frames([*frames, rest], session=Session()))
        runs += 1
    record_property("fuzz_inputs", runs)
    assert runs == 20_000
