"""The outbox worker: sends queued deliveries (alerts: signed webhooks and supervisor
email; customer notifications: email and SMS / WhatsApp gateway webhooks) and records
each outcome, retrying failures with capped, jittered exponential backoff.

How several workers share one outbox without sending a row twice: a worker *claims* up
to ``batch_size`` due rows in one statement (``FOR UPDATE SKIP LOCKED``) that also counts
the attempt and pushes ``next_attempt_at`` out by a lease longer than any send can take.
Another worker skips the locked rows and, once the claim commits, no longer sees them as
due. The outcome is written only while the row still carries the attempt number this
worker claimed, so a worker that outlived its lease cannot overwrite a newer attempt.
Delivery is therefore at least once: a worker killed mid-send leaves the row to be
claimed again when the lease ends (receivers de-duplicate on ``X-Menara-Delivery``).

Decisions, documented here once:
- 2xx delivers; any other status, a timeout or a connection error is a failed attempt.
  Redirects are not followed (a 3xx is a failure: register the final URL).
- A webhook whose host is, or now resolves to, a loopback, private, link-local,
  multicast or metadata address fails at once, saying so, unless ``allow_private``
  (``oms_core.alerts.destinations``: the connection goes to the addresses checked).
- 410 Gone deactivates the webhook and fails the row at once: the receiver said it
  will never want these again. Rows of an inactive webhook fail with that reason.
- ``smtp_port = 0`` (email off): email rows fail at once with last_error
  "email is off (smtp_port = 0)"; after turning email on, retry them through the API
  (``POST /deliveries/{id}/retry``).
- Failed rows are kept, with the last error, for the API and the dashboards.
- A customer notification (a row with ``order_id``) is written when it is sent, from
  the order as it is then (``oms_core.notify``); its email's Message-ID is derived from
  the row, so a resend can be recognised. News from before the order's outcome that is
  due only after it ("on its way" once delivered) fails at once, saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
import aiosmtplib
import psycopg
from aiohttp.abc import AbstractResolver
from psycopg.rows import dict_row

from oms_core.alerts import destinations, mail
from oms_core.alerts.outbox import CHANNEL
from oms_core.alerts.signing import sign, verify_signature
from oms_core.notify import facts, render, texts

__all__ = ["CHANNEL", "EMAIL_OFF", "Deliverer", "backoff_s", "verify_signature"]

log = logging.getLogger(__name__)
EMAIL_OFF = "email is off (smtp_port = 0)"
_ERROR_CHARS = 500  # of last_error
_EXCERPT_BYTES = 200  # of a failing receiver's response body
_MIN_WAIT_S = 0.01

_CLAIM = """
WITH due AS (
    SELECT id FROM deliveries
    WHERE state = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE deliveries d
    SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => %(lease)s)
    FROM due WHERE d.id = due.id
    RETURNING d.id, d.channel, d.event, d.email, d.payload, d.attempts, d.webhook_id,
              d.order_id
)
SELECT c.*, w.url, w.secret, w.active FROM claimed c
LEFT JOIN webhooks w ON w.id = c.webhook_id ORDER BY c.id
"""
_DELIVERED = """
UPDATE deliveries SET state = 'delivered', delivered_at = now(), last_error = ''
WHERE id = %(id)s AND state = 'pending' AND attempts = %(attempts)s
"""
_FAILED = """
UPDATE deliveries
SET state = CASE WHEN %(final)s THEN 'failed' ELSE 'pending' END, last_error = %(error)s,
    next_attempt_at = now() + make_interval(secs => %(delay)s)
WHERE id = %(id)s AND state = 'pending' AND attempts = %(attempts)s
"""
_DUE_IN = """
SELECT extract(epoch FROM min(next_attempt_at) - now())::float8
FROM deliveries WHERE state = 'pending'
"""


def backoff_s(
    attempts: int,
    base_s: float = 5.0,
    cap_s: float = 3600.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds before the next try after ``attempts`` failed ones:
    ``min(cap, base × 2^(attempts−1))`` with ±20 % jitter, so receivers that failed
    together are not retried in lockstep."""
    delay = min(cap_s, base_s * 2.0 ** max(0, attempts - 1))
    return delay * (0.8 + 0.4 * rand())


@dataclass(frozen=True, slots=True)
class _Failure:
    error: str
    final: bool = False  # no retry whatever the attempt count


class Deliverer:
    """Delivers the outbox until the ``async with`` block ends.

    ``async with Deliverer(dsn=...) as d:`` listens on ``CHANNEL`` for new rows and also
    polls every ``poll_s`` (a missed notification, or a retry coming due, is picked up
    at the latest then; the wait is shortened to the next row's due time). Run one per
    process; several on the same database never send a row twice (see module doc).
    Leaving the block lets the batch in flight finish and be recorded (at most
    2 × ``timeout_s``), then stops.
    ``counters`` counts ``claimed``, ``delivered``, ``retried`` (failed attempts that
    will be tried again), ``failed`` (given up) and ``errors`` (worker cycles that hit a
    database error and were retried after ``poll_s``).
    ``base_url`` is where customers reach Menara (their tracking links);
    ``eta_window_min`` how wide the arrival window they are promised is.
    ``allow_private`` lets webhooks reach non-public addresses; ``resolver`` is the DNS
    resolver webhook hosts are looked up with (default: aiohttp's).
    """

    def __init__(
        self,
        *,
        dsn: str = "postgresql://postgres@127.0.0.1:5432/menara",
        smtp_host: str = "127.0.0.1",
        smtp_port: int = 25,
        smtp_sender: str = "menara@localhost",
        timeout_s: float = 10.0,
        max_attempts: int = 8,
        backoff_base_s: float = 5.0,
        backoff_cap_s: float = 3600.0,
        poll_s: float = 5.0,
        batch_size: int = 10,
        public_url: str | None = None,
        base_url: str = "http://127.0.0.1:8080",
        eta_window_min: int = 60,
        allow_private: bool = False,
        resolver: AbstractResolver | None = None,
    ) -> None:
        if max_attempts < 1 or batch_size < 1 or timeout_s <= 0 or poll_s <= 0:
            raise ValueError(
                "max_attempts and batch_size must be ≥ 1, timeout_s and poll_s more than 0"
            )
        self.dsn, self.public_url = dsn, public_url
        self.base_url, self.eta_window_min = base_url.rstrip("/"), eta_window_min
        self.smtp_host, self.smtp_port, self.smtp_sender = smtp_host, smtp_port, smtp_sender
        self.timeout_s, self.max_attempts, self.poll_s = timeout_s, max_attempts, poll_s
        self.backoff_base_s, self.backoff_cap_s = backoff_base_s, backoff_cap_s
        self.batch_size = batch_size
        self.allow_private, self._dns = allow_private, resolver
        self._guard: destinations.GuardedResolver | None = None
        # A claim outlives any send of its batch (sends run concurrently, each bounded).
        self.lease_s = 2 * timeout_s + 30
        self.counters: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._listen_conn: psycopg.AsyncConnection[Any] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def __aenter__(self) -> Self:
        self._conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        self._listen_conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        await self._listen_conn.execute(f"LISTEN {CHANNEL}")  # before the first drain
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        if not self.allow_private:
            self._guard = destinations.GuardedResolver(self._dns)
        connector = aiohttp.TCPConnector(resolver=self._guard or self._dns)
        self._http = aiohttp.ClientSession(timeout=timeout, connector=connector)
        self._tasks = [
            asyncio.create_task(self._listen(), name="deliveries-listen"),
            asyncio.create_task(self._work(), name="deliveries-work"),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Let the batch in flight finish (each send is bounded by timeout_s) so its rows
        # are recorded rather than left claimed until their lease ends; then stop.
        self._stopping = True
        self._wake.set()
        await asyncio.wait(self._tasks[1:], timeout=2 * self.timeout_s)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        if self._guard is not None:
            await self._guard.close()
        for conn in (self._conn, self._listen_conn):
            if conn is not None:
                await conn.close()

    async def drain(self) -> int:
        """Deliver every row due now, batch by batch; returns how many were attempted."""
        total = 0
        while True:
            rows = await self._claim()
            total += len(rows)
            await asyncio.gather(*(self._deliver(row) for row in rows))
            if len(rows) < self.batch_size or self._stopping:
                return total

    async def _listen(self) -> None:
        assert self._listen_conn is not None
        try:
            async for _ in self._listen_conn.notifies():
                self._wake.set()
        except psycopg.Error as exc:
            log.warning("delivery notifications stopped (%s); polling every %s s", exc, self.poll_s)

    async def _work(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.drain()
                timeout = await self._until_due()
            except psycopg.Error as exc:
                self.counters["errors"] += 1
                log.warning("delivery cycle failed (%s); retrying in %s s", exc, self.poll_s)
                await self._reconnect()
                timeout = self.poll_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _reconnect(self) -> None:
        if self._conn is not None and not self._conn.broken and not self._conn.closed:
            return
        with contextlib.suppress(psycopg.Error):
            self._conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)

    async def _until_due(self) -> float:
        cur = await self._db().execute(_DUE_IN)
        row = await cur.fetchone()
        due_in = None if row is None else row[0]
        # A due row this worker could not claim is being claimed by another: look again
        # shortly rather than spinning.
        return self.poll_s if due_in is None else max(_MIN_WAIT_S, min(self.poll_s, due_in))

    def _db(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None:
            raise RuntimeError("use the Deliverer inside 'async with'")
        return self._conn

    async def _claim(self) -> list[dict[str, Any]]:
        async with self._db().cursor(row_factory=dict_row) as cur:
            await cur.execute(_CLAIM, {"n": self.batch_size, "lease": self.lease_s})
            rows = await cur.fetchall()
        self.counters["claimed"] += len(rows)
        return rows

    async def _deliver(self, row: Mapping[str, Any]) -> None:
        try:
            if row["order_id"] is not None:
                failure = await self._notify(row)
            elif row["channel"] == "webhook":
                failure = await self._post(row, row["payload"])
            else:
                failure = await self._email(row)
        except Exception as exc:  # a bug in one row must not stop the others
            log.exception("delivery %s failed unexpectedly", row["id"])
            failure = _Failure(f"internal error: {type(exc).__name__}: {exc}")
        await self._record(row, failure)

    async def _record(self, row: Mapping[str, Any], failure: _Failure | None) -> None:
        key = {"id": row["id"], "attempts": row["attempts"]}
        if failure is None:
            await self._db().execute(_DELIVERED, key)
            self.counters["delivered"] += 1
            return
        final = failure.final or row["attempts"] >= self.max_attempts
        attempts = int(row["attempts"])
        delay = 0.0 if final else backoff_s(attempts, self.backoff_base_s, self.backoff_cap_s)
        error = failure.error[:_ERROR_CHARS]
        await self._db().execute(_FAILED, {**key, "final": final, "error": error, "delay": delay})
        self.counters["failed" if final else "retried"] += 1
        log.info("delivery %s attempt %s failed: %s", row["id"], row["attempts"], error)

    async def _post(self, row: Mapping[str, Any], payload: Mapping[str, Any]) -> _Failure | None:
        if not row["active"]:
            return _Failure("the webhook is inactive", final=True)
        # Literal addresses never reach the resolver, which checks names.
        problem = destinations.host_problem(urlsplit(row["url"]).hostname or "")
        if problem is not None and not self.allow_private:
            return _Failure(destinations.refusal(problem), final=True)
        assert self._http is not None
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Menara-Webhooks/1",
            "X-Menara-Event": str(row["event"]),
            "X-Menara-Delivery": str(row["id"]),
            "X-Menara-Timestamp": str(timestamp),
            "X-Menara-Signature": sign(row["secret"], timestamp, body),
        }
        try:
            async with self._http.post(
                row["url"], data=body, headers=headers, allow_redirects=False
            ) as resp:
                if 200 <= resp.status < 300:
                    return None
                excerpt = (await resp.content.read(_EXCERPT_BYTES)).decode(errors="replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            cause = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else None
            if isinstance(cause, destinations.AddressRefused):
                return _Failure(str(cause), final=True)
            return _Failure(f"{type(exc).__name__}: {exc}".rstrip(": "))
        error = f"HTTP {resp.status}: {' '.join(excerpt.split())}".rstrip(": ")
        if resp.status == 410:
            await self._db().execute(
                "UPDATE webhooks SET active = false WHERE id = %s", (row["webhook_id"],)
            )
            return _Failure(f"{error} (the webhook was deactivated)", final=True)
        return _Failure(error)

    async def _email(self, row: Mapping[str, Any]) -> _Failure | None:
        if self.smtp_port == 0:
            return _Failure(EMAIL_OFF, final=True)
        payload = row["payload"]
        where = await mail.describe(self._db(), payload["alert"])
        message = mail.render(
            payload, where, sender=self.smtp_sender, to=row["email"], public_url=self.public_url
        )
        return await self._send(message)

    async def _notify(self, row: Mapping[str, Any]) -> _Failure | None:
        """A customer notification, written now from the order as it is."""
        if row["channel"] == "email" and self.smtp_port == 0:
            return _Failure(EMAIL_OFF, final=True)
        order = await facts.load(self._db(), int(row["order_id"]))
        if order is None:
            return _Failure(f"order {row['order_id']} no longer exists", final=True)
        event = str(row["payload"]["event"])
        if texts.stale(order, event):
            return _Failure(
                f"not sent: order {order.tracking_number} is already {order.state},"
                f" so this {event} message would mislead",
                final=True,
            )
        message = texts.compose(
            order, row["payload"], base_url=self.base_url, eta_window_min=self.eta_window_min
        )
        if row["channel"] == "webhook":
            body = render.gateway_body(message, row["payload"], order.tracking_number)
            return await self._post(row, body)
        sent = render.email(
            message, sender=self.smtp_sender, to=row["email"], delivery_id=int(row["id"])
        )
        return await self._send(sent)

    async def _send(self, message: EmailMessage) -> _Failure | None:
        try:
            await aiosmtplib.send(
                message, hostname=self.smtp_host, port=self.smtp_port, timeout=self.timeout_s
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return _Failure(f"SMTP {type(exc).__name__}: {exc}")
        return None
