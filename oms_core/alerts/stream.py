"""The live alert feed: one ``LISTEN menara_alerts`` connection per process fanned out to
every control-room client, each through its own bounded queue.

A client that cannot keep up loses its OLDEST events (a live feed is about now; the
newest state matters most) and is told how many it lost, so it can re-read
``GET /alerts``. Notifications sent while the listener was reconnecting are read back
from the action log once it is back (``store.announced_since``, looking back
``REPLAY_LOOKBACK`` ids, since transactions commit out of id order) and published
unless already seen, so no client misses them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import deque
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from oms_core.alerts.store import ANNOUNCED, CHANNEL, REPLAY_SQL, replayed

__all__ = ["APPLICATION_NAME", "REPLAY_LOOKBACK", "Hub", "Subscription"]

log = logging.getLogger(__name__)
APPLICATION_NAME = "menara-alerts-listener"  # how operators find it in pg_stat_activity
REPLAY_LOOKBACK = 1000  # action ids before the newest seen that may still commit late
_REPLAY_MAX = 10_000  # events read back after one reconnect


class Subscription:
    """One client's view: a bounded queue of notification payloads matching its filter."""

    def __init__(self, depot_ids: Collection[int], types: Collection[str], queue_size: int) -> None:
        self.depot_ids, self.types = frozenset(depot_ids), frozenset(types)
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(queue_size)
        self.dropped = 0  # events discarded because this client fell behind

    def wants(self, alert: dict[str, Any]) -> bool:
        """True when the alert passes this client's depot and type filters."""
        return (not self.depot_ids or alert.get("depot_id") in self.depot_ids) and (
            not self.types or alert.get("type") in self.types
        )

    def offer(self, payload: str | None) -> None:
        """Queue ``payload`` (None ends the stream), dropping the oldest when full."""
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(payload)

    async def get(self) -> str | None:
        """The next payload, or None when the hub closed."""
        return await self._queue.get()


def _delays(initial_s: float, maximum_s: float) -> Iterator[float]:
    """Capped, jittered, doubling reconnect delays (``ingest.backoff``'s shape: the
    layering keeps ``oms_core`` from importing ``ingest``)."""
    d = initial_s
    while True:
        yield d * random.uniform(0.8, 1.2)
        d = min(d * 2, maximum_s)


class Hub:
    """The shared listener (``conninfo``: a DSN, or a function giving one, as a pool's
    is). ``run`` until cancelled; ``subscribe`` per client; ``close``
    ends every client's stream (on shutdown)."""

    def __init__(
        self,
        conninfo: str | Callable[[], str],
        *,
        queue_size: int = 256,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 10.0,
    ) -> None:
        self.conninfo, self.queue_size = conninfo, queue_size
        self.retry_initial_s, self.retry_max_s = retry_initial_s, retry_max_s
        self.listening = asyncio.Event()  # set while LISTEN is in place
        self.closed = False
        self.counters = {"notifications_in": 0, "events_out": 0, "queue_dropped": 0}
        self.counters["listener_reconnects"] = 0
        self.counters["replayed"] = 0
        self._subs: set[Subscription] = set()
        self._seen: deque[int] = deque(maxlen=4 * REPLAY_LOOKBACK)
        self._seen_set: set[int] = set()
        self._since: int | None = None  # the newest action id when first listening

    @contextmanager
    def subscribe(
        self, depot_ids: Collection[int] = (), types: Collection[str] = ()
    ) -> Iterator[Subscription]:
        """A subscription for the ``with`` block; empty filters mean every alert."""
        sub = Subscription(depot_ids, types, self.queue_size)
        if self.closed:
            sub.offer(None)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)
            self.counters["queue_dropped"] += sub.dropped

    def publish(self, payload: str) -> None:
        """Hand one notification to every subscription whose filter it passes."""
        self.counters["notifications_in"] += 1
        try:
            alert = json.loads(payload)
        except ValueError:
            log.warning("ignored a %s notification that is not JSON: %.200r", CHANNEL, payload)
            return
        if isinstance(alert, dict) and not self._first_time(alert.get("seq")):
            return  # read back after a reconnect and announced as well
        # Raw line breaks in JSON are only whitespace; one line cannot break SSE framing.
        payload = "".join(payload.splitlines())
        for sub in list(self._subs):
            if isinstance(alert, dict) and sub.wants(alert):
                sub.offer(payload)
                self.counters["events_out"] += 1

    def _first_time(self, seq: Any) -> bool:
        if not isinstance(seq, int):
            return True
        if seq in self._seen_set:
            return False
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(seq)
        self._seen_set.add(seq)
        return True

    def close(self) -> None:
        """End every stream; later subscriptions end at once."""
        self.closed = True
        for sub in list(self._subs):
            sub.offer(None)

    async def run(self) -> None:
        """LISTEN and publish until cancelled, reconnecting with backoff on loss."""
        delays = _delays(self.retry_initial_s, self.retry_max_s)
        while True:
            info = self.conninfo() if callable(self.conninfo) else self.conninfo
            try:
                async with await psycopg.AsyncConnection.connect(
                    info, autocommit=True, application_name=APPLICATION_NAME
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if self._since is None:  # the first time: from now on
                        cur = await conn.execute("SELECT coalesce(max(id), 0) FROM alert_actions")
                        self._since = int((await cur.fetchone() or (0,))[0])
                    else:  # a reconnect: what was announced meanwhile
                        newest = max(self._seen, default=self._since)
                        await self._replay(conn, max(self._since, newest) - REPLAY_LOOKBACK)
                    self.listening.set()
                    delays = _delays(self.retry_initial_s, self.retry_max_s)
                    async for note in conn.notifies():
                        self.publish(note.payload)
            except psycopg.Error as exc:
                log.warning("alert listener lost the database (%s); reconnecting", exc)
            finally:
                self.listening.clear()
            self.counters["listener_reconnects"] += 1
            await asyncio.sleep(next(delays))

    async def _replay(self, conn: psycopg.AsyncConnection[Any], after: int) -> None:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(REPLAY_SQL, (after, list(ANNOUNCED), _REPLAY_MAX))
            rows = await cur.fetchall()
        for row in rows:
            self.publish(replayed(row))
        self.counters["replayed"] += len(rows)
