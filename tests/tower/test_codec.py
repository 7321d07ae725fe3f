"""The one codec for rule states (``tower.codec``): every state round-trips through
jsonb-safe JSON, and anything that is not a saved state is refused with ``ValueError``."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from deviation.corridor import CorridorState
from deviation.membership import ZoneState, ZoneTrack
from deviation.quality import QualityState
from deviation.schedule import ScheduleState
from deviation.still import Still
from deviation.stops import StopState
from menara.settings import Settings
from tests.saved import restored
from tower.codec import decode, encode
from tower.vehicle import VehicleRules
from tower.warmup import straight_trip

STATES: list[Any] = [
    StopState(
        inside=((11, 5.0, None),),
        visiting=((12, 1.0, 3.5),),
        arrived_stop_ids=frozenset({12, 10}),
        still=Still(1.0, 2.0, 3.0, 4.0, 0.1, 0.2, True),
        last_t_s=9.0,
        last_x_m=1.5,
    ),
    QualityState(last=(1.0, 2.0, 3.0), incidents=(("jump", 2, 7.0),), invalid_count=1),
    ScheduleState(late="open", arrived_seen=frozenset({3}), at_risk=((3, 12.0),)),
    ZoneState((ZoneTrack("A", True, None, 4.0, False), ZoneTrack("B"))),
    CorridorState(evidence=((1.0, 2.0, 3.0, 4.0),), progress_m=10.0),
]


@pytest.mark.parametrize("state", STATES, ids=lambda s: type(s).__name__)
def test_every_kind_of_field_round_trips(state: Any) -> None:
    assert restored(state) == state


def test_nan_is_saved_as_null_and_read_back_as_nan() -> None:
    saved = encode(StopState())
    assert saved["last_x_m"] is None and saved["arrived_stop_ids"] == []
    back = decode(StopState, json.loads(json.dumps(saved, allow_nan=False)))
    assert math.isnan(back.last_x_m) and back.arrived_stop_ids == frozenset()


def test_a_field_missing_from_an_older_save_takes_its_default() -> None:
    saved = encode(StopState(last_t_s=3.0))
    del saved["last_x_m"], saved["last_y_m"]
    back = decode(StopState, saved)
    assert back.last_t_s == 3.0 and math.isnan(back.last_y_m)


def _with(**changes: Any) -> dict[str, Any]:
    return {**encode(STATES[0]), **changes}


@pytest.mark.parametrize(
    "data",
    [
        [],
        "{}",
        _with(at_depot="yes"),  # a bool field
        _with(departed_s="5"),  # a number as text
        _with(departed_s=True),  # a bool is not a number
        _with(inside=[[11, 5.0]]),  # a fixed tuple one short
        _with(inside=[["11", 5.0, None]]),  # an id as text
        _with(arrived_stop_ids=[1.5]),
        _with(arrived_stop_ids={"1": 1}),
        _with(still={"since_s": 1.0}),  # a nested state missing fields
        _with(still=[1.0]),
        _with(surprise=1),  # a field the state does not have
        _with(departed_s=10**400),  # no float holds it
    ],
)
def test_anything_else_is_refused(data: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        decode(StopState, data)


def test_a_literal_field_takes_only_its_values() -> None:
    with pytest.raises(ValueError, match="late"):
        decode(ScheduleState, {**encode(ScheduleState()), "late": "late"})


def test_a_save_of_the_old_layout_or_a_broken_one_starts_afresh() -> None:
    info = straight_trip((1000.0,), 2000.0, None)
    rules = VehicleRules.new(info, Settings())
    rules.stops = STATES[0]
    saved = json.loads(json.dumps(rules.to_json(), allow_nan=False))
    assert VehicleRules.from_json(info, Settings(), saved).stops == STATES[0]
    fresh = VehicleRules.new(info, Settings()).stops
    broken_saves: list[Any] = [
        {**saved, "v": 3},
        {**saved, "stops": {"inside": 3}},
        {"v": 2},
        [saved],
        {**saved, "last_fix_s": "soon"},
    ]
    for broken in broken_saves:
        assert VehicleRules.from_json(info, Settings(), broken).stops == fresh


def test_a_save_of_layout_1_keeps_its_open_incidents() -> None:
    """As the hand-written codecs before layout 2 wrote it (an open overspeed, a zone)."""
    v1 = {
        "v": 1, "projection": [52.37, 4.89], "last_fix_s": 100.0,
        "quality": {"last": [100.0, 1.0, 2.0], "candidate": None, "streak": 0,
                    "incidents": [], "invalid_count": 0},
        "zones": {"v": 1, "tracks": [["A", True, None, 40.0, False]]},
        "overspeed": {"over_since_s": 60.0, "is_open": True, "under_since_s": None,
                      "max_speed_kmh": 120.0, "reported_max_kmh": 120.0, "limit_kmh": 90.0,
                      "source": "default", "evidence": [[60.0, 52.37, 4.89, 120.0]]},
        "stops": encode(StopState()) | {"arrived_stop_ids": [7]},
        "corridor": encode(CorridorState()),
        "schedule": {"late": "done", "eta_at_s": 90, "arrived_seen": [7], "at_risk": []},
        "silence": {"active_since_s": 0.0, "silent_from_s": None, "last_fix_s": None},
    }  # fmt: skip
    info = straight_trip((1000.0,), 2000.0, None)
    rules = VehicleRules.from_json(info, Settings(), json.loads(json.dumps(v1)))
    assert rules.overspeed.is_open and rules.overspeed.evidence == ((60.0, 52.37, 4.89, 120.0),)
    assert rules.zones == ZoneState((ZoneTrack("A", True, None, 40.0, False),))
    assert rules.stops.arrived_stop_ids == {7} and rules.schedule.eta_at_s == 90.0
