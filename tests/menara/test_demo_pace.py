"""The demo's pace: the whole day in about two minutes unless told otherwise, and
trackers that report less often in fleet time as the replay speeds up."""

from __future__ import annotations

from menara.demo_pace import REPLAY_S, pace

DAY_S = 9 * 3600.0


def test_the_default_replays_the_whole_day_in_about_two_minutes() -> None:
    p = pace(DAY_S, speedup=None, duration_s=None)
    assert DAY_S / p.speedup == REPLAY_S == 120
    assert p.fix_interval_s == 20.0  # 270x: capped, a fix every 20 s of fleet time


def test_a_longer_duration_slows_the_replay_down_to_the_base_pace() -> None:
    assert pace(DAY_S, speedup=None, duration_s=270).speedup == 120
    slow = pace(DAY_S, speedup=None, duration_s=3600)
    assert slow.speedup == 60 and slow.fix_interval_s == 5.0  # never slower than 60x


def test_a_given_speedup_is_kept_and_the_links_keep_their_rate() -> None:
    p = pace(DAY_S, speedup=120, duration_s=5)
    assert p.speedup == 120 and p.fix_interval_s == 10.0  # 12 fixes a wall second
