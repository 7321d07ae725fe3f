"""Rule workers in their own processes, partitioned by vehicle.

In one process ingest and the rules share a core under the GIL (BENCHMARKS.md: about
56 µs of event loop and 43 µs of rules per fix at 10,000 fixes/s), so neither keeps up.
The pool runs ``processes`` rule workers, each a ``Tower`` over the vehicles whose id
is its number modulo ``processes`` (a stable hash: a tracker and its driver's phone
meet in one worker, and a vehicle's state stays where it is). The writer awaits
``feed`` as before: each committed round goes to the workers owning its vehicles, and
at most ``max_in_flight`` rounds per worker wait unanswered, so a slow worker still
pushes back on ingest. Alerts leave the workers through the database (the outbox and
NOTIFY), exactly as from an in-process tower; ``counters`` and ``rule_latency`` sum the
workers' own, which each answer carries.

A worker that dies is started again from the saved rule states (``rule_state``); the
rounds it had not answered are counted in ``rounds_lost`` (their fixes are stored, only
their rules were not run) and its restart in ``worker_restarts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, NamedTuple, Self

import numpy as np
import psycopg

from decoders.model import FixArray
from menara.settings import Settings
from tower.plans import device_vehicles
from tower.stats import Histogram
from tower.worker import FixBatch, Tower

__all__ = ["TowerPool"]

log = logging.getLogger(__name__)
_START_TIMEOUT_S = 120.0  # a cold worker imports numpy, numba, shapely and loads every plan
_STOP_TIMEOUT_S = 120.0  # it evaluates what is queued and saves every state first


class _Batch(NamedTuple):
    """A committed batch as a worker's ``Tower`` takes it."""

    device_id: str
    fixes: FixArray
    received_us: int


class _Round(NamedTuple):
    """A round's batches for one worker, packed for the pipe as one buffer of fix
    records: a tracker sending a fix per packet makes thousands of one-fix batches a
    round, and pickling each array on the service's event loop cost 15-20 ms a round
    (this costs about 0.5 ms)."""

    device_ids: list[str]
    counts: list[int]
    received_us: list[int]
    dtype: np.dtype[Any]
    raw: bytes

    @classmethod
    def pack(cls, batches: Sequence[FixBatch]) -> _Round:
        return cls(
            [b.device_id for b in batches],
            [len(b.fixes) for b in batches],
            [b.received_us for b in batches],
            batches[0].fixes.dtype,
            b"".join([b.fixes.tobytes() for b in batches]),
        )

    def unpack(self) -> list[_Batch]:
        fixes = np.frombuffer(self.raw, dtype=self.dtype).copy()
        out, at = [], 0
        for device_id, n, received_us in zip(
            self.device_ids, self.counts, self.received_us, strict=True
        ):
            out.append(_Batch(device_id, fixes[at : at + n], received_us))
            at += n
        return out


class _Options(NamedTuple):
    dsn: str
    config: Settings
    partition: tuple[int, int]
    fleet_clock: bool
    tick_s: float
    refresh_s: float
    persist_s: float
    log_setup: Callable[[], None]


def basic_logging() -> None:
    """How a worker process logs unless the caller passes its own set-up (picklable)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(processName)s %(message)s"
    )


class TowerPool:
    """Async context manager with the interface of ``Tower`` the service uses."""

    def __init__(
        self,
        dsn: str,
        *,
        config: Settings | None = None,
        processes: int = 1,
        fleet_clock: bool = False,
        tick_s: float = 1.0,
        refresh_s: float = 10.0,
        persist_s: float = 5.0,
        max_in_flight: int = 64,
        log_setup: Callable[[], None] = basic_logging,
    ) -> None:
        if processes < 1:
            raise ValueError("tower_processes must be at least 1 (0 runs the tower in-process)")
        self._dsn = dsn
        self._options = [
            _Options(dsn, config or Settings(), (k, processes), fleet_clock,
                     tick_s, refresh_s, persist_s, log_setup)
            for k in range(processes)
        ]  # fmt: skip
        self._refresh_s = refresh_s
        self._max_in_flight = max(1, max_in_flight)
        self._workers: list[_Worker] = []
        self._devices: dict[str, int] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._own: Counter[str] = Counter()

    async def __aenter__(self) -> Self:
        self._devices = await asyncio.to_thread(self._load_devices)
        self._workers = [_Worker(o, self._max_in_flight, self._own) for o in self._options]
        await asyncio.gather(*(w.start() for w in self._workers))
        log.info(
            "rules: %d worker process(es), %d tracked devices",
            len(self._workers), len(self._devices),
        )  # fmt: skip
        self._refresher = asyncio.create_task(self._refresh_loop(), name="menara-tower-pool")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await asyncio.gather(*(w.stop() for w in self._workers))

    @property
    def queued(self) -> int:
        """Rounds sent to the workers and not yet evaluated (the back-pressure gauge)."""
        return sum(w.in_flight for w in self._workers)

    @property
    def counters(self) -> Counter[str]:
        total = Counter(self._own)
        for w in self._workers:
            total.update(w.counters)
        return total

    @property
    def rule_latency(self) -> Histogram:
        total = Histogram()
        for w in self._workers:
            total += w.rule_latency
        return total

    @property
    def fleet_time_s(self) -> float:
        return max((w.fleet_time_s for w in self._workers), default=0.0)

    async def feed(self, batches: Sequence[FixBatch]) -> None:
        """Send each batch to its vehicle's worker; waits while one has too much queued."""
        n = len(self._workers)
        routed: dict[int, list[FixBatch]] = {}
        for b in batches:
            vid = self._devices.get(b.device_id)
            if vid is None:
                self._own["fixes_untracked"] += len(b.fixes)
                continue
            routed.setdefault(vid % n, []).append(b)
        for k, group in routed.items():
            await self._workers[k].send("feed", _Round.pack(group))

    async def drain(self) -> None:
        """Wait until every round fed so far has been evaluated and applied."""
        await asyncio.gather(*(w.drain() for w in self._workers))

    async def tick(self) -> None:
        """Run the clock rules in every worker now, after what is queued there."""
        for w in self._workers:
            await w.send("tick", None)
        await self.drain()

    def _load_devices(self) -> dict[str, int]:
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            return device_vehicles(conn)

    async def _refresh_loop(self) -> None:
        """New trackers and the phones of newly dispatched drivers, as the workers'
        own plan refresh finds them."""
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                self._devices = await asyncio.to_thread(self._load_devices)
            except psycopg.Error:
                self._own["errors"] += 1
                log.exception("tower pool: reloading devices failed; keeping the old map")


class _Worker:
    """The parent's end of one worker process: a pipe, a sequence and its answers."""

    def __init__(self, options: _Options, max_in_flight: int, own: Counter[str]) -> None:
        self._options = options
        self._max = max_in_flight
        self._own = own
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._sent = self._done = 0
        self._changed = asyncio.Event()
        self._stopping = False
        self._restarting = False
        self._latest: Counter[str] = Counter()  # the running process's own counters
        self._earlier: Counter[str] = Counter()  # those of the processes before it
        self._latest_latency, self._earlier_latency = Histogram(), Histogram()  # likewise
        self.fleet_time_s = 0.0

    @property
    def counters(self) -> Counter[str]:
        return self._earlier + self._latest

    @property
    def rule_latency(self) -> Histogram:
        return self._earlier_latency + self._latest_latency

    @property
    def in_flight(self) -> int:
        return self._sent - self._done

    async def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        k = self._options.partition[0]
        proc = ctx.Process(target=_child, args=(child, self._options), name=f"menara-rules-{k}")
        proc.daemon = True
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        self._sent = self._done = 0
        ready = await asyncio.to_thread(parent.poll, _START_TIMEOUT_S)
        if not ready:
            proc.kill()
            raise RuntimeError(
                f"rule worker {k} did not start within {_START_TIMEOUT_S:.0f} s;"
                " see its log above (database reachable? schema upgraded?)"
            )
        try:
            self._answer(parent.recv())
        except EOFError:
            await asyncio.to_thread(proc.join, 10.0)
            raise RuntimeError(
                f"rule worker {k} exited while starting (exit code {proc.exitcode});"
                " see its log above"
            ) from None
        asyncio.get_running_loop().add_reader(parent.fileno(), self._readable)

    async def send(self, kind: str, payload: Any) -> None:
        """Waits while the worker has ``max_in_flight`` rounds or is being restarted."""
        await self._wait(lambda: self.in_flight < self._max)
        if self._conn is None:  # could not be restarted: the fixes are stored, not evaluated
            self._own["rounds_lost"] += 1
            return
        self._sent += 1
        try:
            self._conn.send((self._sent, kind, payload))
        except OSError:  # it died since it last answered
            self._died()

    async def drain(self) -> None:
        await self._wait(lambda: self._done >= self._sent)

    async def stop(self) -> None:
        self._stopping = True
        conn, proc = self._conn, self._proc
        if conn is None or proc is None:
            return
        asyncio.get_running_loop().remove_reader(conn.fileno())
        with contextlib.suppress(OSError):
            conn.send((self._sent + 1, "stop", None))
            while await asyncio.to_thread(conn.poll, _STOP_TIMEOUT_S):
                if self._answer(conn.recv()) == "stopped":
                    break
        await asyncio.to_thread(proc.join, 10.0)
        if proc.is_alive():
            proc.kill()
        conn.close()

    async def _wait(self, ready: Callable[[], bool]) -> None:
        while self._restarting or (self._conn is not None and not ready()):
            await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _answer(self, reply: tuple[str, int, dict[str, int], Histogram, float]) -> str:
        kind, seq, counters, latency, fleet_time_s = reply
        self._done = max(self._done, seq)
        self._latest = Counter(counters)
        self._latest_latency = latency
        self.fleet_time_s = max(self.fleet_time_s, fleet_time_s)
        return kind

    def _readable(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            while conn.poll():
                self._answer(conn.recv())
        except (EOFError, OSError):
            self._died()
        self._notify()

    def _died(self) -> None:
        conn = self._conn
        assert conn is not None
        asyncio.get_running_loop().remove_reader(conn.fileno())
        conn.close()
        self._conn = None
        if self._stopping:
            return
        k = self._options.partition[0]
        log.error("rule worker %d died; starting it again from the saved rule states", k)
        self._own["worker_restarts"] += 1
        self._own["rounds_lost"] += self.in_flight
        self._done = self._sent
        self._restarting = True
        task = asyncio.get_running_loop().create_task(self._restart())
        task.add_done_callback(self._restarted)

    def _restarted(self, task: asyncio.Task[None]) -> None:
        self._restarting = False
        if not task.cancelled() and task.exception() is not None:
            self._own["errors"] += 1
            log.error("rule worker %d could not be started again: %s; its vehicles' rules"
                      " stop until the service restarts", self._options.partition[0],
                      task.exception())  # fmt: skip
        self._notify()

    async def _restart(self) -> None:
        self._earlier += self._latest
        self._latest = Counter()
        self._earlier_latency += self._latest_latency
        self._latest_latency = Histogram()
        if self._proc is not None:
            await asyncio.to_thread(self._proc.join, 10.0)
        if not self._stopping:
            await self.start()


# -- in the worker process ------------------------------------------------------------


def _child(conn: Connection, options: _Options) -> None:
    options.log_setup()
    asyncio.run(_serve(conn, options))


async def _serve(conn: Connection, o: _Options) -> None:
    tower: Tower

    def fleet_clock() -> float:
        return tower.fleet_time_s

    clock = fleet_clock if o.fleet_clock else time.time
    tower = Tower(o.dsn, config=o.config, clock=clock, partition=o.partition,
                  tick_s=o.tick_s, refresh_s=o.refresh_s, persist_s=o.persist_s)  # fmt: skip

    def reply(kind: str, seq: int) -> None:
        conn.send((kind, seq, dict(tower.counters), tower.rule_latency, tower.fleet_time_s))

    async def answer_when_done(fed: int, seq: int) -> None:
        await tower.drained_to(fed)
        reply("done", seq)

    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[int, str, Any] | None] = asyncio.Queue()

    def readable() -> None:
        try:
            while conn.poll():
                inbox.put_nowait(conn.recv())
        except (EOFError, OSError):  # the parent is gone: finish what is queued and stop
            loop.remove_reader(conn.fileno())
            inbox.put_nowait(None)

    pending: set[asyncio.Task[None]] = set()
    seq = 0
    async with tower:
        # What start-up made (kernels, plans, zones, states) lives as long as the worker:
        # frozen out of the collector, whose full passes walked it all (90 ms at 1,000
        # vehicles) in the middle of rounds.
        gc.collect()
        gc.freeze()
        reply("ready", 0)
        loop.add_reader(conn.fileno(), readable)
        while (msg := await inbox.get()) is not None:
            seq, kind, payload = msg
            if kind == "stop":
                break
            if kind == "tick":
                await tower.drain()
                await tower.tick()
                reply("done", seq)
                continue
            task = asyncio.create_task(answer_when_done(await tower.feed(payload.unpack()), seq))
            pending.add(task)
            task.add_done_callback(pending.discard)
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(conn.fileno())
    await asyncio.gather(*pending)
    with contextlib.suppress(OSError):
        reply("stopped", seq)
