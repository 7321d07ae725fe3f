"""Every vector file through its protocol: every field, every reply byte, every reject code."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from decoders import PROTOCOLS, Session
from tests.decoders.invariants import check_fixes

VECTOR_DIR = Path(__file__).resolve().parents[2] / "decoders" / "vectors"
VECTORS = [
    pytest.param(vec, id=f"{path.stem}-{i}")
    for path in sorted(VECTOR_DIR.glob("*.json"))
    for i, vec in enumerate(json.loads(path.read_text()))
]
# float32 columns keep ~7 significant digits; lat/lon are float64 and must be exact.
TOLERANCE = {"lat": 1e-9, "lon": 1e-9}


def _message(vec: dict[str, Any]) -> bytes:
    if vec["encoding"] == "hex":
        return bytes.fromhex(vec["message"])
    assert vec["encoding"] == "text"
    return str(vec["message"]).encode()


def _same(name: str, got: Any, want: Any) -> bool:
    if isinstance(want, float) and isinstance(got, float):
        if name in TOLERANCE:
            return abs(got - want) <= TOLERANCE[name]
        return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9)
    return bool(got == want)


def test_vector_files_exist() -> None:
    assert {p.stem for p in VECTOR_DIR.glob("*.json")} >= {"nmea", "t55", "menara_json"}


@pytest.mark.parametrize("vec", VECTORS)
def test_vector(vec: dict[str, Any]) -> None:
    assert set(vec) <= {"protocol", "encoding", "message", "expected", "source", "check", "session"}
    assert set(vec["expected"]) <= {
        "fixes",
        "replies",
        "replies_hex",
        "rejects",
        "ignored",
        "device_id",
        "refused_reply_hex",
    }
    assert vec["source"] and vec["check"]
    codec = PROTOCOLS[vec["protocol"]]
    frames, rest = codec.split_frames(_message(vec))
    assert rest == b""
    out = codec.decode_frames(frames, session=Session(**vec.get("session", {})))
    check_fixes(out)
    expected = vec["expected"]
    assert [r.code for r in out.rejects] == expected["rejects"], out.rejects
    assert out.ignored == expected.get("ignored", 0)
    if "replies_hex" in expected:  # binary protocols
        assert [r.hex() for r in out.replies] == expected["replies_hex"]
    else:
        assert list(out.replies) == [r.encode("latin-1") for r in expected["replies"]]
    assert out.refused_reply.hex() == expected.get("refused_reply_hex", "")
    if "device_id" in expected:
        assert out.device_id == expected["device_id"]
    got = [f.to_json() for f in out.fix_list()]
    assert len(got) == len(expected["fixes"]), got
    for g, w in zip(got, expected["fixes"], strict=True):
        assert set(g) == set(w)
        bad = {k: (g[k], w[k]) for k in w if not _same(k, g[k], w[k])}
        assert not bad, bad
