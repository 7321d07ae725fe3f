"""A driver's phone posting fixes the way OsmAnd and Traccar Client do.

Each fix is one HTTP request: even-numbered vehicles send OsmAnd's query string, odd ones
the JSON body of background-geolocation apps. The server answers 200 only after the fix
is stored, so a fix counts as sent on a 200; a refused connection, a timeout or a 5xx is
retried with backoff until the run's time is up, as a phone keeps its queue. A 4xx
means the server will never take that request, so it is counted and not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterator
from datetime import datetime

import aiohttp

from ingest.backoff import delays
from simulators import osmand_out
from simulators.model import FleetConfig, TransportStats
from simulators.vehicle import SimFix

_TIMEOUT = aiohttp.ClientTimeout(total=30.0)


def encode(fix: SimFix, json_body: bool) -> bytes:
    """The request for one fix: a query string or a JSON body."""
    kwargs = {
        "time": fix.fix_time,
        "lat": fix.lat,
        "lon": fix.lon,
        "speed_kmh": fix.speed_kmh,
        "bearing": fix.course_deg,
        "altitude_m": fix.altitude_m,
        "accuracy_m": round(fix.hdop * 5.0, 1),
        "batt_pct": 87.0,
    }
    if json_body:
        return osmand_out.json_body(fix.device_id, **kwargs)  # type: ignore[arg-type]
    return osmand_out.query(fix.device_id, **kwargs).encode()  # type: ignore[arg-type]


def junk(rng: random.Random, fix: SimFix) -> bytes:
    """A request the server must refuse with 400: a position without a latitude."""
    return f"id={fix.device_id}&lon={fix.lon}&timestamp={rng.randint(1, 9)}".encode()


class HttpLink:
    """One phone; ``session`` is shared by every phone of the run."""

    def __init__(
        self,
        cfg: FleetConfig,
        stats: TransportStats,
        sent: set[tuple[str, datetime]],
        session: aiohttp.ClientSession,
        *,
        give_up_at: float,
        stop: asyncio.Event,
    ) -> None:
        self._url = f"http://{cfg.tcp_host}:{cfg.port_for('osmand')}/"
        self._stats = stats
        self._sent = sent
        self._session = session
        self._give_up_at = give_up_at
        self._stop = stop
        self._backoff: Iterator[float] = delays()

    async def _post(self, payload: bytes) -> int | None:
        """POST until the server answers other than 5xx; its status, or None: give up."""
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            json_body = payload.startswith(b"{")
            try:
                async with self._session.post(
                    self._url if json_body else f"{self._url}?{payload.decode()}",
                    data=payload if json_body else None,
                    headers={"Content-Type": "application/json"} if json_body else None,
                    timeout=_TIMEOUT,
                ) as resp:
                    await resp.read()
                    if resp.status < 500:
                        self._backoff = delays()
                        return resp.status
            except (aiohttp.ClientError, TimeoutError):
                pass
            self._stats.connect_failures += 1
            wait = min(next(self._backoff), self._give_up_at - loop.time())
            if wait <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
        return None

    async def send_fix(self, payload: bytes, key: tuple[str, datetime]) -> bool:
        status = await self._post(payload)
        if status is None:
            return False
        if status == 200:
            self._stats.fixes_sent += 1
            self._sent.add(key)
        else:
            self._stats.publish_failures += 1
        return True

    async def send_duplicate(self, payload: bytes) -> bool:
        ok = await self._post(payload) is not None
        self._stats.duplicates_sent += ok
        return ok

    async def send_garbage(self, line: bytes) -> bool:
        ok = await self._post(line) is not None
        self._stats.garbage_sent += ok
        return ok

    async def drop(self) -> bool:
        """Phones have no connection of their own to lose: nothing to do."""
        return not self._stop.is_set()
