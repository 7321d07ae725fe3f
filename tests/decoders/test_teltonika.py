"""Teltonika: UDP examples, sessions, encoder round trips, framing and fuzz properties."""

from __future__ import annotations

import math
import os
import random
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decoders import _teltonika_io as _io
from decoders import _teltonika_kernel as k
from decoders import teltonika
from decoders.errors import DecodeError
from decoders.model import Decoded, Session
from simulators import teltonika_out as enc
from simulators.errors import EncodeError
from tests.decoders.invariants import check_fixes

IMEI = "356307042441013"
ID = Session(device_id=IMEI)
T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
REC = enc.AvlRecord(T0, 52.5, 13.25, satellites=9, speed_kmh=50, io={239: 1, 66: 12_600})
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True, scope="module")
def _warm_kernel() -> None:
    """Compile (or load) the kernel before any timed hypothesis example."""
    teltonika.decode_frames([enc.avl_packet([REC])], session=ID)


def test_udp_wiki_examples() -> None:
    """Teltonika wiki "Codec", "Codec 8" and "Codec 8 Extended" UDP examples."""
    c8 = bytes.fromhex(
        "003DCAFE0105000F33353230393330383634303336353508010000016B4F815B30010000000000"
        "000000000000000000000103021503010101425DBC000001"
    )
    out = teltonika.decode_datagram(c8, session=Session())
    assert out.replies == (bytes.fromhex("0005CAFE010501"),) and out.rejects == ()
    assert out.device_id == "352093086403655"
    (fix,) = out.fix_list()
    assert fix.fix_time == datetime(2019, 6, 13, 6, 23, 26, tzinfo=UTC)
    assert fix.attributes == {"priority": 1, "event": 1, "gsm_signal": 3, "io1": 1,
                              "external_voltage_v": 23.996}  # fmt: skip
    c8e = bytes.fromhex(
        "005FCAFE0107000F3335323039333038363430333635358E010000016B4F831C680100000000000"
        "000000000000000000000010005000100010100010011009D00010010015E2C880002000B00000000"
        "3544C87A000E000000001DD7E06A000001"
    )
    out = teltonika.decode_datagram(c8e, session=Session())
    assert out.replies == (bytes.fromhex("0005CAFE010701"),)
    assert [f.odometer_m for f in out.fix_list()] == [22_949_000.0]


def test_udp_traccar_capture_and_bad_datagrams() -> None:
    """Traccar TeltonikaProtocolDecoderTest.testDecodeConnectionless."""
    dg = bytes.fromhex(
        "0049cafe0122000f33353734353430373237313339373508010000015d3766f6a800003eef961ec6"
        "215e0063006d09003100070401000200f001c8000242381c18003201c7000000e10001"
    )
    out = teltonika.decode_datagram(dg, session=Session())
    assert out.replies == (bytes.fromhex("0005cafe012201"),)
    assert len(out.fixes) == 1 and out.fixes[0]["valid"]
    for bad, code in [(dg[:-1], "bad_length"), (dg[:12] + b"X" + dg[13:], "bad_identity")]:
        out = teltonika.decode_datagram(bad, session=Session())
        assert [r.code for r in out.rejects] == [code] and out.replies == ()


def test_udp_round_trip() -> None:
    dg = enc.udp_datagram(IMEI, [REC, REC], codec=enc.CODEC_8E, packet_id=7, avl_packet_id=9)
    out = teltonika.decode_datagram(dg, session=Session())
    assert out.replies == (bytes.fromhex("00050007010902"),)
    assert out.session.device_id == IMEI and len(out.fixes) == 2


def test_identity_carries_across_calls() -> None:
    first = teltonika.decode_frames([enc.login(IMEI)], session=Session())
    assert first.replies == (enc.LOGIN_ACCEPT,) and first.refused_reply == b"\x00"
    second = teltonika.decode_frames([enc.avl_packet([REC])], session=first.session)
    assert second.replies == (enc.ack(1),) and second.device_id is None
    assert second.refused_reply == b"" and second.fix_list()[0].device_id == IMEI


def test_one_batch_equals_frame_by_frame() -> None:
    good = enc.avl_packet([REC, REC])
    bad = good[:-1] + bytes([good[-1] ^ 1])
    frames = [good, enc.login(IMEI), good, bad, teltonika.PING, good]
    batch = teltonika.decode_frames(frames, session=Session())
    session, n = Session(), 0
    replies: list[bytes] = []
    codes: list[str] = []
    for frame in frames:
        one = teltonika.decode_frames([frame], session=session)
        session, n = one.session, n + len(one.fixes)
        replies += one.replies
        codes += [r.code for r in one.rejects]
    assert codes == [r.code for r in batch.rejects] == ["no_identity", "bad_crc"]
    assert replies == list(batch.replies) == [b"\x01", enc.ack(2), enc.ack(2)]
    assert n == len(batch.fixes) == 4 and batch.ignored == 1


def test_bad_records_are_rejected_alone_and_the_packet_acked() -> None:
    """A record that can never be stored must not block the device's queue."""
    far = enc.AvlRecord(T0, 52.5, 13.25)
    pkt = bytearray(enc.avl_packet([REC, far, REC]))
    lat_at = 10 + len(enc.avl_packet([REC])) - 15 + 13  # header, REC, then lon of `far`
    pkt[lat_at : lat_at + 4] = (95 * 10**7).to_bytes(4, "big")
    pkt[-4:] = enc.crc16(bytes(pkt[8:-4])).to_bytes(4, "big")
    out = teltonika.decode_frames([bytes(pkt)], session=ID)
    assert [r.code for r in out.rejects] == ["bad_coordinates"]
    assert out.replies == (enc.ack(3),) and len(out.fixes) == 2


def test_cut_records_and_leftover_bytes_are_bad_length_and_not_acked() -> None:
    # A leftover 0x00 would read as an empty group of 16-byte values ('extended' devices,
    # test_extended_group_is_tried_when_the_standard_layout_leaves_bytes); 0x05 cannot.
    data = enc.avl_packet([REC])[8:-4]
    for body in (data[:-3] + data[-1:], data[:-1] + b"\x05" + data[-1:]):
        frame = b"\0\0\0\0" + len(body).to_bytes(4, "big") + body
        frame += enc.crc16(body).to_bytes(4, "big")
        out = teltonika.decode_frames([frame], session=ID)
        assert [r.code for r in out.rejects] == ["bad_length"]
        assert out.replies == () and len(out.fixes) == 0


def _repack(data: bytes) -> bytes:
    """A TCP AVL packet around ``data`` (codec id .. N2) with a true CRC."""
    return b"\0\0\0\0" + len(data).to_bytes(4, "big") + data + enc.crc16(data).to_bytes(4, "big")


@pytest.mark.parametrize("codec", [enc.CODEC_8, enc.CODEC_8E])
def test_extended_group_is_tried_when_the_standard_layout_leaves_bytes(codec: int) -> None:
    """Traccar's 'extended' devices put 16-byte values after the 8-byte group."""
    data = enc.avl_packet([REC], codec=codec)[8:-4]
    wide = bytes(range(16))
    group = (b"\x01\xcb" if codec == enc.CODEC_8 else b"\x00\x01\x00\xcb") + wide
    nx = 0 if codec == enc.CODEC_8 else 2  # 8E: the NX group's count comes last
    out = teltonika.decode_frames([_repack(data[: -1 - nx] + group + data[-1 - nx :])], session=ID)
    plain = teltonika.decode_frames([_repack(data)], session=ID)
    assert out.rejects == () and out.replies == (enc.ack(1),)
    [fix], [ref] = out.fix_list(), plain.fix_list()
    assert fix.attributes == {**ref.attributes, "io203": wide.hex()}
    assert (fix.fix_time, fix.lat, fix.ignition) == (ref.fix_time, ref.lat, ref.ignition)


def _gh3000(*records: bytes) -> bytes:
    n = bytes([len(records)])
    return _repack(b"\x07" + n + b"".join(records) + n)


GH_TIME = (1 << 30) | (600_000_000)  # priority 1, 2007-01-01 + 600,000,000 s
GH_FIX = (
    GH_TIME.to_bytes(4, "big") + b"\x03\x1f" + struct.pack(">ffHBBB", 52.5, 13.25, 40, 64, 30, 7)
)


def test_gh3000_records() -> None:
    """Codec 7: masks say which fields follow; a record without coordinates is no fix."""
    io_only = GH_TIME.to_bytes(4, "big") + b"\x02\x02\xf0\x01\x01\x50"
    out = teltonika.decode_frames([_gh3000(GH_FIX + b"\x01\xf0\x00", io_only)], session=ID)
    assert out.replies == (enc.ack(2),) and out.rejects == () and out.ignored == 1
    [fix] = out.fix_list()
    assert fix.fix_time == datetime(2007, 1, 1, tzinfo=UTC) + timedelta(seconds=600_000_000)
    assert (fix.lat, fix.lon, fix.altitude_m, fix.course_deg) == (52.5, 13.25, 40.0, 90.0)
    assert (fix.speed_kmh, fix.satellites, fix.valid) == (30.0, 7, True)
    assert fix.attributes == {"priority": 1, "motion": False}


def test_gh3000_bad_records() -> None:
    """Coordinates out of range are rejected alone (acked); a cut layout is bad_length."""
    far = GH_FIX.replace(struct.pack(">f", 52.5), struct.pack(">f", float("nan")))
    out = teltonika.decode_frames(
        [_gh3000(far + b"\x01\xf0\x00", GH_FIX + b"\x01\xf0\x01")], session=ID
    )
    assert [r.code for r in out.rejects] == ["bad_coordinates"] and len(out.fixes) == 1
    assert out.replies == (enc.ack(2),)
    for cut in (GH_FIX + b"\x01\xf0", GH_FIX + b"\x01\xf0\x00\x00"):
        out = teltonika.decode_frames([_gh3000(cut)], session=ID)
        assert [r.code for r in out.rejects] == ["bad_length"] and out.replies == ()


def test_framing_lost_raises() -> None:
    for buf in (
        b"\x00\x41" + b"1" * 65,  # login longer than MAX_LOGIN
        b"\x00\x00\x00\x01",  # preamble not zero
        b"\x00\x00\x00\x00\x00\x00\x00\x02",  # data field too short for codec and counts
        b"\x00\x00\x00\x00\x00\x01\x00\x00",  # data field longer than MAX_FRAME
        b"GET / HTTP/1.1\r\n",
    ):
        with pytest.raises(DecodeError):
            teltonika.split_frames(buf)


def test_incomplete_frames_stay_in_the_tail() -> None:
    stream = enc.login(IMEI) + enc.avl_packet([REC])
    for cut in range(len(stream)):
        frames, rest = teltonika.split_frames(stream[:cut])
        assert b"".join(frames) + rest == stream[:cut]


def test_encoder_refuses_what_the_codec_cannot_carry() -> None:
    for records, codec in [
        ([enc.AvlRecord(T0, 0, 0, io={1: b"x"})], enc.CODEC_8),
        ([enc.AvlRecord(T0, 0, 0, io={300: 1})], enc.CODEC_8),
        ([enc.AvlRecord(T0, 0, 0, io={1: -1})], enc.CODEC_8),
        ([enc.AvlRecord(T0, 91, 0)], enc.CODEC_8),
        ([], enc.CODEC_8),
        ([REC], 0x07),
    ]:
        with pytest.raises(EncodeError):
            enc.avl_packet(records, codec=codec)


# --- properties --------------------------------------------------------------------


@st.composite
def records(draw: st.DrawFn, codec: int, min_io: int = 0) -> enc.AvlRecord:
    ms = draw(st.integers(k.MIN_TIME_MS, k.MAX_TIME_MS - 1))
    ids = st.integers(0, 255 if codec == enc.CODEC_8 else 65_535)
    value: st.SearchStrategy[int | bytes] = st.integers(0, 2**64 - 1)
    if codec == enc.CODEC_8E:
        value = st.one_of(value, st.binary(max_size=12))
    return enc.AvlRecord(
        time=EPOCH + timedelta(milliseconds=ms),
        lat=draw(st.integers(-900_000_000, 900_000_000)) / 1e7,
        lon=draw(st.integers(-1_800_000_000, 1_800_000_000)) / 1e7,
        altitude_m=draw(st.integers(-32_768, 32_767)),
        course_deg=draw(st.integers(0, 65_535)),
        satellites=draw(st.integers(0, 255)),
        speed_kmh=draw(st.integers(0, 65_535)),
        priority=draw(st.integers(0, 2)),
        event_id=draw(ids),
        io=draw(st.dictionaries(ids, value, min_size=min_io, max_size=max(8, min_io))),
    )


def packets(codec: int) -> st.SearchStrategy[list[enc.AvlRecord]]:
    return st.lists(records(codec), min_size=1, max_size=4)


def _expect(rec: enc.AvlRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    """The columns and attributes ``rec`` must decode to."""
    cols: dict[str, Any] = {
        "fix_time": rec.time,
        "lat": rec.lat,
        "lon": rec.lon,
        "altitude_m": float(rec.altitude_m),
        "course_deg": float(rec.course_deg) if rec.course_deg <= 360 else None,
        "satellites": rec.satellites,
        "speed_kmh": float(rec.speed_kmh),
        "valid": rec.satellites != 0 and (rec.lat, rec.lon) != (0.0, 0.0),
        "ignition": None,
        "odometer_m": None,
        "hdop": None,
    }
    attrs: dict[str, Any] = {"priority": rec.priority, "event": rec.event_id}
    for ident, v in rec.io.items():
        if isinstance(v, bytes):
            attrs[f"io{ident}"] = v.hex()
        elif ident == k.IO_IGNITION:
            cols["ignition"] = v != 0
        elif ident == k.IO_ODOMETER:
            cols["odometer_m"] = float(v)
        elif ident == k.IO_HDOP:
            cols["hdop"] = v / 10
        elif ident in _io.IO_NAMES:
            name, conv = _io.IO_NAMES[ident]
            attrs[name] = conv(np.array([v], np.uint64)).item()
        else:
            attrs[f"io{ident}"] = v
    return cols, attrs


def _round_trip(recs: list[enc.AvlRecord], codec: int) -> None:
    out = teltonika.decode_frames([enc.avl_packet(recs, codec=codec)], session=ID)
    check_fixes(out)
    assert out.rejects == () and out.replies == (enc.ack(len(recs)),)
    for fix, rec in zip(out.fix_list(), recs, strict=True):
        cols, attrs = _expect(rec)
        got = {name: getattr(fix, name) for name in cols}
        if cols["hdop"] is not None and got["hdop"] is not None:
            assert math.isclose(got.pop("hdop"), cols.pop("hdop"), rel_tol=1e-6)
        assert got == cols
        assert fix.attributes == attrs


@given(packets(enc.CODEC_8))
def test_round_trip_codec_8(recs: list[enc.AvlRecord]) -> None:
    _round_trip(recs, enc.CODEC_8)


@given(packets(enc.CODEC_8E))
def test_round_trip_codec_8e(recs: list[enc.AvlRecord]) -> None:
    _round_trip(recs, enc.CODEC_8E)


@given(packets(enc.CODEC_16))
def test_round_trip_codec_16(recs: list[enc.AvlRecord]) -> None:
    _round_trip(recs, enc.CODEC_16)


@settings(max_examples=20)
@given(st.lists(records(enc.CODEC_8E, min_io=8), min_size=8, max_size=10))
def test_round_trip_batch_of_many_values(recs: list[enc.AvlRecord]) -> None:
    """Enough IO values for the column-wise attribute path (a live packet takes the loop)."""
    assert sum(len(r.io) for r in recs) >= _io.SMALL
    _round_trip(recs, enc.CODEC_8E)


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A login, 1-4 packets of any codec, keep-alive bytes: joined, and as frames."""
    frames = [enc.login(IMEI)]
    for _ in range(draw(st.integers(1, 4))):
        codec = draw(st.sampled_from([enc.CODEC_8, enc.CODEC_8E, enc.CODEC_16]))
        frames.append(enc.avl_packet(draw(packets(codec)), codec=codec))
        if draw(st.booleans()):
            frames.append(teltonika.PING)
    return b"".join(frames), frames


@given(st.data())
def test_random_cuts_give_the_same_frames(data: st.DataObject) -> None:
    stream, frames = data.draw(streams())
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    got: list[bytes] = []
    rest = b""
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        more, rest = teltonika.split_frames(rest + stream[a:b])
        got += more
    assert got == frames and rest == b""


def _mutated_decode(stream: bytes, rng: random.Random, session: Session) -> Decoded | None:
    b = bytearray(stream)
    for _ in range(rng.randint(1, 6)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    try:
        frames, rest = teltonika.split_frames(bytes(b))
        out = teltonika.decode_frames([*frames, rest], session=session)
    except DecodeError:
        return None
    check_fixes(out)
    return out


@given(st.data(), st.randoms())
def test_mutated_streams_only_raise_decode_error(data: st.DataObject, rng: random.Random) -> None:
    stream, _ = data.draw(streams())
    _mutated_decode(stream, rng, Session())


@given(packets(enc.CODEC_8), st.randoms())
def test_a_packet_with_a_bad_crc_is_never_acked(
    recs: list[enc.AvlRecord], rng: random.Random
) -> None:
    pkt = bytearray(enc.avl_packet(recs))
    pkt[rng.randrange(8, len(pkt))] ^= 1 << rng.randrange(8)  # one bit in data or CRC
    out = teltonika.decode_frames([bytes(pkt)], session=ID)
    assert out.replies == () and len(out.fixes) == 0
    assert [r.code for r in out.rejects] == ["bad_crc"]


@given(st.binary(max_size=300))
def test_random_bytes_only_raise_decode_error(buf: bytes) -> None:
    for session in (Session(), ID):
        try:
            frames, rest = teltonika.split_frames(buf)
        except DecodeError:
            frames, rest = [], buf
        check_fixes(teltonika.decode_frames([*frames, rest], session=session))
        check_fixes(teltonika.decode_datagram(buf, session=session))


@pytest.mark.slow
@pytest.mark.timeout(900)  # about 40 s on a quiet machine; CI machines are shared
def test_fuzz_long() -> None:
    """Mutated streams with noise spliced in, through split and decode; prints the count.
    ``MENARA_LONG_FUZZ_EXAMPLES`` (5,000) sets the depth: 20,000 took 426 s of a 25 min
    CI run. (The suite's 300 s timeout once interrupted it mid-draw under load, which
    Hypothesis then reports as a flaky strategy; the failure was the clock.)"""
    ran = 0
    examples = int(os.environ.get("MENARA_LONG_FUZZ_EXAMPLES", "5000"))

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data(), st.randoms(), st.binary(max_size=64))
    def one(data: st.DataObject, rng: random.Random, noise: bytes) -> None:
        nonlocal ran
        ran += 1
        stream, _ = data.draw(streams())
        at = rng.randrange(len(stream) + 1)
        _mutated_decode(stream[:at] + noise + stream[at:], rng, rng.choice([Session(), ID]))

    one()
    print(f"teltonika long fuzz: {ran} inputs")
    assert ran >= min(examples, 1_000)


@given(st.binary(max_size=64))
def test_kernel_crc_matches_the_bytewise_definition(data: bytes) -> None:
    """The slicing-by-8 CRC against the encoder's one-byte-a-step loop."""
    assert k.crc16(np.frombuffer(data, np.uint8), 0, len(data)) == enc.crc16(data)
