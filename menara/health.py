"""Readiness of a Menara process: can it reach the database and the broker right now?

``/readyz`` on the metrics port asks this (``ingest.metrics``). The database is checked
by connecting and running ``SELECT 1`` within ``timeout_s``: a pool or the writer holding
an old connection would not notice that new ones fail. The broker is the MQTT client's
own connection state. Checks run one at a time and a result is reused for ``reuse_s``, so
a flood of probes opens at most one database connection at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Protocol

import psycopg

__all__ = ["Broker", "Readiness"]

DB_TIMEOUT_S = 2.0  # below the probes' own timeouts (the Dockerfile's is 5 s)
REUSE_S = 1.0  # a result younger than this answers the next probe


class Broker(Protocol):
    """An MQTT client whose connection state readiness reports."""

    @property
    def connected(self) -> bool: ...


class Readiness:
    """``await readiness()``: {dependency: what is wrong}, empty when ready."""

    def __init__(
        self,
        dsn: str,
        *,
        broker: Broker | None = None,
        broker_address: str = "",
        timeout_s: float = DB_TIMEOUT_S,
        reuse_s: float = REUSE_S,
    ) -> None:
        self._dsn = dsn
        self._broker = broker
        self._broker_address = broker_address
        self._timeout_s = timeout_s
        self._reuse_s = reuse_s
        self._lock = asyncio.Lock()
        self._db_problem: str | None = None
        self._checked_at = -float("inf")

    async def __call__(self) -> Mapping[str, str]:
        problems: dict[str, str] = {}
        db = await self._database()
        if db is not None:
            problems["database"] = db
        if self._broker is not None and not self._broker.connected:
            problems["mqtt"] = f"not connected to the broker at {self._broker_address}"
        return problems

    async def _database(self) -> str | None:
        async with self._lock:
            if time.monotonic() - self._checked_at >= self._reuse_s:
                self._db_problem = await self._check_database()
                self._checked_at = time.monotonic()
            return self._db_problem

    async def _check_database(self) -> str | None:
        try:
            async with asyncio.timeout(self._timeout_s):
                conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
                async with conn:
                    await conn.execute("SELECT 1")
        except TimeoutError:
            return f"unreachable: no answer within {self._timeout_s:g} s"
        except psycopg.Error as exc:
            lines = str(exc).strip().splitlines()
            return f"unreachable: {lines[0] if lines else type(exc).__name__}"[:300]
        return None
