"""``menara rules``: the rule host, fed with committed rounds over MQTT.

Ingest processes with ``tower_feed = mqtt`` publish each committed round on
``rules_topic`` (``menara.rules_feed``); this process reads them from a persistent
session (the broker queues rounds while it is away), runs the rules in
``tower_processes`` worker processes partitioned by vehicle (in this process when 0),
and delivers alerts from the outbox. Run one: a second would evaluate every vehicle
again (the topic is not a shared subscription on purpose).

Order across ingest processes: the broker spreads a vehicle's messages over the ingest
processes of a shared subscription, so its fixes come back in rounds from several
processes, and a later fix may arrive first. Each round is held ``rules_reorder_ms``
before it goes to the rules; when it goes, every fix of the same vehicle up to its
newest fix goes with it, from rounds still held too, and the rules sort a round by fix
time. A fix that arrives more than ``rules_reorder_ms`` after a later fix of its vehicle
is still out of order (the rules count it as a telemetry issue, and skip it).

A message is acknowledged once its fixes are handed to the rule workers; after a crash
the broker sends the unacknowledged ones again. Stopping (SIGTERM) stops reading, hands
on everything held, acknowledges it, and lets the workers evaluate what they were given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from prometheus_client.core import Metric

from ingest import metrics
from ingest.counters import Counters
from ingest.model import Batch
from ingest.mqtt import Connect, NetworkThread, Received
from menara import db
from menara.rules_feed import RoundBatch, RoundError, check_topic, decode
from menara.service import make_deliverer, make_tower
from menara.service_metrics import start_metrics, tower_families
from menara.settings import Settings
from tower.pool import TowerPool
from tower.worker import FixBatch, Tower

__all__ = ["Reorder", "host", "run_blocking"]

log = logging.getLogger(__name__)

# Unacknowledged round messages the broker may send us (each up to 192 kB, held at least
# rules_reorder_ms): ingest's 20,000 device messages of ~100 bytes would be gigabytes
# here. A thousand is ~25 s of rounds from two busy ingest processes.
RECEIVE_MAXIMUM = 1000


@dataclass(slots=True)
class _Held:
    """One message's batches, from its arrival until the rules have them."""

    arrival: float  # monotonic
    batches: list[RoundBatch]
    ack: Callable[[], None] | None


class Reorder:
    """Holds rounds ``hold_s`` and hands them to ``feed`` in time order per vehicle
    (module docstring): the sink ``NetworkThread`` puts a message's batches into, a
    fixless batch ending each message. An async context manager running the release."""

    def __init__(
        self,
        feed: Callable[[Sequence[FixBatch]], Awaitable[object]],
        *,
        hold_s: float,
        counters: Counters,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._feed = feed
        self._clock = clock
        self._hold_s = hold_s
        self._counters = counters
        self._held: list[_Held] = []
        self._message: list[RoundBatch] = []
        self._wake = asyncio.Event()
        self._releasing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="menara-rules-reorder")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.drain()

    @property
    def held_fixes(self) -> int:
        return sum(len(b.fixes) for h in self._held for b in h.batches)

    async def put(self, batch: Batch) -> None:
        if len(batch.fixes):
            self._message.append(RoundBatch(batch.device_id, batch.fixes, batch.received_us))
            return
        self._held.append(_Held(self._clock(), self._message, batch.on_commit))
        self._message = []
        self._wake.set()

    async def wait(self) -> None:
        """Block while releasing works; raise the error that stopped it (the rules')."""
        assert self._task is not None
        await asyncio.shield(self._task)

    async def drain(self) -> None:
        """Hand on everything held now, without waiting out the hold."""
        await self._release(self._clock())

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            if not self._held:
                await self._wake.wait()
                continue
            due = self._held[0].arrival + self._hold_s
            if (wait := due - self._clock()) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            await self._release(self._clock() - self._hold_s)

    async def _release(self, cutoff: float) -> None:
        """Hand on the messages that arrived by ``cutoff`` and, of those still held,
        every fix no newer than the newest released fix of its device."""
        async with self._releasing:
            n = next((i for i, h in enumerate(self._held) if h.arrival > cutoff), len(self._held))
            if n == 0:
                return
            due, self._held = self._held[:n], self._held[n:]
            out = [b for h in due for b in h.batches]
            newest: dict[str, int] = {}
            for b in out:
                t = int(b.fixes["fix_time_us"].max())
                newest[b.device_id] = max(newest.get(b.device_id, t), t)
            early = 0
            for h in self._held:
                kept = []
                for b in h.batches:
                    mark = newest.get(b.device_id)
                    now = None if mark is None else b.fixes["fix_time_us"] <= mark
                    if now is None or not now.any():
                        kept.append(b)
                        continue
                    out.append(b._replace(fixes=b.fixes[now]))
                    early += int(now.sum())
                    if not now.all():
                        kept.append(b._replace(fixes=b.fixes[~now]))
                h.batches = kept
            if out:
                await self._feed(out)
            for h in due:
                if h.ack is not None:
                    h.ack()
            self._counters.inc("rules_messages_released", len(due))
            self._counters.inc("rules_fixes_released", sum(len(b.fixes) for b in out))
            self._counters.inc("rules_fixes_reordered", early)


def to_batches(
    inbox: list[Received], ack: Callable[[list[int]], Callable[[], None]], counters: Counters
) -> list[Batch]:
    """Messages as ``Reorder`` takes them: each one's batches, then a fixless batch
    carrying its acknowledgement. A message that is not a round is acknowledged and
    counted (it could never be read)."""
    out: list[Batch] = []
    for topic, payload, mid, qos in inbox:
        counters.inc("rules_messages_in")
        try:
            batches = decode(payload)
        except RoundError as exc:
            counters.inc("rules_messages_refused")
            log.warning("refused a message on %s: %s", topic, exc)
            batches = []
        for b in batches:
            if len(b.fixes):
                out.append(Batch(b.device_id, "rules", "round", b.fixes, received_us=b.received_us))
        end = ack([mid]) if qos else None
        out.append(Batch("", "rules", "round", on_commit=end))
    return out


async def host(settings: Settings, *, counters: Counters, stop: asyncio.Event) -> None:
    """Run the rule host until ``stop`` is set."""
    check_topic(settings)
    await asyncio.to_thread(db.ready, settings)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(make_deliverer(settings))
        tower = make_tower(settings)
        await stack.enter_async_context(tower)
        reorder = await stack.enter_async_context(
            Reorder(tower.feed, hold_s=settings.rules_reorder_ms / 1000, counters=counters)
        )
        s = settings
        connect = Connect(
            host=s.mqtt_host,
            port=s.mqtt_port,
            client_id=s.rules_client_id,
            username=s.mqtt_username,
            password=s.mqtt_password,
            topics=(s.rules_topic,),
            qos=1,
            receive_maximum=min(s.mqtt_receive_maximum, RECEIVE_MAXIMUM),
            session_expiry_s=s.mqtt_session_expiry_s,
        )
        net: NetworkThread

        def batches(inbox: list[Received]) -> list[Batch]:
            return to_batches(inbox, net.on_commit, counters)

        net = NetworkThread(connect, writer=reorder, counters=counters, to_batches=batches)
        net.start()
        stack.push_async_callback(net.close)

        async def announce() -> None:
            await net.subscribed()
            log.info("rules: reading rounds from %s", s.rules_topic)

        subscribed = asyncio.create_task(announce())
        await start_metrics(
            stack, s, counters, lambda: _families(tower, reorder, subscribed.done()), broker=net
        )
        watched = [
            asyncio.create_task(stop.wait()),
            asyncio.create_task(net.wait()),
            asyncio.create_task(reorder.wait()),
        ]
        try:
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for task in watched:
                if task.done() and task.exception() is not None:
                    raise RuntimeError("the rule host failed") from task.exception()
            log.info("stopping: handing what is held to the rules")
            await net.stop_reading()
            await reorder.drain()
        finally:
            for task in (subscribed, *watched):
                task.cancel()
            await asyncio.gather(subscribed, *watched, return_exceptions=True)
    log.info("stopped")


def _families(tower: Tower | TowerPool, reorder: Reorder, subscribed: bool) -> Iterator[Metric]:
    """What /metrics shows besides the counters, read at scrape time."""
    yield metrics.gauge(
        "rules_subscribed", "1 once subscribed to rules_topic.", [({}, float(subscribed))]
    )
    yield metrics.gauge(
        "rules_held_fixes",
        "Fixes held to be evaluated in time order (rules_reorder_ms).",
        [({}, reorder.held_fixes)],
    )
    yield from tower_families(tower)


def run_blocking(settings: Settings, counters: Counters) -> int:
    """``menara rules``: run until SIGINT/SIGTERM, then stop cleanly; the exit code."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await host(settings, counters=counters, stop=stop)

    try:
        asyncio.run(main())
    except (db.DatabaseError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    except Exception:
        log.exception("rule host failed")
        return 1
    return 0
