"""Rule states written to ``rule_state`` on a thread and connection of their own.

The worker takes a snapshot of its vehicles' states every ``persist_s`` and hands it
here; the rounds go on while it is written (at 1,000 vehicles the write held every round
up for 250–400 ms, the alert latency's slowest tail). A snapshot still waiting when the
next one comes is merged into it, the newer state of a vehicle winning. Every row
carries the time its state was taken, and a row never replaces one taken later (the
worker also saves a vehicle's state inside the transaction that applies its incident,
and that one must not be overwritten by an older snapshot written after it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import psycopg
from psycopg.types.json import Jsonb

__all__ = ["SavedState", "StateSaver", "save"]

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]

# a state taken earlier than the stored one is left alone (see the module docstring)
_SAVE = (
    "INSERT INTO rule_state (vehicle_id, trip_id, state, last_fix_at, updated_at)"
    " VALUES (%s, %s, %s, to_timestamp(%s), to_timestamp(%s)) ON CONFLICT (vehicle_id)"
    " DO UPDATE SET trip_id = excluded.trip_id, state = excluded.state,"
    " last_fix_at = excluded.last_fix_at, updated_at = excluded.updated_at"
    " WHERE rule_state.updated_at <= excluded.updated_at"
)


class SavedState(NamedTuple):
    vehicle_id: int
    trip_id: int | None
    state: dict[str, Any]
    last_fix_s: float | None
    taken_s: float  # wall clock when the state was taken


def save(conn: Conn, rows: Sequence[SavedState]) -> None:
    """Upsert ``rows`` in one pipelined statement (one round trip, not one per vehicle)."""
    if not rows:
        return
    params = [(r.vehicle_id, r.trip_id, Jsonb(r.state), r.last_fix_s, r.taken_s) for r in rows]
    with conn.cursor() as cur:
        cur.executemany(_SAVE, params)


class StateSaver:
    """A daemon thread writing snapshots; ``flush`` waits until all handed over are written.

    A failed write is logged and counted, and its rows are kept for the next snapshot
    (unless that one brings newer states of the same vehicles)."""

    def __init__(self, connect: Callable[[], Conn], counters: Any) -> None:
        self._connect = connect
        self._counters = counters
        self._conn: Conn | None = None
        self._pending: dict[int, SavedState] = {}
        self._busy = False
        self._closed = False
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="menara-rule-state", daemon=True)
        self._thread.start()

    def submit(self, rows: Sequence[SavedState]) -> None:
        with self._cv:
            for r in rows:
                old = self._pending.get(r.vehicle_id)
                if old is None or old.taken_s <= r.taken_s:
                    self._pending[r.vehicle_id] = r
            self._cv.notify_all()

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until nothing is pending or being written; False if that took too long."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cv.wait(left)
        return True

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(10.0)
        if self._conn is not None and not self._conn.closed:
            self._conn.close()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closed:
                    self._cv.wait()
                if not self._pending:
                    return
                rows, self._pending, self._busy = self._pending, {}, True
            try:
                self._write(list(rows.values()))
            except Exception:
                self._counters["errors"] += 1
                if self._closed:  # the worker's own last save follows; nothing waits for this
                    log.exception("saving %d rule states failed while closing", len(rows))
                    with self._cv:
                        self._busy = False
                        self._pending.clear()
                        self._cv.notify_all()
                    return
                log.exception("saving %d rule states failed; kept for the next try", len(rows))
                with self._cv:
                    for vid, r in rows.items():
                        self._pending.setdefault(vid, r)
                    self._busy = False
                    self._cv.notify_all()
                    self._cv.wait(1.0)  # the database is away: do not spin
                continue
            with self._cv:
                self._busy = False
                self._cv.notify_all()

    def _write(self, rows: list[SavedState]) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        with self._conn.transaction():
            save(self._conn, sorted(rows))
