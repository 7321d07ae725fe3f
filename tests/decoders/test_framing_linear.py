"""Every framer, and the decoders behind it, is linear in what a peer sends.

Ingest frames each TCP read on the event loop, so work that grows faster than the input
stalls every device and the API. Seen: ``gps103.split_frames(b"A" * 65536)`` took 14 s
(a regex retried from every offset of an unterminated buffer), GT06 splitting 256 KiB of
``78 78`` 40 s (a search for stop bits restarted at every start marker), an OsmAnd query
value of 8,000 digits 5 s (a number regex trying every split of the digit run).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from decoders import PROTOCOLS, DecodeError, Session
from tests.complexity import HOSTILE, assert_linear


def _split(name: str) -> Callable[[bytes], object]:
    codec = PROTOCOLS[name]

    def split(buf: bytes) -> object:
        try:
            return codec.split_frames(buf)
        except DecodeError as exc:  # framing lost: ends a split early, which is allowed
            return exc

    return split


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_split_frames_time_per_byte_is_flat_from_1_kib_to_1_mib(protocol: str) -> None:
    for what, make in HOSTILE.items():
        assert_linear(_split(protocol), make, f"{protocol} split_frames, {what}")


def _digits(template: bytes) -> Callable[[int], bytes]:
    """One frame: ``template`` with every ``{}`` a digit run, padded to about ``n`` bytes."""
    return lambda n: template.replace(b"{}", b"1" * (n // template.count(b"{}")))


# Long frames (MQTT and HTTP hand whole payloads to the decoder) whose fields are digit
# runs that fail to parse only at their end: what backtracking number regexes choke on.
FRAMES: dict[str, tuple[bytes, ...]] = {
    "osmand": (
        b"id=1&lat={}X&lon=1&timestamp=1700000000",
        b"id=1&lat=1&lon=1&timestamp={}X&speed={}.{}X&extra={}",
        b'{"device_id":"1","location":{"coords":{"latitude":1,"longitude":{}}}}',
    ),
    "gps103": (
        b"imei:1,tracker,{},,F,{},A,{}.{}X,N,{}X,E,{},{}",
        b"imei:1,a,b,c,d,{},{},7,{}X,{}.{}X,{}.{},{},{},*",
    ),
    "h02": (
        b"*HQ,1,V1,{},A,{}.{}X,N,{}X,E,{}.{}X,{}X,{},FFFFFFFF,{}X,{}X#",
        b"*HQ,1,V1,010203,A,-{}-{}.{}X,N,{}X,E,{},{},010203,FFFFFFFF,{},{}X,{}.{}X,{},{}X,F#",
    ),
    "t55": (b"{}/$GPRMC,{}*00,{}X", b"$PCPTI,{},{}*ZZ"),
    "nmea": (b"$GPRMC,{},A,{}.{}X,N,{},E,{},{},{}",),
    "menara-json": (b'{"device_id":"1","lat":{}}',),
}


@pytest.mark.parametrize(("protocol", "template"), [(p, t) for p, ts in FRAMES.items() for t in ts])
def test_decoding_a_long_frame_is_linear(protocol: str, template: bytes) -> None:
    codec, session = PROTOCOLS[protocol], Session(device_id="1")
    assert_linear(
        lambda frame: codec.decode_frames([frame], session=session),
        _digits(template),
        f"{protocol} decode_frames, {template[:40]!r}",
        sizes=tuple(1 << k for k in range(10, 19, 2)),  # to 256 KiB: a large HTTP body
    )
