"""The silent-device rule: clock ticks open it, the next fix closes it."""

from __future__ import annotations

from deviation.model import Event, Sample
from deviation.silence import SilenceParams, SilenceState, step, tick
from menara.settings import Settings
from tests.saved import restored


def fix(t: float) -> Sample:
    return Sample(t, 0.0, 0.0, 0.0, 0.0, speed_kmh=0.0)


def roundtrip(state: SilenceState) -> SilenceState:
    back = restored(state)
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


def test_a_gap_no_tick_saw_is_reported_when_the_next_fix_arrives() -> None:
    """Fixes replayed faster than the clock: the tick at 100 s saw the trip active, the
    next tick came only after the device was back; the fix ending the 400 s gap reports
    it (opened at 300 s after the last fix, closed at the fix)."""
    state, _ = tick(SilenceState(), 100.0, 100.0, True)
    state, events = step(state, fix(500.0), last_fix_s=100.0)
    assert [(e.phase, e.t_s) for e in events] == [("open", 400.0), ("close", 500.0)]
    assert events[0].data == {"last_fix_s": 100.0, "silent_s": 400.0, "late": True}
    assert events[1].data["reason"] == "fix"
    assert state.silent_from_s is None


def test_short_gaps_and_gaps_before_the_trip_are_not_silence() -> None:
    state, events = step(SilenceState(), fix(900.0), last_fix_s=0.0)
    assert events == []  # no tick has seen the trip active: not on a trip yet
    state, _ = tick(SilenceState(), 100.0, 100.0, True)
    assert step(state, fix(399.0), last_fix_s=100.0)[1] == []
