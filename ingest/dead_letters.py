"""Dead letters kept as samples, not as a copy of every flood, and deleted when old.

Every reject is counted where it is made (``rejects{protocol,code}``), always. What is
stored is capped here, in the writer's ``put`` that TCP, UDP, MQTT and HTTP all go
through: per ``window_s`` at most ``per_peer`` letters from one remote address (its port
left out: one peer, many connections), ``per_device`` naming one device and ``total`` in
all (a UDP source address can be forged), each ``raw`` cut to ``max_bytes``. Letters
beyond a cap are dropped and counted as ``dead_letters_dropped{reason}``. Junk from
unauthenticated peers filled 217 MB of raw bytes before; now a window holds at most
``total × max_bytes`` of it. The windows are fixed (all counts start again together),
so the table of counts never holds more than ``2 × total`` keys.

``retention_loop`` deletes letters older than the retention in batches: ``dead_letters``
is a plain table on TimescaleDB too, so there is no retention policy to lean on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from ingest.counters import Counters
from ingest.model import Batch, DeadLetter

__all__ = ["LetterCap", "LetterLimits", "prune", "retention_loop"]

log = logging.getLogger(__name__)

PRUNE_BATCH = 10_000  # rows per DELETE: short transactions, no long lock on the table
PRUNE_EVERY_S = 3600.0

_PRUNE = """
DELETE FROM dead_letters WHERE id IN (
  SELECT id FROM dead_letters WHERE received_time < now() - %s * interval '1 day'
  ORDER BY received_time LIMIT %s)"""


@dataclass(frozen=True, slots=True)
class LetterLimits:
    """Dead letters stored per ``window_s``: from one address, naming one device, in all
    (0: no cap); each ``raw`` cut to ``max_bytes``."""

    per_peer: int
    per_device: int
    total: int
    window_s: float
    max_bytes: int


def peer_address(peer: str) -> str:
    """The address part of ``host:port`` / ``[v6]:port``; other peers (MQTT topics,
    ``driver-app``) are their own key."""
    host, sep, port = peer.rpartition(":")
    if not sep or not port.isdigit():
        return peer
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


class LetterCap:
    """Which dead letters of a batch to store; call from one thread (the writer's loop)."""

    def __init__(
        self,
        limits: LetterLimits,
        *,
        counters: Counters,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._counters = counters
        self._clock = clock
        self._window = clock()
        self._kept: dict[tuple[str, str], int] = {}  # ("peer" | "device", key) -> stored
        self._total = 0

    def admit(self, batch: Batch) -> Batch:
        """``batch`` with only the dead letters within the caps, truncated."""
        if not batch.dead_letters:
            return batch
        now = self._clock()
        if now - self._window >= self.limits.window_s:
            self._window, self._kept, self._total = now, {}, 0
        kept = tuple(k for k in map(self._admit_one, batch.dead_letters) if k is not None)
        return dataclasses.replace(batch, dead_letters=kept)

    def _admit_one(self, letter: DeadLetter) -> DeadLetter | None:
        lim = self.limits
        keys = []
        if letter.peer:
            keys.append((("peer", peer_address(letter.peer)), lim.per_peer, "per_peer"))
        if letter.device_id:
            keys.append((("device", letter.device_id), lim.per_device, "per_device"))
        reason = "total" if lim.total and self._total >= lim.total else None
        for key, cap, why in keys:
            if reason is None and cap and self._kept.get(key, 0) >= cap:
                reason = why
        if reason is not None:
            self._counters.inc("dead_letters_dropped", reason=reason)
            return None
        self._total += 1
        for key, _, _ in keys:
            self._kept[key] = self._kept.get(key, 0) + 1
        if lim.max_bytes and len(letter.raw) > lim.max_bytes:
            self._counters.inc("dead_letters_truncated")
            detail = f"{letter.detail} (first {lim.max_bytes} of {len(letter.raw)} bytes kept)"
            return dataclasses.replace(letter, raw=letter.raw[: lim.max_bytes], detail=detail)
        return letter


async def prune(conn: psycopg.AsyncConnection[tuple[object, ...]], days: float) -> int:
    """Delete dead letters received more than ``days`` ago, ``PRUNE_BATCH`` rows per
    statement (``conn`` in autocommit); how many were deleted."""
    deleted = 0
    while True:
        cur = await conn.execute(_PRUNE, (days, PRUNE_BATCH))
        deleted += cur.rowcount
        if cur.rowcount < PRUNE_BATCH:
            return deleted


async def retention_loop(dsn: str, days: float, every_s: float = PRUNE_EVERY_S) -> None:
    """Prune at once and then every ``every_s`` until cancelled; a lost database is
    logged and tried again after another interval."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                while True:
                    deleted = await prune(conn, days)
                    if deleted:
                        log.info("deleted %d dead letters older than %g days", deleted, days)
                    await asyncio.sleep(every_s)
        except psycopg.Error as exc:
            log.warning("pruning dead letters failed (%s); trying again in %.0f s", exc, every_s)
            await asyncio.sleep(every_s)
