"""Transactions that met a concurrent change run again.

A driver's action and the control tower's round can lock the same stops and orders in
opposite orders; PostgreSQL then rolls one back (a deadlock, or a serialization
failure). The loser's work is still right, so it is simply run again, a few times.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import psycopg

__all__ = ["CONFLICTS", "on_conflict"]

T = TypeVar("T")
CONFLICTS = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


def on_conflict(fn: Callable[[], T], *, attempts: int, retried: Callable[[], None]) -> T:
    """``fn()`` (one whole transaction), run again after a conflict, at most ``attempts``
    times in all; ``retried`` is called before each new run. The last conflict is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except CONFLICTS:
            if attempt == attempts:
                raise
            retried()
    raise AssertionError("attempts must be at least 1")
