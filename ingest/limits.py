"""Connection limits of the device listeners: per listener, per remote address, and a
descriptor budget shared by all of them.

asyncio's own accept loop takes up to ``backlog`` connections per wake-up before any
protocol sees one, and when the process runs out of descriptors it logs a traceback for
every failed ``accept()`` and retries a second later: 4,200 idle connections starved the
API and the database of descriptors and wrote hundreds of megabytes of log. So device
listeners bind and accept here instead. Each accepted socket is checked at once against
the listener's ``Limits`` (most connections in all and from one address: trackers behind
one carrier NAT share an address, so that limit must be generous) and against the
``FdBudget`` every listener shares (the descriptor limit minus a reserve kept for the API,
the database and the broker). A connection beyond any of them is closed at once and
counted as ``connections_refused{reason}``: the peer sees the connection close before it
sends anything. An admitted connection starts in the loop's second class
(``ingest.priority``) until it shows it is a device. Should ``accept()`` fail for want of
descriptors all the same (something else used the reserve), the listener stops accepting
for ``ACCEPT_RETRY_S`` and counts it.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import resource
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from ingest import priority
from ingest.counters import Counters

__all__ = ["NO_LIMITS", "Acceptor", "FdBudget", "Limits", "open_descriptors", "raise_fd_limit"]

log = logging.getLogger(__name__)

ACCEPT_BATCH = 16  # connections accepted per wake-up: others' callbacks run in between
ACCEPT_RETRY_S = 1.0  # pause after accept() failed for want of descriptors or memory
RECOUNT_S = 1.0  # most often the budget counts the process's open descriptors
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


@dataclass(frozen=True, slots=True)
class Limits:
    """One listener's limits: open connections in all and from one remote address
    (0: no limit)."""

    total: int = 0
    per_peer: int = 0


NO_LIMITS = Limits()


def raise_fd_limit() -> int:
    """Raise the soft descriptor limit to the hard one where the system allows; the soft
    limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # e.g. macOS caps it below the hard limit
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
    return soft


def open_descriptors() -> int:
    """Descriptors this process has open (0 where the system does not list them)."""
    for path in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(path))
        except OSError:
            continue
    return 0


class FdBudget:
    """Descriptors that device connections of every listener may hold together: the
    soft limit minus ``reserve`` minus the descriptors the rest of the process holds.

    The rest is counted when the budget is made and again (at most every ``RECOUNT_S``)
    when it runs out, so API clients, database and broker connections opened since are
    taken into account before a device connection is refused.
    """

    def __init__(
        self,
        reserve: int,
        *,
        limit: int | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.limit = limit if limit is not None else resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.reserve = reserve
        self.held = 0  # device connections accepted and not yet closed, all listeners
        self._clock = clock or time.monotonic
        self._others = open_descriptors()
        self._counted = self._clock()

    def full(self) -> bool:
        """Whether one more device connection would eat into the reserve."""
        if self.held + self._others + self.reserve < self.limit:
            return False
        now = self._clock()
        if now - self._counted >= RECOUNT_S:
            self._counted = now
            self._others = max(open_descriptors() - self.held, 0)
        return self.held + self._others + self.reserve >= self.limit


class _Slot:
    """One accepted connection's share of the limits, given back once (before its
    socket is closed: the descriptor's number leaves the second class with it)."""

    __slots__ = ("_acceptor", "fd", "peer")

    def __init__(self, acceptor: Acceptor, peer: str, fd: int) -> None:
        self._acceptor: Acceptor | None = acceptor
        self.peer = peer
        self.fd = fd

    def release(self) -> None:
        if self._acceptor is not None:
            self._acceptor._release(self.peer, self.fd)
            self._acceptor = None


class _Tracked(asyncio.Protocol):
    """A listener's protocol, passed every call, giving its slot back when the
    connection is lost."""

    def __init__(self, inner: asyncio.Protocol, slot: _Slot) -> None:
        self._inner = inner
        self._slot = slot

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._inner.connection_lost(exc)
        finally:
            self._slot.release()


class Acceptor:
    """Listening sockets for one listener, accepting within its limits.

    ``factory`` makes the protocol of each admitted connection; ``what`` is the
    (transport, protocol) pair the counters are labelled with.
    """

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        *,
        limits: Limits,
        fds: FdBudget | None,
        counters: Counters,
        what: tuple[str, str],
    ) -> None:
        self._factory = factory
        self._limits = limits
        self._fds = fds
        self._counters = counters
        self._transport, self._protocol = what
        self._socks: list[socket.socket] = []
        self._by_peer: dict[str, int] = {}
        self._open = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._classes: priority.PrioritySelector | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._connecting: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int, backlog: int) -> int:
        """Bind every address ``host`` names and start accepting; the bound port."""
        self._loop = asyncio.get_running_loop()
        self._classes = priority.classes(self._loop)
        infos = await self._loop.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        try:
            for family, kind, proto, _, addr in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                self._socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if port == 0 and len(self._socks) > 1:  # one free port for every address
                    addr = (addr[0], self.port, *addr[2:])
                sock.bind(addr)
                sock.listen(backlog)
                sock.setblocking(False)
        except OSError as exc:
            self.close()
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        self._listen()
        return self.port

    @property
    def port(self) -> int:
        return int(self._socks[0].getsockname()[1]) if self._socks else 0

    def close(self) -> None:
        """Stop listening and drop connections not yet handed to the listener; open
        connections are the listener's to close."""
        self._unlisten()
        for task in self._connecting:
            task.cancel()
        for sock in self._socks:
            sock.close()
        self._socks = []

    def _listen(self) -> None:
        assert self._loop is not None
        self._retry = None
        for sock in self._socks:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _unlisten(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._loop is not None:
            for sock in self._socks:
                self._loop.remove_reader(sock.fileno())

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                self._count("accept_errors")
                if exc.errno not in _OUT_OF_RESOURCES:
                    log.warning("%s %s: accept failed: %s", self._transport, self._protocol, exc)
                    continue
                log.warning(
                    "%s %s: cannot accept connections (%s); trying again in %.0f s",
                    self._transport,
                    self._protocol,
                    exc.strerror,
                    ACCEPT_RETRY_S,
                )
                self._unlisten()
                assert self._loop is not None
                self._retry = self._loop.call_later(ACCEPT_RETRY_S, self._listen)
                return
            peer = str(addr[0]) if isinstance(addr, tuple) else str(addr)
            reason = self._refusal(peer)
            if reason is not None:
                conn.close()
                self._count("connections_refused", reason=reason)
                continue
            slot = self._take(peer, conn.fileno())
            assert self._loop is not None
            task = self._loop.create_task(self._connect(conn, slot))
            self._connecting.add(task)
            task.add_done_callback(functools.partial(self._settled, conn, slot))

    def _refusal(self, peer: str) -> str | None:
        """Why a connection from ``peer`` may not be opened now, or None."""
        if self._limits.total and self._open >= self._limits.total:
            return "max_connections"
        if self._limits.per_peer and self._by_peer.get(peer, 0) >= self._limits.per_peer:
            return "max_per_peer"
        if self._fds is not None and self._fds.full():
            return "fd_reserve"
        return None

    async def _connect(self, conn: socket.socket, slot: _Slot) -> None:
        assert self._loop is not None
        conn.setblocking(False)
        await self._loop.connect_accepted_socket(lambda: _Tracked(self._factory(), slot), conn)

    def _settled(self, conn: socket.socket, slot: _Slot, task: asyncio.Task[None]) -> None:
        """Where every hand-over ends. Without a transport (the peer left first, or
        ``close`` cancelled the task, even before it ran) the slot is given back and the
        socket closed here; an error other than the peer's leaving is logged."""
        self._connecting.discard(task)
        exc = None if task.cancelled() else task.exception()
        if not task.cancelled() and exc is None:
            return
        slot.release()
        conn.close()
        if exc is not None and not isinstance(exc, OSError):
            log.error(
                "%s %s: cannot open a connection", self._transport, self._protocol, exc_info=exc
            )

    def _take(self, peer: str, fd: int) -> _Slot:
        """Count a connection from ``peer`` against the limits; its slot to give back."""
        if self._classes is not None:
            self._classes.demote(fd)
        self._open += 1
        self._by_peer[peer] = self._by_peer.get(peer, 0) + 1
        if self._fds is not None:
            self._fds.held += 1
        return _Slot(self, peer, fd)

    def _release(self, peer: str, fd: int) -> None:
        if self._classes is not None:
            self._classes.promote(fd)
        self._open -= 1
        left = self._by_peer[peer] - 1
        if left:
            self._by_peer[peer] = left
        else:
            del self._by_peer[peer]
        if self._fds is not None:
            self._fds.held -= 1

    def _count(self, name: str, **labels: str) -> None:
        self._counters.inc(name, 1, transport=self._transport, protocol=self._protocol, **labels)
