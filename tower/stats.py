"""What the rule workers count, and how long after a fix's receipt its rules are done.

``COUNTERS`` holds the help text of every name a ``Tower`` or ``TowerPool`` counts; the
service exports them as ``menara_tower_<name>_total`` (a test fails on a counted name
missing here). ``Histogram`` is plain counts, so that the pool adds up its worker
processes' histograms the way it adds up their counters.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

__all__ = ["COUNTERS", "RULE_LATENCY_BUCKETS_S", "RULE_LATENCY_HELP", "Histogram"]

COUNTERS: dict[str, str] = {
    "fixes_evaluated": "Fixes evaluated by the rules of their vehicle.",
    "fixes_untracked": "Committed fixes of devices with no vehicle (no rules to run).",
    "alerts_touched": "Alerts opened, updated or closed by rule findings.",
    "alerts_escalated": "Unacknowledged alerts escalated after escalate_after_s.",
    "apply_retries": "Rounds applied again after a deadlock with a concurrent change.",
    "errors": "Rule rounds, ticks or reloads that failed (their findings are lost).",
    "rounds_lost": "Rounds a dead worker process never answered (fixes stored, not evaluated).",
    "worker_restarts": "Rule worker processes started again after dying.",
}

RULE_LATENCY_HELP = (
    "Seconds from the receipt of a round's oldest fix to the end of its rules"
    " (findings applied): how late alerts can be."
)
# A fix waits up to writer_batch_delay_ms (50 ms) to be committed, then for its round:
# healthy rounds end within tens to hundreds of ms, seconds mean the rules fall behind
# ingest, a minute or more a backlog (or a replay, whose receipt times are old).
RULE_LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(slots=True)
class Histogram:
    """Observations counted per bucket (``counts[i]`` for ``bounds[i-1] < v <= bounds[i]``,
    the last for above every bound), with their sum: what Prometheus needs."""

    bounds: tuple[float, ...] = RULE_LATENCY_BUCKETS_S
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def __add__(self, other: Histogram) -> Histogram:
        if other.bounds != self.bounds:
            raise ValueError("histograms with different buckets cannot be added")
        counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        return Histogram(self.bounds, counts, self.sum + other.sum)
