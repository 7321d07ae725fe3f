"""T55: identity handling, batching across identity lines, robustness."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from decoders import t55
from decoders.model import Session
from tests.decoders.invariants import check_fixes
from tests.decoders.nmea_gen import rmc, with_checksum

RMC = with_checksum("GPRMC,094907.000,A,6000.5332,N,03020.5192,E,1.17,60.26,091111,,")


def test_identity_lines_traccar_accepts() -> None:
    for line, ident in [
        (b"$PGID,359853000144328*0F", "359853000144328"),
        (b"$DEVID,0x0103846677F21422*41", "0x0103846677F21422"),
        (b"$PCPTI,CradlePoint Test,184453,184453.0,6F*57", "CradlePoint Test"),
        (b"$GPFID,ID123456ABC", "ID123456ABC"),
        (b"IMEI 351467108700000", "351467108700000"),
        (b"$IMEI=355797031609284", "355797031609284"),
        (b"358244017671308", "358244017671308"),
        (b"086415031C20", "086415031C20"),
    ]:
        out = t55.decode(line, session=Session())
        assert (out.device_id, out.session.device_id, out.rejects) == (ident, ident, ())
        assert out.replies == ()


def test_nmea_before_identity_is_rejected_then_accepted_after() -> None:
    frames = [RMC.encode(), b"$PGID,359853000144328*0F", RMC.encode()]
    out = t55.decode_frames(frames, session=Session())
    assert [r.code for r in out.rejects] == ["no_identity"]
    assert out.rejects[0].raw == RMC.encode()
    assert len(out.fixes) == 1 and out.session.device_id == "359853000144328"


def test_one_batch_equals_line_by_line() -> None:
    lines = [b"IMEI 351467108700000", RMC.encode(), b"$GPRMC,bad", RMC.encode()[:-1] + b"0"]
    batch = t55.decode_frames(lines, session=Session())
    session, codes, n = Session(), [], 0
    for line in lines:
        one = t55.decode(line, session=session)
        session, n = one.session, n + len(one.fixes)
        codes += [r.code for r in one.rejects]
    assert codes == [r.code for r in batch.rejects] == ["malformed", "bad_checksum"]
    assert n == len(batch.fixes) == 1 and session == batch.session


@given(st.lists(rmc(), min_size=1, max_size=10), st.randoms())
def test_mutated_streams_only_give_rejects_or_sound_fixes(
    lines: list[str], rng: random.Random
) -> None:
    stream = b"IMEI 351467108700000\r\n" + b"".join(ln.encode() + b"\r\n" for ln in lines)
    b = bytearray(stream)
    for _ in range(rng.randint(0, 6)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    frames, rest = t55.split_frames(bytes(b))
    check_fixes(t55.decode_frames([*frames, rest], session=Session()))


@given(st.binary(max_size=300))
def test_random_bytes_never_raise(buf: bytes) -> None:
    frames, rest = t55.split_frames(buf)
    check_fixes(t55.decode_frames([*frames, rest], session=Session(device_id="x")))


def test_ignition_tail_names_the_device_and_sets_ignition() -> None:
    tail = RMC + ",5,351467108700000,1"
    out = t55.decode_frames([tail.encode(), RMC.encode()], session=Session())
    assert out.rejects == () and out.device_id == "351467108700000"
    assert [int(i) for i in out.fixes["ignition"]] == [1]  # same epoch: one fix


def test_a_frame_of_several_lines_is_split() -> None:
    payload = b"IMEI 351467108700000\r\n" + RMC.encode() + b"\r\n$GPRMC,bad\r\n"
    out = t55.decode_frames([payload], session=Session())
    assert len(out.fixes) == 1
    assert [(r.code, r.raw) for r in out.rejects] == [("malformed", b"$GPRMC,bad")]


def test_ids_that_cannot_be_stored_or_addressed_are_refused() -> None:
    for line in (b"$PGID," + b"7" * 65, b"$PGID,A\x00B", b"$PGID,a/b"):
        out = t55.decode(line, session=Session())
        assert out.session.device_id is None
        assert [r.code for r in out.rejects] == ["bad_identity"]


def test_a_prefix_id_needs_a_sentence_with_a_good_checksum() -> None:
    """Line noise before a '$' (e.g. a modem's CONNECT) must not name the device."""
    noisy = b"CONNECT" + RMC.encode()[:-2] + b"00"  # wrong checksum
    out = t55.decode(noisy, session=Session())
    assert out.session.device_id is None and [r.code for r in out.rejects] == ["bad_checksum"]
    out = t55.decode(b"358244017671308" + RMC.encode(), session=Session())
    assert out.session.device_id == "358244017671308" and len(out.fixes) == 1
