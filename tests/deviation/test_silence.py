"""The silent-device rule: clock ticks open it, the next fix closes it."""

from __future__ import annotations

import json

from deviation.silence import SilenceParams, SilenceState, step, tick
from geofence.model import Event, Sample
from menara.settings import Settings


def fix(t: float) -> Sample:
    return Sample(t, 0.0, 0.0, 0.0, 0.0, speed_kmh=0.0)


def roundtrip(state: SilenceState) -> SilenceState:
    back = SilenceState.from_json(json.loads(json.dumps(state.to_json())))
    assert back == state
    return back


def test_default_is_the_setting() -> None:
    assert SilenceParams().silent_after_s == Settings().silent_after_s


def test_silence_opens_once_and_the_next_fix_closes_it() -> None:
    state = SilenceState()
    seen: list[Event] = []
    for now in range(1000, 1700, 60):  # last fix at 1000, ticks every minute
        state, events = tick(state, now, 1000.0, True)
        state = roundtrip(state)
        seen.extend(events)
    assert seen == [
        Event("silent_device", "open", 1300, data={"last_fix_s": 1000.0, "silent_s": 300.0})
    ]
    state, events = step(state, fix(1750))
    assert events == [
        Event(
            "silent_device",
            "close",
            1750,
            data={"last_fix_s": 1000.0, "silent_s": 750.0, "reason": "fix"},
        )
    ]
    assert step(roundtrip(state), fix(1760))[1] == []


def test_no_alert_while_fixes_arrive_or_when_no_trip_is_active() -> None:
    state = SilenceState()
    for now in range(1000, 2000, 60):
        state, events = tick(state, now, now - 30.0, True)  # a fix 30 s ago every time
        assert events == []
    for now in range(1000, 2000, 60):
        state, events = tick(state, now, 0.0, False)
        assert events == []


def test_a_device_that_never_reported_is_silent_from_the_trip_start() -> None:
    state, events = tick(SilenceState(), 5000, None, True)
    assert events == []
    state, events = tick(state, 5299, None, True)
    assert events == []
    state, events = tick(state, 5300, None, True)
    assert events == [
        Event("silent_device", "open", 5300, data={"last_fix_s": None, "silent_s": 300})
    ]


def test_an_old_fix_does_not_make_a_new_trip_silent_at_once() -> None:
    state, events = tick(SilenceState(), 5000, 100.0, True)
    assert events == []
    _, events = tick(state, 5300, 100.0, True)
    assert [(e.phase, e.t_s, e.data["silent_s"]) for e in events] == [("open", 5300, 300)]


def test_the_trip_ending_while_silent_closes_it() -> None:
    state, _ = tick(SilenceState(), 1000, 1000.0, True)
    state, events = tick(state, 1400, 1000.0, True)
    assert [e.phase for e in events] == ["open"]
    state, events = tick(state, 1500, 1000.0, False)
    assert [(e.phase, e.data["reason"], e.data["silent_s"]) for e in events] == [
        ("close", "trip_inactive", 500.0)
    ]
    assert state == SilenceState()
