"""The rule latency histogram: one observation per round of tracked fixes, measured from
the receipt of the round's oldest fix, and histograms that add up across workers."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import psycopg
import pytest

from decoders.model import FixArray, empty_fixes
from tests.tower.scenario import FixBatch
from tower.stats import RULE_LATENCY_BUCKETS_S, Histogram
from tower.worker import Tower


def _fixes(n: int, start_s: float) -> FixArray:
    f = empty_fixes(n)
    f["fix_time_us"] = (start_s + np.arange(n, dtype=np.float64)) * 1e6
    f["lat"], f["lon"], f["valid"] = -6.2, 106.8, True
    return f


def test_histograms_add_bucket_by_bucket() -> None:
    a, b = Histogram(), Histogram()
    for v in (0.005, 0.01, 0.3):
        a.observe(v)
    b.observe(120.0)
    total = a + b
    assert total.counts[:2] == [2, 0]  # 0.01 is in the 0.01 bucket (le: "at most")
    assert total.counts[RULE_LATENCY_BUCKETS_S.index(0.5)] == 1
    assert total.counts[-1] == 1  # above every bound
    assert total.count == 4
    assert total.sum == pytest.approx(120.315)
    assert (a.count, b.count) == (3, 1)  # the operands are left alone
    with pytest.raises(ValueError, match="different buckets"):
        _ = a + Histogram((1.0,))


@pytest.mark.db
def test_each_round_of_tracked_fixes_is_observed_once(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO vehicles (plate, capacity_kg, capacity_m3, tracker_device_id)"
            " VALUES ('LAT 1', 500, 5, 'LAT-1')"
        )

    async def go() -> None:
        async with Tower(clean_db, tick_s=3600) as tower:
            now = time.time()
            received_us = int((now - 2.0) * 1e6)  # it waited 2 s before the rules
            await tower.feed([FixBatch("LAT-1", _fixes(3, now - 10), received_us)])
            await tower.drain()
            h = tower.rule_latency
            assert h.count == 1
            assert 2.0 <= h.sum < 2.0 + 30  # the round itself takes well under 30 s
            assert sum(h.counts[: RULE_LATENCY_BUCKETS_S.index(1.0) + 1]) == 0  # none <= 1 s

            await tower.feed([FixBatch("NOBODY", _fixes(2, now), int(now * 1e6))])
            await tower.drain()
            assert tower.rule_latency.count == 1  # no vehicle: no rules ran
            assert tower.counters["fixes_untracked"] == 2

            later = time.time()
            two = [
                FixBatch("LAT-1", _fixes(1, later), int(later * 1e6)),
                FixBatch("LAT-1", _fixes(1, later + 1), int(later * 1e6)),
            ]
            await tower.feed(two)
            await tower.drain()
            assert tower.rule_latency.count == 2  # two batches, one round
            assert tower.counters["fixes_evaluated"] == 5
            assert tower.counters["errors"] == 0

    asyncio.run(go())
