"""How fast ``menara demo`` replays its day, and what that speed asks of the vans.

A newcomer should see the whole day (orders, vans driving, alerts, deliveries, the
summary) in about two minutes, so by default the day is replayed as fast as fits it
into ``REPLAY_S`` (or ``--duration``), never slower than ``BASE_SPEEDUP``. The links
were tuned at that base pace, a fix every ``BASE_FIX_INTERVAL_S`` of fleet time; faster,
each tracker reports less often in fleet time so its link still sends about as many
fixes per wall second (links that wait for their acks would fall behind and stretch the
replay), up to ``MAX_FIX_INTERVAL_S``. The speeding fault then lasts long enough for a
few fixes to see it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REPLAY_S", "Pace", "pace"]

REPLAY_S = 120.0  # the default replay: the whole day in about two minutes
BASE_SPEEDUP = 60.0
BASE_FIX_INTERVAL_S = 5.0
MAX_FIX_INTERVAL_S = 20.0  # sparser fixes would blur the faults the rules should catch


@dataclass(frozen=True, slots=True)
class Pace:
    """The replay's speed-up and the fleet-time interval between a tracker's fixes."""

    speedup: float
    fix_interval_s: float = BASE_FIX_INTERVAL_S


def pace(span_s: float, *, speedup: float | None, duration_s: float | None) -> Pace:
    """``speedup`` as given, or the one that replays ``span_s`` of fleet time in
    ``duration_s`` (default ``REPLAY_S``) wall seconds, at least ``BASE_SPEEDUP``."""
    s = speedup if speedup is not None else max(BASE_SPEEDUP, span_s / (duration_s or REPLAY_S))
    interval = min(MAX_FIX_INTERVAL_S, BASE_FIX_INTERVAL_S * max(1.0, s / BASE_SPEEDUP))
    return Pace(s, interval)
