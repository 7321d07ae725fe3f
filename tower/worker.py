"""The rule worker: committed fixes in, rule findings applied to the database.

The ingest writer awaits ``Tower.feed`` after each commit; the queue is bounded, so a
tower that falls behind pushes back on ingest rather than dropping fixes (the writer
already acknowledged the devices, so nothing is lost while it waits). One task drains
the queue, evaluates every vehicle's rules on a worker thread (the rules are pure; the
database work is synchronous psycopg) and applies the findings of a round in one
transaction together with the rule states of vehicles whose incidents changed. Other
states are saved every ``persist_s``: after a crash a rule may raise an incident again,
which the alert store's dedupe key folds into the alert already open. Those saves
are written by ``tower.saver`` on its own thread, so a round never waits for them.

A clock tick (default every second) runs the rules that fire on silence (silent
device, late departure) and escalates unacknowledged alerts; plans and zones are
reloaded every ``refresh_s`` so newly dispatched trips and re-plans take effect.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self

import numpy as np
import psycopg

from decoders.model import FixArray
from geofence.index import ZoneIndex
from menara.settings import Settings
from oms_core.alerts import store
from oms_core.retry import on_conflict
from oms_core.zones_store import load_zones
from tower import effects
from tower.plans import PlanSettings, VehicleInfo, load_vehicles
from tower.saver import SavedState, StateSaver, save
from tower.stats import Histogram
from tower.vehicle import VehicleRules
from tower.warmup import warm_up

__all__ = ["FixBatch", "Tower", "round_members"]

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
APPLY_ATTEMPTS = 3


class FixBatch(Protocol):
    """What the writer hands on (``ingest.model.Batch`` has these; oms_core never
    imports ingest)."""

    @property
    def device_id(self) -> str: ...

    @property
    def fixes(self) -> FixArray: ...

    @property
    def received_us(self) -> int: ...


class Tower:
    """Async context manager: the rule worker and its database connection."""

    def __init__(
        self,
        dsn: str,
        *,
        config: Settings | None = None,
        clock: Callable[[], float] = time.time,
        tick_s: float = 1.0,
        refresh_s: float = 10.0,
        persist_s: float = 5.0,
        max_queued: int = 256,
        partition: tuple[int, int] | None = None,
    ) -> None:
        """``partition`` (k, n): only the vehicles whose id is k modulo n (one of n rule
        worker processes, see ``tower.pool``)."""
        self._dsn = dsn
        self._partition = partition
        self.config = config or Settings()
        self._clock = clock
        self._tick_s, self._refresh_s, self._persist_s = tick_s, refresh_s, persist_s
        self._queue: asyncio.Queue[tuple[FixBatch, ...]] = asyncio.Queue(max(1, max_queued))
        self._conn: Conn | None = None
        self._saver: StateSaver | None = None
        self._task: asyncio.Task[None] | None = None
        self._vehicles: dict[str, VehicleInfo] = {}
        self._rules: dict[int, VehicleRules] = {}
        self._zones: ZoneIndex | None = None
        self._zones_digest: str | None = None
        self._dirty: set[int] = set()
        self._fed = 0
        self._done = 0
        self._idle = asyncio.Condition()
        self._stopping = False
        self.counters: Counter[str] = Counter()  # names in tower.stats.COUNTERS
        self.rule_latency = Histogram()  # one observation a round, see _process
        self.fleet_time_s = 0.0  # the newest fix time evaluated (the "fleet" clock)

    async def __aenter__(self) -> Self:
        took = await asyncio.to_thread(warm_up, self.config)  # not in the first round
        log.log(logging.INFO if took >= 1.0 else logging.DEBUG, "rules compiled in %.1f s", took)
        self._conn = await asyncio.to_thread(self._connect)
        self._saver = StateSaver(self._connect, self.counters)
        await asyncio.to_thread(self._refresh)
        self._task = asyncio.create_task(self._run(), name="menara-tower")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Evaluate what is still queued (the writer drains into us before we leave),
        then save every vehicle's state. The task is never cancelled mid-round: its
        database work runs on a thread that a cancel would not stop."""
        self._stopping = True
        if self._task is not None:
            if not self._task.done():
                await self._queue.put(())  # wake the task if it waits for work
            await asyncio.gather(self._task, return_exceptions=True)
        if self._saver is not None:
            await asyncio.to_thread(self._saver.close)  # its snapshot is older than the last
        if self._conn is not None:
            await self._guarded(self._persist, set(self._rules))
            await asyncio.to_thread(self._conn.close)

    @property
    def queued(self) -> int:
        """Rounds of committed fixes waiting for the rules (the back-pressure gauge)."""
        return self._queue.qsize()

    async def feed(self, batches: Sequence[FixBatch]) -> int:
        """Queue committed batches for the rules; waits while the queue is full. Returns
        the feed's number, for ``drained_to``."""
        if self._task is None or self._task.done():
            raise RuntimeError("the tower is not running")
        if batches:
            self._fed += 1
            await self._queue.put(tuple(batches))
        return self._fed

    async def drain(self) -> None:
        """Wait until every batch fed so far has been evaluated and applied."""
        await self.drained_to(self._fed)

    async def drained_to(self, fed: int) -> None:
        """Wait until the feeds up to number ``fed`` have been evaluated and applied."""
        async with self._idle:
            await self._idle.wait_for(lambda: self._done >= fed)

    async def tick(self) -> None:
        """Run the clock rules now (tests and the demo call this; the task does it too)."""
        await asyncio.to_thread(self._tick, self._clock())

    # -- the task --------------------------------------------------------------------

    async def _run(self) -> None:
        next_tick = next_refresh = next_persist = time.monotonic()
        while not (self._stopping and self._queue.empty()):
            items: list[tuple[FixBatch, ...]] = []
            try:
                timeout = max(0.0, next_tick - time.monotonic())
                items.append(await asyncio.wait_for(self._queue.get(), timeout))
                while not self._queue.empty() and len(items) < 256:
                    items.append(self._queue.get_nowait())
            except TimeoutError:
                pass
            batches = [b for group in items for b in group]
            if batches:
                await self._guarded(self._process, batches)
            if items:
                self._done += sum(1 for group in items if group)
                async with self._idle:
                    self._idle.notify_all()
            now = time.monotonic()
            if now >= next_tick:
                await self._guarded(self._tick, self._clock())
                next_tick = now + self._tick_s
            if now >= next_persist:
                dirty, self._dirty = self._dirty, set()
                await self._guarded(self._hand_over, dirty)
                next_persist = now + self._persist_s
            if now >= next_refresh:
                await self._guarded(self._refresh)
                next_refresh = now + self._refresh_s

    async def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        """A database or rule failure costs this round's findings, never the worker."""
        try:
            await asyncio.to_thread(fn, *args)
        except Exception:
            self.counters["errors"] += 1
            log.exception("tower %s failed; carrying on", fn.__name__)

    # -- on the worker thread --------------------------------------------------------

    def _connect(self) -> Conn:
        """Named in pg_stat_activity (and on the NOTIFYs of its alerts) as the worker it
        is: ``menara-rules k/n pid <pid>``, so its vehicles' changes can be traced to it."""
        k, n = self._partition or (0, 1)
        name = f"menara-rules {k}/{n} pid {os.getpid()}"
        return psycopg.connect(self._dsn, autocommit=True, application_name=name)

    def _db(self) -> Conn:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def _refresh(self) -> None:
        """Plans and zones again. What did not change is kept as it is, with the geometry
        made from it (rebuilding 1,000 unchanged plans and the zone index every
        ``refresh_s`` stalled the rounds and fed the collector); saved states are read
        only for vehicles this worker does not hold yet (it starts, or one appears)."""
        conn = self._db()
        cfg = self.config
        vehicles = load_vehicles(
            conn,
            PlanSettings(
                cfg.stop_radius_m, cfg.depot_radius_m, cfg.plan_avg_speed_kmh, cfg.plan_road_factor
            ),
            self._partition,
        )
        self._refresh_zones(conn)
        new = list({i.vehicle_id for i in vehicles.values()} - self._rules.keys())
        saved = {
            int(r[0]): (r[1], r[2])
            for r in conn.execute(
                "SELECT vehicle_id, trip_id, state FROM rule_state WHERE vehicle_id = ANY(%s)",
                (new,),
            ).fetchall()
        } if new else {}  # fmt: skip
        for device_id, info in vehicles.items():
            rules = self._rules.get(info.vehicle_id)
            held = None if rules is None else rules.info.trip
            if held is not None and held is not info.trip and held == info.trip:
                info = vehicles[device_id] = dataclasses.replace(info, trip=held)
            trip_id = None if info.trip is None else info.trip.trip_id
            if rules is None and info.vehicle_id in saved and saved[info.vehicle_id][0] == trip_id:
                rules = VehicleRules.from_json(info, cfg, saved[info.vehicle_id][1])
            if rules is None:
                rules = VehicleRules.new(info, cfg)
            elif rules.trip_id != trip_id:
                rules = rules.carry_over(VehicleRules.new(info, cfg))
            else:
                rules = rules.with_info(info)
            self._rules[info.vehicle_id] = rules
        self._vehicles = vehicles

    def _refresh_zones(self, conn: Conn) -> None:
        """The zone index again, if a zone changed (a digest of every active zone's row)."""
        (digest,) = conn.execute(_ZONES_DIGEST).fetchone() or ("",)
        if digest == self._zones_digest:
            return
        zones = load_zones(conn)
        self._zones = ZoneIndex(zones) if zones else None
        self._zones_digest = digest

    def _process(self, batches: Sequence[FixBatch]) -> None:
        """One round: each device's fixes of every batch in the round evaluated at once
        (a tracker sending one fix per packet would otherwise cost a rule pass per fix).
        Its latency, from the receipt of its oldest tracked fix to the findings applied,
        is observed once, in wall-clock seconds whatever the rules' clock."""
        conn = self._db()
        grouped: dict[str, list[FixBatch]] = {}
        for b in batches:
            grouped.setdefault(b.device_id, []).append(b)
        tracked: list[tuple[str, VehicleInfo, FixArray, float]] = []
        oldest_us = time.time_ns() // 1000
        for device_id, group in grouped.items():
            fixes = group[0].fixes if len(group) == 1 else np.concatenate([b.fixes for b in group])
            info = self._vehicles.get(device_id)
            if info is None:
                self.counters["fixes_untracked"] += len(fixes)
                continue
            received = [b.received_us for b in group]
            tracked.append((device_id, info, fixes, max(received) / 1e6))
            oldest_us = min(oldest_us, *received)
        members = round_members(self._zones, [t[2] for t in tracked])
        per_vehicle: dict[int, tuple[str, VehicleInfo, list[effects.Finding]]] = {}
        for (device_id, info, fixes, received_s), zones in zip(tracked, members, strict=True):
            rules = self._rules[info.vehicle_id]
            found = rules.process(fixes, received_s, zones, self._zones)
            self.fleet_time_s = max(self.fleet_time_s, rules.last_fix_s or 0.0)
            self.counters["fixes_evaluated"] += len(fixes)
            if found:
                entry = per_vehicle.setdefault(info.vehicle_id, (device_id, info, []))
                entry[2].extend(found)
            self._dirty.add(info.vehicle_id)
        if per_vehicle:
            self._apply(conn, per_vehicle)
        if tracked:
            self.rule_latency.observe(max(0.0, time.time() - oldest_us / 1e6))

    def _apply(
        self, conn: Conn, per_vehicle: dict[int, tuple[str, VehicleInfo, list[effects.Finding]]]
    ) -> None:
        """Apply a round's findings in one transaction; one that deadlocked (drivers'
        actions lock the same stops and orders) is rolled back whole and applied again,
        since the rules have already moved past these fixes."""

        def once() -> int:
            touched = 0
            with conn.transaction():
                for device_id, info, found in per_vehicle.values():
                    touched += effects.apply(conn, device_id, info, found)
                    effects.count_quality(conn, device_id, found)
                    if any(f.event.phase != "info" for f in found):
                        self._save(conn, info.vehicle_id)
            return touched  # counted once committed: a rolled-back try touched nothing

        def retried() -> None:
            self.counters["apply_retries"] += 1
            log.info("tower round met a concurrent change; applying it again")

        self.counters["alerts_touched"] += on_conflict(
            once, attempts=APPLY_ATTEMPTS, retried=retried
        )

    def _tick(self, now_s: float) -> None:
        conn = self._db()
        per_vehicle: dict[int, tuple[str, VehicleInfo, list[effects.Finding]]] = {}
        for device_id, info in self._vehicles.items():
            rules = self._rules.get(info.vehicle_id)
            if rules is None or device_id != rules.device_id:
                continue  # a driver's phone shares its vehicle's rules: tick once
            found = rules.tick(now_s, time.time())
            if found:
                per_vehicle[info.vehicle_id] = (device_id, info, found)
        if per_vehicle:
            self._apply(conn, per_vehicle)
        when = datetime.fromtimestamp(now_s, UTC)
        with conn.transaction():
            escalated = store.escalate_overdue(conn, when, self.config.escalate_after_s)
        self.counters["alerts_escalated"] += len(escalated)

    def _hand_over(self, vehicle_ids: set[int]) -> None:
        """The states of ``vehicle_ids`` to the saver, which writes them beside the rounds."""
        assert self._saver is not None
        self._saver.submit(self._snapshot(vehicle_ids))

    def _snapshot(self, vehicle_ids: Iterable[int]) -> list[SavedState]:
        now = time.time()
        out = []
        for vid in sorted(vehicle_ids):
            rules = self._rules.get(vid)
            if rules is not None:
                out.append(SavedState(vid, rules.trip_id, rules.to_json(), rules.last_fix_s, now))
        return out

    def _save(self, conn: Conn, vehicle_id: int) -> None:
        save(conn, self._snapshot((vehicle_id,)))

    def _persist(self, vehicle_ids: set[int]) -> None:
        """Every state now, on this thread (the last save, when the worker stops)."""
        conn = self._db()
        with conn.transaction():
            save(conn, self._snapshot(vehicle_ids))


_ZONES_DIGEST = """
SELECT md5(coalesce(string_agg(concat_ws('|', id, name, kind, geometry::text, speed_limit_kmh),
                               ',' ORDER BY id), ''))
FROM zones WHERE active
"""


def round_members(
    index: ZoneIndex | None, fixes: Sequence[FixArray]
) -> list[list[frozenset[str]] | None]:
    """Each batch's zone membership, from one index call over the whole round (per
    batch, the index's numpy overhead would cost more than its work)."""
    if index is None:
        return [None] * len(fixes)
    if not fixes:
        return []
    lat = np.concatenate([np.asarray(f["lat"], dtype=np.float64) for f in fixes])
    lon = np.concatenate([np.asarray(f["lon"], dtype=np.float64) for f in fixes])
    found = index.members(lat, lon)
    ends = np.cumsum([len(f) for f in fixes]).tolist()
    return [found[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]
