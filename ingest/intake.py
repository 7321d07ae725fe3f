"""Decoded frames → a writer ``Batch``, counted the same way for every transport.

TCP, UDP, MQTT and HTTP all end here, so the counters and the dead-letter shape are
identical whichever way a fix arrived. Byte streams are framed here too (``frame``):
which frames to decode, what to keep for the next read, when framing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from decoders import Codec, DecodeError
from decoders.model import Decoded, Reject, Session, empty_fixes
from ingest.counters import Counters
from ingest.devices import Admission, DeviceRegistry
from ingest.model import Batch, DeadLetter, now_us

log = logging.getLogger(__name__)

FUTURE_FIX = "future_fix"  # reject code: a fix time too far ahead of its receipt


def to_batch(
    decoded: Decoded,
    *,
    device_id: str,
    transport: str,
    protocol: str,
    peer: str,
    registry: DeviceRegistry,
    counters: Counters,
    raw: bytes = b"",
    on_commit: Callable[[], None] | None = None,
    refuse: tuple[str, str] | None = None,
) -> Batch:
    """Count and package one decode result; refused fixes become dead letters.

    ``raw`` is the input that produced ``decoded``; it is kept when fixes are refused:
    all of them when the registry does not admit the device in ``protocol``
    (``unknown_device``, ``wrong_protocol``) or the caller refuses them (``refuse``:
    code, detail — the HTTP intake's ``bad_secret``), else those more than the
    registry's ``future_fix_s`` ahead of their receipt (``future_fix``).
    """
    received = now_us()
    letters = [
        DeadLetter(transport, protocol, peer, device_id or None, r.code, r.detail, r.raw, received)
        for r in decoded.rejects
    ]
    for r in decoded.rejects:
        counters.inc("rejects", protocol=protocol, code=r.code)
    if decoded.ignored:
        counters.inc("frames_ignored", decoded.ignored, protocol=protocol)
    fixes, attributes = decoded.fixes, decoded.attributes
    admission = registry.admit(device_id, protocol) if len(fixes) else Admission.KNOWN
    if admission.refused:
        refuse = _refusal(admission, device_id, protocol, len(fixes))
    elif refuse is None and len(fixes):
        ahead = fixes["fix_time_us"] > received + round(registry.future_fix_s * 1e6)
        if ahead.any():
            n = int(ahead.sum())
            counters.inc("rejects", n, protocol=protocol, code=FUTURE_FIX)
            detail = (
                f"{n} of {len(fixes)} fixes more than {registry.future_fix_s:g} s ahead of"
                " their receipt (future_fix_s): a wrong device clock, or not the device"
            )
            letters.append(
                DeadLetter(transport, protocol, peer, device_id, FUTURE_FIX, detail, raw, received)
            )
            keep = ~ahead
            if attributes:
                attributes = tuple(a for a, k in zip(attributes, keep, strict=True) if k)
            fixes = fixes[keep]
    if refuse is not None and len(fixes):
        code, detail = refuse
        counters.inc("rejects", len(fixes), protocol=protocol, code=code)
        letters.append(
            DeadLetter(transport, protocol, peer, device_id, code, detail, raw, received)
        )
        fixes, attributes = fixes[:0], ()
    elif admission.writes_device and len(fixes):
        registry.claim(device_id, protocol)
    counters.inc("fixes_in", len(fixes), transport=transport, protocol=protocol)
    return Batch(
        device_id=device_id,
        transport=transport,
        protocol=protocol,
        fixes=fixes,
        attributes=attributes,
        dead_letters=tuple(letters),
        register_device=admission is Admission.REGISTER and bool(len(fixes)),
        bind_device=admission is Admission.BIND and bool(len(fixes)),
        received_us=received,
        on_commit=on_commit,
    )


def _refusal(admission: Admission, device_id: str, protocol: str, n: int) -> tuple[str, str]:
    """(code, detail) of a device the registry refuses."""
    if admission is Admission.WRONG_PROTOCOL:
        detail = (
            f"{n} {protocol} fixes from a device registered for another protocol: not the"
            " device, or change its protocol (PATCH /api/v1/devices/<id>)"
        )
    else:
        detail = f"{n} fixes from a device not in `devices` (unknown_devices=reject) or disabled"
    return admission.value, detail


def decode_safely(
    decode: Callable[[], Decoded], raws: Sequence[bytes], session: Session, what: str
) -> Decoded:
    """``decode()``; if it raises, one reject per raw frame and ``session`` unchanged.

    A ``DecodeError`` keeps its code; anything else is a decoder bug, logged (``what``
    names the intake and peer) and rejected ``decoder_error``: it costs those bytes, never
    the connection or the intake.
    """
    try:
        return decode()
    except DecodeError as exc:
        code, detail = exc.code, exc.detail
    except Exception as exc:
        log.exception("%s: decoder failed", what)
        code, detail = "decoder_error", repr(exc)
    rejects = tuple(Reject(code, detail, raw) for raw in raws)
    return Decoded(fixes=empty_fixes(), session=session, rejects=rejects)


def split_until_lost(codec: Codec, buf: bytes) -> tuple[list[bytes], bytes, DecodeError | None]:
    """``codec.split_frames(buf)`` plus, when framing is lost, the frames before the break.

    Returns ``(frames, rest, error)``. Without an error ``rest`` is the unframed tail; with
    one it is everything from the break on (to dead-letter), and ``frames`` the whole
    frames before it, which were sound and must not be lost with it. Lost framing is
    final (more bytes cannot bring it back), so the longest prefix that still splits is
    found by bisection. A probe splits from the last frame boundary found (``base``: a
    splitter starts afresh after a whole frame, as on the next TCP read), so the probes
    read each byte about twice (plus an unfinished frame each), not once per probe: a
    256 KiB read of Teltonika pings ending in a bad header cost 1.3 s on the loop.
    """
    try:
        frames, rest = codec.split_frames(buf)
        return frames, rest, None
    except DecodeError as exc:
        error = exc
    ok, bad = 0, len(buf)  # split_frames(buf[:ok]) works, split_frames(buf[:bad]) raises
    base = 0  # a frame boundary at or before ok
    while bad - ok > 1:
        mid = (ok + bad) // 2
        try:
            _, tail = codec.split_frames(buf[base:mid])
        except DecodeError:
            bad = mid
        else:
            ok, base = mid, mid - len(tail)
    frames, rest = codec.split_frames(buf[:ok])
    return frames, buf[ok - len(rest) :], error


def on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> Callable[[], None]:
    """An ``on_commit`` that runs ``fn`` on ``loop``'s thread, where it must be made: at
    once when called there (the writer on the same loop: the reply goes out before
    anything else runs, so before a stopping listener closes its socket), else scheduled
    thread-safely."""
    thread = threading.get_ident()

    def on_commit() -> None:
        if threading.get_ident() == thread:
            fn()
        else:
            loop.call_soon_threadsafe(fn)

    return on_commit


@dataclass(frozen=True, slots=True)
class Framed:
    """One read's worth of a byte stream, framed.

    ``frames`` are whole frames spanning ``buf[:used]``. With ``lost`` None, ``rest`` is
    the unframed tail to keep for the next read; else framing is lost for good and
    ``rest`` (everything from the break on) is to be dead-lettered as ``lost`` (code,
    detail), after the ``frames`` before the break, which are sound.
    """

    frames: list[bytes]
    used: int
    rest: bytes
    lost: tuple[str, str] | None


def frame(codec: Codec, buf: bytes, limit: int) -> Framed:
    """Split ``buf``; a frame or an unframed tail longer than ``limit`` loses framing."""
    frames, rest, error = split_until_lost(codec, buf)
    cut = -1  # the first frame over the limit (max() first: a read may hold 10^5 frames)
    if frames and max(map(len, frames)) > limit:
        cut = next(i for i, f in enumerate(frames) if len(f) > limit)
    if cut >= 0:  # splitters may strip delimiters: find where the oversized frame starts
        used = max(buf.find(frames[cut]), 0)
        frames, rest, error = frames[:cut], buf[used:], None
    if error is not None:
        return Framed(frames, len(buf) - len(rest), rest, (error.code, error.detail))
    if cut >= 0 or len(rest) > limit:
        lost = ("line_too_long", f"no frame end within {limit} bytes")
        return Framed(frames, len(buf) - len(rest), rest, lost)
    return Framed(frames, len(buf) - len(rest), rest, None)
