"""The batch writer: fixes and dead letters into PostgreSQL, acknowledged after commit.

Transports ``put`` batches; one flush task gathers them up to ``batch_rows`` or
``batch_delay_ms`` and writes them in one transaction (binary COPY into staging, then
an insert into ``positions`` that stores a resent fix once), on a worker thread with a
connection of its own, so the loop serving the devices never paces its round trips.
Each batch's ``on_commit`` runs only after COMMIT, so a sender is never acknowledged
for data that could still be lost. Then ``on_committed`` hands the committed fixes to
the next stage (the control tower's rules); it is awaited, so a stage that falls
behind pushes back. The queue is bounded by ``max_pending`` rows and pushes back,
never drops.
A lost connection is retried with the same batches after a backoff; content the
database refuses twice is kept as ``db_rejected`` dead letters so that it cannot
block the stream. If the connection drops during COMMIT itself the outcome is
unknown and the retry may store that flush's dead letters twice (fixes never).
Dead letters pass ``letters`` (``ingest.dead_letters``) on the way in: what a flood
sends is counted, and only samples of it are stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, NamedTuple, Self, TypeVar

import psycopg

from ingest import _copy, backoff
from ingest.counters import Counters
from ingest.dead_letters import LetterCap
from ingest.errors import StorageError
from ingest.model import Batch, DeadLetter

__all__ = ["Writer"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# Errors that say "this content", not "this connection": retrying them as-is is futile.
# Refused content: retrying the same rows cannot help. ProgramLimitExceeded (class 54,
# e.g. "index row size exceeds maximum") is an OperationalError, yet a property of the row.
_DATA_ERRORS = (
    psycopg.DataError,
    psycopg.IntegrityError,
    psycopg.errors.ProgramLimitExceeded,
    TypeError,
    ValueError,
)


class _Item(NamedTuple):
    seq: int
    enqueued: float  # loop time
    batch: Batch
    rows: int


class Writer:
    """Async context manager owning one connection and the flush task."""

    def __init__(
        self,
        dsn: str,
        *,
        counters: Counters,
        batch_rows: int = 5000,
        batch_delay_ms: int = 50,
        max_pending: int = 100_000,
        on_registered: Callable[[str, str], None] | None = None,
        on_committed: Callable[[Sequence[Batch]], Awaitable[object]] | None = None,
        letters: LetterCap | None = None,
    ) -> None:
        self._dsn = dsn
        self._letters = letters  # which dead letters to store; None: all
        self._counters = counters
        self._batch_rows = max(1, batch_rows)
        self._delay_s = batch_delay_ms / 1000
        self._max_pending = max(1, max_pending)
        self._on_registered = on_registered
        self._on_committed = on_committed
        self._queue: deque[_Item] = deque()
        self._queued_rows = 0
        self._pending_rows = 0
        self._accepted = 0  # seq of the last batch accepted
        self._committed = 0  # every seq up to this one is committed and acknowledged
        self._closing = False
        self._conn: _copy.Conn | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="menara-writer")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        try:
            self._conn = await self._off_loop(self._connect)
        except psycopg.Error as exc:
            self._thread.shutdown(wait=False)
            raise StorageError(f"writer cannot connect to the database: {exc}") from exc
        self._task = asyncio.create_task(self._run(), name="menara-writer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Flush everything pending, then close the connection."""
        self._closing = True
        self._wake.set()
        try:
            if self._task is not None:
                await self._task
        finally:
            if self._conn is not None:
                await self._off_loop(self._conn.close)
            self._thread.shutdown(wait=False)

    @property
    def pending_rows(self) -> int:
        """Rows accepted by ``put`` and not yet committed."""
        return self._pending_rows

    @property
    def backend_pid(self) -> int | None:
        """The server process of the current connection (tests kill it)."""
        return self._conn.info.backend_pid if self._conn is not None else None

    async def put(self, batch: Batch) -> None:
        """Enqueue ``batch``; waits while ``max_pending`` rows are uncommitted."""
        await self._put_many((batch,))

    def put_threadsafe(self, batches: Iterable[Batch], timeout: float | None = None) -> None:
        """``put`` from another thread (paho's), blocking it until the batches are accepted.

        On ``TimeoutError`` the batches may still be accepted a moment later; inserts are
        idempotent, so the caller may resend them.
        """
        loop = self._loop
        if loop is None:
            raise StorageError("writer is not running")
        try:
            in_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            in_loop = False
        if in_loop:
            raise RuntimeError("put_threadsafe() called from the writer's loop: await put()")
        fut = asyncio.run_coroutine_threadsafe(self._put_many(tuple(batches)), loop)
        try:
            fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise

    async def drain(self) -> None:
        """Wait until every batch put so far is committed and acknowledged."""
        target = self._accepted
        async with self._changed:
            await self._changed.wait_for(lambda: self._committed >= target or self._dead())
        if self._committed < target:
            self._raise_dead()

    def _dead(self) -> bool:
        return self._task is None or self._task.done()

    def _raise_dead(self) -> None:
        exc = self._task.exception() if self._task and self._task.done() else None
        raise StorageError("writer is not running") from exc

    async def _put_many(self, batches: Sequence[Batch]) -> None:
        if self._closing or self._dead():
            self._raise_dead()
        if self._pending_rows >= self._max_pending:
            async with self._changed:
                await self._changed.wait_for(
                    lambda: self._pending_rows < self._max_pending or self._dead()
                )
            if self._dead():
                self._raise_dead()
        assert self._loop is not None
        now = self._loop.time()
        was_empty = not self._queue
        for batch in batches:
            if self._letters is not None and batch.dead_letters:
                batch = self._letters.admit(batch)
                if not batch.rows and batch.on_commit is None and not batch.register_device:
                    continue  # only dropped dead letters: nothing to write or acknowledge
            rows = len(batch.fixes) + len(batch.dead_letters)
            self._accepted += 1
            self._queue.append(_Item(self._accepted, now, batch, rows))
            self._queued_rows += rows
            self._pending_rows += rows
        if was_empty or self._queued_rows >= self._batch_rows:
            self._wake.set()

    # -- the flush task ------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while await self._gather():
                items = self._take()
                batches = [it.batch for it in items]
                await self._commit(batches)
                self._acknowledge(batches)
                await self._hand_on(batches)
                self._pending_rows -= sum(it.rows for it in items)
                self._committed = items[-1].seq
                async with self._changed:
                    self._changed.notify_all()
        finally:  # wake put()/drain() waiters so they see a dead writer instead of hanging
            async with self._changed:
                self._changed.notify_all()

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the writer's own thread: not the loop's default executor, where
        the API's database calls could queue ahead of a commit that devices wait for."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def _gather(self) -> bool:
        """Wait for a full batch or the oldest item's deadline; False once closed and empty."""
        while not self._queue:
            if self._closing:
                return False
            self._wake.clear()
            await self._wake.wait()
        deadline = self._queue[0].enqueued + self._delay_s
        while self._queued_rows < self._batch_rows and not self._closing:
            self._wake.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._wake.wait()
            except TimeoutError:
                break
        return True

    def _take(self) -> list[_Item]:
        items: list[_Item] = []
        rows = 0
        while self._queue and (not items or rows + self._queue[0].rows <= self._batch_rows):
            item = self._queue.popleft()
            items.append(item)
            rows += item.rows
        self._queued_rows -= rows
        return items

    async def _commit(self, batches: list[Batch]) -> None:
        """Commit ``batches``; on refused content, commit them one by one instead."""
        if await self._attempt(batches) is None:
            return
        for i, batch in enumerate(batches):
            err = await self._attempt([batch])
            if err is not None:
                log.error("database refused a batch of %s: %s", batch.device_id, err)
                self._counters.inc(
                    "rejects", len(batch.fixes), protocol=batch.protocol, code="db_rejected"
                )
                batches[i] = batch = _rejected(batch, err)
                err = await self._attempt([batch])
                if err is not None:
                    raise StorageError("even the db_rejected dead letter was refused") from err

    async def _attempt(self, batches: Sequence[Batch]) -> Exception | None:
        """Write in one transaction; retry connection trouble forever, return a data error."""
        delays = backoff.delays()
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await self._off_loop(self._connect)
                written = await self._off_loop(_copy.write, self._conn, batches)
                self._count(batches, written)
                return None
            except _DATA_ERRORS as exc:
                self._counters.inc("writer_errors", kind="data")
                await self._off_loop(self._rollback)
                return exc
            except (psycopg.Error, OSError) as exc:
                self._counters.inc("writer_errors", kind="connection")
                self._counters.inc("writer_retries")
                log.warning("database write failed, retrying the same batches: %s", exc)
                await self._off_loop(self._rollback)
                await asyncio.sleep(next(delays))

    def _rollback(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            return
        try:
            conn.rollback()
            self._conn = conn
        except psycopg.Error:
            conn.close()

    def _connect(self) -> _copy.Conn:
        conn = psycopg.connect(self._dsn)
        for ddl in _copy.STAGING_DDL:
            conn.execute(ddl)
        conn.commit()
        return conn

    def _count(self, batches: Sequence[Batch], written: _copy.Written) -> None:
        """Count a committed write and announce its new devices, on the loop."""
        outcome, letters, bound = written
        sent = Counter[str]()
        for b in batches:
            if len(b.fixes):
                sent[b.transport] += len(b.fixes)
        for transport, n in sent.items():
            done, merged = outcome[transport, True], outcome[transport, False]
            self._counters.inc("rows_written", done, transport=transport)
            self._counters.inc("rows_merged", merged, transport=transport)
            self._counters.inc("rows_duplicate", n - done - merged, transport=transport)
        self._counters.inc("dead_letters_written", letters)
        self._counters.inc("batches_committed", len(batches))
        self._counters.observe("writer_batch_rows", sum(sent.values()) + letters)
        for device_id, protocol in bound:
            self._call(self._on_registered, device_id, protocol)

    async def _hand_on(self, batches: Sequence[Batch]) -> None:
        """Give committed fixes to the next stage (the rules); awaiting it is how a slow
        stage pushes back on ingest instead of dropping fixes."""
        if self._on_committed is None:
            return
        with_fixes = [b for b in batches if len(b.fixes)]
        if not with_fixes:
            return
        try:
            await self._on_committed(with_fixes)
        except Exception:
            self._counters.inc("writer_callback_errors")
            log.exception("on_committed hook %r failed", self._on_committed)

    def _acknowledge(self, batches: Sequence[Batch]) -> None:
        for b in batches:
            if b.on_commit is not None:
                self._call(b.on_commit)

    def _call(self, fn: Callable[..., None] | None, *args: Any) -> None:
        """Run a callback; its failure is the caller's bug, never the writer's death."""
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:
            self._counters.inc("writer_callback_errors")
            log.exception("writer callback %r failed", fn)


def _clean(s: str) -> str:
    """Text PostgreSQL will take: no NUL, no lone surrogates."""
    return s.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _cleaned(d: DeadLetter) -> DeadLetter:
    values = ((f.name, getattr(d, f.name)) for f in dataclasses.fields(d))
    changes: dict[str, Any] = {k: _clean(v) for k, v in values if isinstance(v, str)}
    return dataclasses.replace(d, **changes)


def _rejected(batch: Batch, err: Exception) -> Batch:
    """``batch`` with its fixes turned into one ``db_rejected`` dead letter (raw: the records)."""
    letters = [_cleaned(d) for d in batch.dead_letters]
    if len(batch.fixes):
        detail = f"{len(batch.fixes)} fixes refused by the database: {err}"
        bad = DeadLetter(
            batch.transport,
            batch.protocol,
            "",
            batch.device_id,
            "db_rejected",
            detail,
            batch.fixes.tobytes(),
            batch.received_us,
        )
        letters.append(_cleaned(bad))
    return dataclasses.replace(
        batch,
        fixes=batch.fixes[:0],
        attributes=(),
        dead_letters=tuple(letters),
        register_device=False,
        bind_device=False,
    )
