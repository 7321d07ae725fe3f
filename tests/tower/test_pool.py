"""Rule workers in their own processes: the scenarios through a two-process pool raise
exactly the alerts the in-process tower raises, every fix is evaluated once by its
vehicle's worker, and a worker that dies is started again from the saved states."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import signal
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest

from decoders.model import empty_fixes
from simulators.vehicle import SimFix
from tests.polling import until
from tests.tower import scenario
from tests.tower.test_tower import _alerts
from tests.tower.world import build
from tower.pool import TowerPool, _Round

pytestmark = pytest.mark.db


def test_two_worker_processes_raise_exactly_the_scenario_alerts(clean_db: str) -> None:
    departure = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=100)
    fleet = build(clean_db, scenario.specs(departure))
    fixes = scenario.timeline(fleet)

    async def go() -> None:
        async with TowerPool(clean_db, processes=2, fleet_clock=True, tick_s=3600) as pool:
            for chunk in scenario.chunks(fixes, 30.0):
                if chunk:
                    received = int(chunk[-1].fix_time.timestamp() * 1e6) + 1_000_000
                    await pool.feed(scenario.batches(chunk, received))
                    await pool.tick()
            assert pool.counters["fixes_evaluated"] == len(fixes)
            assert pool.counters["errors"] == 0
            assert pool.queued == 0

    asyncio.run(go())
    keys = scenario.stop_keys(fleet)
    got: dict[str, set[tuple[str, str]]] = {plate: set() for plate in scenario.FAULTS}
    for a in _alerts(clean_db):
        key = a["dedupe_key"].split(":", 3)[3]
        got[a["plate"]].add((a["type"], keys.get(key, key)))
    assert got == scenario.EXPECTED
    vehicles = {b.vehicle_id % 2 for b in fleet.trips.values()}
    assert vehicles == {0, 1}  # both workers had vehicles to evaluate


def test_a_dead_worker_is_started_again_and_evaluates_on(clean_db: str) -> None:
    departure = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=100)
    fleet = build(clean_db, scenario.specs(departure))
    chunks = [c for c in scenario.chunks(scenario.timeline(fleet), 60.0) if c]

    async def feed(pool: TowerPool, chunk: list[SimFix]) -> None:
        received = int(chunk[-1].fix_time.timestamp() * 1e6) + 1_000_000
        await pool.feed(scenario.batches(chunk, received))

    async def go() -> None:
        async with TowerPool(clean_db, processes=1, fleet_clock=True) as pool:
            await feed(pool, chunks[0])
            await pool.drain()
            before = pool.counters["fixes_evaluated"]
            assert before == len(chunks[0])
            assert pool.rule_latency.count == 1  # the round's latency came back with it
            (child,) = [p for p in multiprocessing.active_children() if p.name == "menara-rules-0"]
            assert child.pid is not None
            os.kill(child.pid, signal.SIGKILL)
            await until(lambda: pool.counters["worker_restarts"] == 1, 60, "the death seen")
            await feed(pool, chunks[1])  # waits for the new worker
            await pool.drain()
            assert pool.counters["fixes_evaluated"] == before + len(chunks[1])
            assert pool.rule_latency.count == 2  # the dead worker's round is kept

    asyncio.run(go())


def test_a_worker_that_cannot_start_says_so(clean_db: str) -> None:
    """Half-migrated database: the routing table is there, the rule states are not."""

    async def go() -> None:
        async with TowerPool(clean_db, processes=1):
            pass

    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("ALTER TABLE rule_state RENAME TO rule_state_away")
        try:
            with pytest.raises(RuntimeError, match="rule worker 0 exited while starting"):
                asyncio.run(go())
        finally:
            conn.execute("ALTER TABLE rule_state_away RENAME TO rule_state")


def test_a_round_crosses_the_pipe_whole() -> None:
    """Packed into one buffer and unpacked in the worker: the same batches, in order."""
    rng = np.random.default_rng(3)
    batches = []
    for i, n in enumerate([1, 3, 1, 7, 2]):
        f = empty_fixes(n)
        f["fix_time_us"] = rng.integers(0, 2**50, n)
        f["lat"], f["lon"] = rng.uniform(-90, 90, n), rng.uniform(-180, 180, n)
        batches.append(scenario.FixBatch(f"DEV-{i % 3}", f, 1_000 + i))
    back = pickle.loads(pickle.dumps(_Round.pack(batches))).unpack()
    assert [(b.device_id, b.received_us) for b in back] == [
        (b.device_id, b.received_us) for b in batches
    ]
    for got, sent in zip(back, batches, strict=True):
        assert got.fixes.tobytes() == sent.fixes.tobytes()
        assert got.fixes.flags.writeable
