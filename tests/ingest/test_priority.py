"""The event loop's two classes of descriptors (``ingest.priority``) with real sockets:
the selector's bookkeeping, the ration of second-class descriptors per pass, and a first-
class peer served ahead of a crowd of strangers hanging up at once."""

from __future__ import annotations

import asyncio
import selectors
import socket
from collections.abc import Iterator
from typing import ClassVar

import pytest

from ingest import priority
from ingest.counters import Counters
from ingest.limits import Acceptor, Limits
from ingest.priority import PrioritySelector
from tests.polling import until

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made = [socket.socketpair() for _ in range(12)]
    yield made
    for a, b in made:
        a.close()
        b.close()


def ready_fds(sel: PrioritySelector) -> list[int]:
    return [key.fd for key, _ in sel.select(0)]


def test_demoted_descriptors_are_rationed_per_pass_and_all_come_round(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    sel = PrioritySelector(low_batch=3)
    first = [a.fileno() for a, _ in pairs[:2]]
    low = [a.fileno() for a, _ in pairs[2:]]
    for fd in low[:5]:
        sel.demote(fd)  # before registration, as the acceptor does
    for fd in first + low:
        sel.register(fd, READ)
    for fd in low[5:]:
        sel.demote(fd)  # after registration: moved
    for _, b in pairs:
        b.send(b"x")  # everything readable
    seen: set[int] = set()
    for _ in range(4):  # 10 strangers, 3 a pass
        fds = ready_fds(sel)
        assert set(first) <= set(fds)  # the first class every pass
        assert len(set(fds) - set(first)) <= 3
        seen |= set(fds) - set(first)
    assert seen == set(low)
    assert sel.seconds == 10
    for fd in low:
        sel.promote(fd)
    assert set(ready_fds(sel)) == set(first + low) and sel.seconds == 0
    sel.close()


def test_the_selector_keeps_keys_like_the_stock_one(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    sel = PrioritySelector(low_batch=2)
    a, b = pairs[0]
    sel.demote(a.fileno())
    key = sel.register(a, READ, "data")
    assert sel.get_key(a) == key and sel.get_key(a.fileno()).data == "data"
    with pytest.raises(KeyError):
        sel.register(a.fileno(), READ)
    assert ready_fds(sel) == []
    sel.modify(a, READ | WRITE, "more")  # a writable socket: reported at once
    assert [(k.fd, m, k.data) for k, m in sel.select(0)] == [(a.fileno(), WRITE, "more")]
    sel.modify(a, READ, "data")
    b.send(b"x")
    assert [(k.fd, m) for k, m in sel.select(0)] == [(a.fileno(), READ)]
    assert sel.unregister(a).data == "data"
    assert len(sel.get_map()) == 0 and ready_fds(sel) == []
    with pytest.raises(KeyError):
        sel.unregister(a)
    with pytest.raises(ValueError):
        sel.register(a, 0)
    sel.promote(a.fileno())  # the acceptor's release before the socket closes
    assert sel.seconds == 0
    sel.close()


class Stranger(asyncio.Protocol):
    """A connection that demotes itself, as the device listeners' acceptor does."""

    made = 0
    eofs = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.fd = transport.get_extra_info("socket").fileno()
        sel = priority.classes(asyncio.get_running_loop())
        if sel is not None:
            sel.demote(self.fd)
        Stranger.made += 1

    def eof_received(self) -> None:
        Stranger.eofs += 1

    def connection_lost(self, exc: Exception | None) -> None:
        sel = priority.classes(asyncio.get_running_loop())
        if sel is not None:
            sel.promote(self.fd)


class Echo(asyncio.Protocol):
    """The device: answers what it is sent, noting how many hang-ups came first."""

    eofs_before: ClassVar[list[int]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        Echo.eofs_before.append(Stranger.eofs)
        self.transport.write(data)


async def crowd_hangs_up(n: int) -> int:
    """``n`` strangers connect, then all hang up just before a device's request: how
    many of their hang-ups the server handled before the request."""
    Stranger.made, Stranger.eofs, Echo.eofs_before = 0, 0, []
    loop = asyncio.get_running_loop()
    strangers = await loop.create_server(Stranger, "127.0.0.1", 0, backlog=n)
    echo = await loop.create_server(Echo, "127.0.0.1", 0)
    crowd = [socket.create_connection(strangers.sockets[0].getsockname()) for _ in range(n)]
    device = socket.create_connection(echo.sockets[0].getsockname())
    device.setblocking(False)
    await until(lambda: Stranger.made == n, what=f"{n} strangers connected")
    for s in crowd:  # every FIN is queued before the request
        s.close()
    device.send(b"ping")
    assert await loop.sock_recv(device, 4) == b"ping"
    await until(lambda: Stranger.eofs == n, what="every hang-up handled")
    device.close()
    strangers.close()
    echo.close()
    if (sel := priority.classes(loop)) is not None:
        await until(lambda: sel.seconds == 0, what="the strangers' descriptors released")
    return Echo.eofs_before[0]


def test_a_device_is_served_ahead_of_a_crowd_hanging_up() -> None:
    with asyncio.Runner(loop_factory=lambda: priority.PriorityLoop(low_batch=8)) as runner:
        assert runner.run(crowd_hangs_up(300)) <= 16  # a pass or two of strangers


def test_without_classes_the_device_waits_for_the_whole_crowd() -> None:
    """The control: on asyncio's own loop every hang-up queued first is handled first."""
    assert asyncio.run(crowd_hangs_up(300)) == 300


def test_a_connection_accepted_as_its_listener_closes_is_given_back() -> None:
    """``close`` in the pass that accepted a connection cancels its task before it runs:
    its descriptor must still leave the second class (or a database socket given the
    same number next would be demoted), its slot come free and its socket close."""

    async def main() -> None:
        sel = priority.classes(asyncio.get_running_loop())
        assert sel is not None
        acceptor = Acceptor(
            asyncio.Protocol, limits=Limits(), fds=None, counters=Counters(), what=("tcp", "t")
        )
        port = await acceptor.start("127.0.0.1", 0, 16)
        client = socket.create_connection(("127.0.0.1", port))
        acceptor._accept(acceptor._socks[0])  # the loop's wake-up, then close in the same pass
        assert sel.seconds == 1
        acceptor.close()
        await until(lambda: sel.seconds == 0, what="the descriptor released")
        assert acceptor._open == 0
        client.settimeout(5)
        assert client.recv(1) == b""  # the server side was closed, not left to the GC
        client.close()

    with asyncio.Runner(loop_factory=priority.new_loop) as runner:
        runner.run(main())
