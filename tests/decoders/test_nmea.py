"""The NMEA kernel against pynmea2, field by field, plus merging, rollover and framing."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, time, timedelta

import numpy as np
import pynmea2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decoders import _nmea_kernels, nmea, t55
from decoders.model import Decoded, Session
from tests.decoders.invariants import check_fixes
from tests.decoders.nmea_gen import gga, rmc, with_checksum

DAY_US = 86_400_000_000


def _utc_us(d: datetime) -> int:
    return (d - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _one(line: str, session: Session | None = None) -> Decoded:
    out = nmea.decode(line.encode(), session=session or Session())
    check_fixes(out)
    assert not out.rejects, out.rejects
    assert len(out.fixes) == 1
    return out


def _close(a: float, b: float, rel: float = 1e-6) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def _tod_us(t: time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


@given(rmc())
def test_rmc_matches_pynmea2(line: str) -> None:
    ref = pynmea2.parse(line)
    row = _one(line).fixes[0]
    assert abs(row["lat"] - ref.latitude) < 1e-9
    assert abs(row["lon"] - ref.longitude) < 1e-9
    assert bool(row["valid"]) == (ref.status == "A")
    assert _close(float(row["speed_kmh"]), float(ref.spd_over_grnd) * 1.852)
    course = float("nan") if ref.true_course is None else float(ref.true_course)
    assert _close(float(row["course_deg"]), course)
    day_us = (ref.datestamp.toordinal() - 719163) * DAY_US
    assert abs(int(row["fix_time_us"]) - day_us - _tod_us(ref.timestamp)) <= 1
    assert row["satellites"] == -1 and math.isnan(row["altitude_m"])


@given(gga(), st.integers(7000, 30000))
def test_gga_matches_pynmea2(line: str, date_days: int) -> None:
    ref = pynmea2.parse(line)
    tod_ms = _tod_us(ref.timestamp) // 1000
    row = _one(line, Session(last_date_days=date_days, last_tod_ms=tod_ms)).fixes[0]
    assert abs(row["lat"] - ref.latitude) < 1e-9
    assert abs(row["lon"] - ref.longitude) < 1e-9
    assert bool(row["valid"]) == (ref.gps_qual > 0)
    assert int(row["satellites"]) == int(ref.num_sats)
    assert _close(float(row["hdop"]), float(ref.horizontal_dil))
    alt = float("nan") if ref.altitude is None else float(ref.altitude)
    assert _close(float(row["altitude_m"]), alt)
    assert abs(int(row["fix_time_us"]) - date_days * DAY_US - _tod_us(ref.timestamp)) <= 1


@pytest.mark.parametrize(
    "line",
    [
        "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A",
        "$GPRMC,225446,A,4916.45,N,12311.12,W,000.5,054.7,191194,020.3,E*68",
        "$GNRMC,001031.00,A,4404.13993,N,12118.86023,W,0.146,,100117,,,A*7B",
        "$GPRMC,210230,A,3855.4487,N,09446.0071,W,0.0,076.2,130495,003.8,E*69",
        "$GPRMC,064411.000,A,3717.240078,N,00603.046984,W,0.000,1,010313,,,A*6C",
    ],
)
def test_real_world_rmc_matches_pynmea2(line: str) -> None:
    ref = pynmea2.parse(line)
    row = _one(line).fixes[0]
    assert abs(row["lat"] - ref.latitude) < 1e-9 and abs(row["lon"] - ref.longitude) < 1e-9
    expected = datetime.combine(ref.datestamp, ref.timestamp)
    assert int(row["fix_time_us"]) == _utc_us(expected)


def test_rmc_and_gga_of_one_epoch_merge_into_one_fix() -> None:
    buf = (
        "$GNGGA,101010.00,5130.0,N,00007.5,W,1,12,0.6,11.0,M,45.0,M,,*6E\n"
        + with_checksum("GNRMC,101010.00,A,5130.0,N,00007.5,W,10.0,90.0,010624,,,A")
        + "\n"
        + with_checksum("GNRMC,101011.00,A,5130.0,N,00007.5,W,10.0,90.0,010624,,,A")
        + "\n"
    )
    out = nmea.decode_buffer(buf.encode(), session=Session())
    assert [r.code for r in out.rejects] == ["bad_checksum"]  # the GGA's *6E is wrong
    buf = buf.replace("*6E", "*" + with_checksum(buf[1:].split("*")[0])[-2:])
    out = nmea.decode_buffer(buf.encode(), session=Session())
    assert not out.rejects
    assert len(out.fixes) == 2
    first, second = out.fixes
    assert first["satellites"] == 12 and first["speed_kmh"] == np.float32(18.52)
    assert int(second["fix_time_us"]) - int(first["fix_time_us"]) == 1_000_000
    assert second["satellites"] == -1


def test_dateless_epoch_uses_session_date_and_rolls_over_midnight() -> None:
    late = Session(last_date_days=10_956, last_tod_ms=86_399_000)  # 1999-12-31 23:59:59
    line = with_checksum("GPGGA,000001,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,")
    out = _one(line, late)
    assert int(out.fixes[0]["fix_time_us"]) == 10_957 * DAY_US + 1_000_000
    assert (out.session.last_date_days, out.session.last_tod_ms) == (10_957, 1000)
    early = Session(last_date_days=10_957, last_tod_ms=1000)
    back = _one(
        with_checksum("GPGGA,235959,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), early
    )
    assert int(back.fixes[0]["fix_time_us"]) == 10_956 * DAY_US + 86_399_000_000


def test_session_carries_date_across_calls() -> None:
    rmc_line = with_checksum("GPRMC,120000,A,4807.038,N,01131.000,E,1.0,2.0,150624,,")
    gga_line = with_checksum("GPGGA,120001,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,")
    first = _one(rmc_line)
    second = _one(gga_line, first.session)
    assert int(second.fixes[0]["fix_time_us"]) - int(first.fixes[0]["fix_time_us"]) == 1_000_000


@given(st.lists(st.one_of(rmc(), gga()), min_size=1, max_size=20), st.data())
def test_split_frames_gives_the_same_frames_back_wherever_the_stream_is_cut(
    lines: list[str], data: st.DataObject
) -> None:
    eols = [data.draw(st.sampled_from(["\n", "\r\n"])) for _ in lines]
    stream = "".join(f"{ln}{eol}" for ln, eol in zip(lines, eols, strict=True)).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    frames: list[bytes] = []
    rest = b""
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got, rest = nmea.split_frames(rest + stream[a:b])
        frames += got
    assert rest == b""
    assert frames == [ln.encode() for ln in lines]


def test_split_frames_bounds_a_line_without_newline() -> None:
    frames, rest = nmea.split_frames(b"$" + b"A" * 2000)
    assert rest == b"" and len(frames) == 1
    assert [r.code for r in nmea.decode_frames(frames, session=Session()).rejects] == [
        "line_too_long"
    ]


def _mutate(rng: random.Random, line: bytes) -> bytes:
    b = bytearray(line)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(3)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:
            del b[min(i, len(b) - 1)]
        elif op == 1:
            b.insert(i, rng.choice(b",.*$-0123456789ANSEWV\r\x00\xff"))
        elif b:
            b[min(i, len(b) - 1)] = rng.randrange(256)
    return bytes(b)


@given(st.lists(st.one_of(rmc(), gga()), min_size=1, max_size=10), st.randoms())
def test_mutated_sentences_only_give_rejects_or_sound_fixes(
    lines: list[str], rng: random.Random
) -> None:
    frames = [_mutate(rng, ln.encode()) for ln in lines]
    out = nmea.decode_frames(frames, session=Session(last_date_days=19_000, last_tod_ms=0))
    check_fixes(out)


@given(st.binary(max_size=400))
def test_random_bytes_never_raise(buf: bytes) -> None:
    frames, rest = nmea.split_frames(buf)
    check_fixes(nmea.decode_frames([*frames, rest], session=Session()))


@pytest.mark.slow
@settings(max_examples=1000, deadline=None)
@given(st.lists(st.one_of(rmc(), gga()), min_size=1, max_size=40), st.randoms())
def test_long_fuzz(lines: list[str], rng: random.Random) -> None:
    frames = [_mutate(rng, ln.encode()) for ln in lines]
    check_fixes(nmea.decode_frames(frames, session=Session()))


def test_dateless_epoch_rejects_its_lines_in_line_order() -> None:
    gga_line = with_checksum("GPGGA,120001,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,")
    frames = [gga_line.encode(), b"$GPGGA,bad", gga_line.encode()]
    out = nmea.decode_frames(frames, session=Session())
    assert len(out.fixes) == 0 and out.session == Session()
    assert [r.code for r in out.rejects] == ["no_date", "malformed", "no_date"]
    assert [r.raw for r in out.rejects] == frames


def test_pubx_00_without_fields_is_malformed() -> None:
    for line in (b"$PUBX,00", b"$PUBX,00\r"):
        assert [r.code for r in nmea.decode(line, session=Session()).rejects] == ["malformed"]


def test_kernel_compiles_once_for_every_entry_point() -> None:
    """A second signature would be a compile (seconds) in the middle of serving."""
    line = with_checksum("GPRMC,120000,A,4807.038,N,01131.000,E,1.0,2.0,150624,,")
    nmea.decode(line.encode(), session=Session())
    nmea.decode_buffer(np.frombuffer(line.encode(), np.uint8).copy(), session=Session())
    t55.decode_frames(
        [b"IMEI 351467108700000", line.encode() + b",5,351467108700000,1"], session=Session()
    )
    signatures = getattr(_nmea_kernels.decode, "signatures", None)
    if signatures is None:
        pytest.skip("NUMBA_DISABLE_JIT: nothing is compiled")
    assert len(signatures) == 1, signatures


def test_other_sentence_types_are_ignored_and_counted_not_rejected() -> None:
    """A tracker's full 1 s burst (u-blox 6 Receiver Description §NMEA messages): only
    RMC and GGA are stored; GSA, GSV, VTG and a proprietary $P sentence are counted."""
    burst = (
        b"$GPRMC,083559.00,A,4717.11437,N,00833.91522,E,0.004,77.52,091202,,,A*57\r\n"
        b"$GPVTG,77.52,T,,M,0.004,N,0.008,K,A*06\r\n"
        b"$GPGGA,083559.00,4717.11437,N,00833.91522,E,1,08,1.01,499.6,M,48.0,M,,*58\r\n"
        b"$GPGSA,A,3,23,29,07,08,09,18,26,28,,,,,1.94,1.18,1.54*0D\r\n"
        b"$GPGSV,3,1,10,23,38,230,44,29,71,156,47,07,29,116,41,08,09,081,36*7F\r\n"
        b"$PUBX,03,11,23,-,,,45,010,29,-,,,46,013*16\r\n"
        b"$gpgsv,not,an,address\r\n"
    )
    frames, rest = nmea.split_frames(burst)
    out = nmea.decode_frames(frames, session=Session(device_id="d"))
    assert rest == b"" and len(out.fixes) == 1
    assert out.ignored == 4
    assert [r.code for r in out.rejects] == ["unsupported_sentence"]
