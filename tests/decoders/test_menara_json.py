"""Menara JSON: strict validation never raises, valid elements always survive."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from decoders import menara_json
from decoders.model import Session
from tests.decoders.invariants import check_fixes

SESSION = Session(device_id="van-7")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
good = st.fixed_dictionaries(
    {
        "fix_time": st.datetimes(timezones=st.timezones())
        .filter(lambda d: 1981 < d.year < 2098)
        .map(lambda d: d.isoformat()),
        "lat": st.floats(-90, 90),
        "lon": st.floats(-180, 180),
    },
    optional={
        "speed_kmh": st.floats(0, 300),
        "satellites": st.integers(0, 40),
        "valid": st.booleans(),
        # NUL cannot be stored in jsonb, so an attribute holding one is refused (bad_value)
        "attributes": st.dictionaries(
            st.text(st.characters(blacklist_characters="\x00"), max_size=5), st.integers()
        ),
    },
)


@given(st.lists(good, max_size=5), st.lists(json_values, max_size=5))
def test_good_elements_survive_bad_neighbours(ok: list[dict[str, Any]], bad: list[Any]) -> None:
    out = menara_json.decode(json.dumps([*ok, *bad]).encode(), session=SESSION)
    check_fixes(out)
    assert len(out.fixes) >= len(ok)
    assert len(out.fixes) + len(out.rejects) == len(ok) + len(bad)
    for row, el in zip(out.fixes, ok, strict=False):
        assert row["lat"] == el["lat"] and row["lon"] == el["lon"]


@given(st.binary(max_size=200))
def test_random_bytes_never_raise(buf: bytes) -> None:
    frames, rest = menara_json.split_frames(buf)
    assert rest == b""
    check_fixes(menara_json.decode_frames(frames, session=SESSION))


def test_attributes_follow_their_fix() -> None:
    payload = [
        {"fix_time": "2026-01-01T00:00:00Z", "lat": 1, "lon": 2},
        {"fix_time": "2026-01-01T00:00:01Z", "lat": 1, "lon": 2, "attributes": {"door": "open"}},
    ]
    out = menara_json.decode(json.dumps(payload).encode(), session=SESSION)
    assert out.attributes == ({}, {"door": "open"})
    assert [f.device_id for f in out.fix_list()] == ["van-7", "van-7"]


@pytest.mark.parametrize(
    "attributes",
    [
        '{"note": "a\\u0000b"}',
        '{"k\\u0000": 1}',
        '{"s": "\\ud800"}',
        '{"x": [1, NaN]}',
        '{"deep": {"v": Infinity}}',
    ],
)
def test_attributes_the_database_would_refuse_are_rejected_alone(attributes: str) -> None:
    good = '{"fix_time": "2026-11-25T10:00:00Z", "lat": -6.2, "lon": 106.8}'
    bad = good[:-1] + f', "attributes": {attributes}}}'
    out = menara_json.decode(f"[{bad}, {good}]".encode(), session=Session(device_id="d"))
    assert [r.code for r in out.rejects] == ["bad_attributes"]
    assert len(out.fixes) == 1  # the good sibling is kept
