"""``menara decode``: feed captured bytes to a decoder as one connection, print JSON lines.

A field engineer pastes what a tracker sent (hex, text or a capture file) and sees
exactly what the service would store, reply and reject, without a database.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from decoders import PROTOCOLS, Decoded, DecodeError, Session


class InputError(ValueError):
    """An input argument could not be read (bad hex, missing file)."""


def read_input(kind: str, value: str) -> bytes:
    """The bytes of one ``--hex``/``--text``/``--file`` argument."""
    if kind == "hex":
        cleaned = "".join(value.split()).removeprefix("0x")
        try:
            return binascii.unhexlify(cleaned)
        except (binascii.Error, ValueError) as exc:
            raise InputError(f"--hex {value[:40]!r} is not valid hex ({exc})") from exc
    if kind == "text":
        data = value.replace("\\r", "\r").replace("\\n", "\n").encode("utf-8")
        return data if data.endswith(b"\n") else data + b"\r\n"
    path = Path(value)
    if not path.is_file():
        raise InputError(f"--file {value}: no such file")
    return path.read_bytes()


def run(
    protocol: str,
    inputs: Sequence[tuple[str, str]],
    *,
    device_id: str | None,
    out: TextIO,
) -> int:
    """Decode ``inputs`` in order as one connection; one JSON line per fix/reply/reject."""
    codec = PROTOCOLS[protocol]
    session = Session(device_id=device_id)
    emit: Callable[[dict[str, Any]], None] = lambda obj: print(json.dumps(obj), file=out)  # noqa: E731
    rest = b""
    chunks = [read_input(kind, value) for kind, value in inputs]
    for chunk in chunks:
        try:
            frames, rest = codec.split_frames(rest + chunk)
        except DecodeError as exc:  # framing lost: the service would hang up here too
            emit({"reject": {"code": exc.code, "detail": exc.detail, "raw": (rest + chunk).hex()}})
            return 0
        session = _decode(codec.decode_frames, frames, session, emit)
    if rest and hasattr(codec, "MAX_FRAME"):  # binary: an incomplete frame, not a frame
        emit({"reject": {"code": "truncated", "detail": "input ends mid-frame", "raw": rest.hex()}})
    elif rest:  # text: a last line without its line end
        _decode(codec.decode_frames, [rest], session, emit)
    return 0


def _decode(
    decode_frames: Callable[..., Decoded],
    frames: Sequence[bytes],
    session: Session,
    emit: Callable[[dict[str, Any]], None],
) -> Session:
    if not frames:
        return session
    try:
        decoded: Decoded = decode_frames(frames, session=session)
    except DecodeError as exc:
        emit({"reject": {"code": exc.code, "detail": exc.detail, "raw": b"".join(frames).hex()}})
        return session
    for fix in decoded.fix_list():
        emit(fix.to_json())
    for reply in decoded.replies:
        emit({"reply": reply.hex()})
    for r in decoded.rejects:
        emit({"reject": {"code": r.code, "detail": r.detail, "raw": r.raw.hex()}})
    return decoded.session
