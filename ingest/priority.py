"""Two classes of descriptors on the event loop, so strangers cannot hold up devices.

asyncio handles every descriptor of an ``epoll`` batch before it looks again, in the
order they became ready: when 5,000 idle connections closed at once, a bare asyncio
echo server on two vCPUs was held 90-190 ms, and every device's ack (its read, the
database round trip, its write) waited behind them. So a connection a device listener
accepts starts in a second class (``demote``): its descriptor sits in a second ``epoll``
set, and each loop pass takes at most ``LOW_BATCH`` of its ready descriptors. A
connection that identifies a device the registry admits is moved to the first class
(``promote``), where the database, the broker, the API and listening sockets are; all
of the first class's ready descriptors are handled on every pass, as asyncio does.
Nothing is dropped or reordered within a class; strangers just wait their turn in
batches while known devices are served in between.

``new_loop`` makes the loop (``PriorityLoop``; the default loop where ``epoll`` is
missing), and ``classes(loop)`` its ``PrioritySelector``, or None on any other loop, in
which case demoting and promoting do nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import select
import selectors
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = [
    "LOW_BATCH",
    "PriorityLoop",
    "PrioritySelector",
    "classes",
    "new_loop",
    "promote",
    "run",
]

LOW_BATCH = 64  # second-class descriptors handled per loop pass (~2 ms of closes)


def _fd(fileobj: Any) -> int:
    fd = fileobj if isinstance(fileobj, int) else int(fileobj.fileno())
    if fd < 0:
        raise ValueError(f"invalid file descriptor: {fd}")
    return fd


def _poll_events(events: int) -> int:
    if not events or events & ~(selectors.EVENT_READ | selectors.EVENT_WRITE):
        raise ValueError(f"invalid events: {events!r}")
    return (select.EPOLLIN if events & selectors.EVENT_READ else 0) | (
        select.EPOLLOUT if events & selectors.EVENT_WRITE else 0
    )


class _Keys(Mapping[Any, selectors.SelectorKey]):
    """``get_map``: the registered keys, looked up by descriptor or file object."""

    def __init__(self, keys: dict[int, selectors.SelectorKey]) -> None:
        self._keys = keys

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, fileobj: Any) -> selectors.SelectorKey:
        try:
            return self._keys[_fd(fileobj)]
        except (ValueError, AttributeError):
            raise KeyError(fileobj) from None

    def __iter__(self) -> Iterator[int]:
        return iter(self._keys)


class PrioritySelector(selectors.BaseSelector):
    """An ``epoll`` selector with a second, rationed class of descriptors (module doc).

    ``demote(fd)`` puts a descriptor in the second class, now or when it is registered;
    ``promote(fd)`` takes it back to the first, and must also be called before a demoted
    descriptor is closed, since the number will be reused.
    """

    def __init__(self, low_batch: int = LOW_BATCH) -> None:
        self.low_batch = low_batch
        self._first = select.epoll()
        self._low = select.epoll()  # itself watched by the first set
        self._first.register(self._low.fileno(), select.EPOLLIN)
        self._keys: dict[int, selectors.SelectorKey] = {}
        self._map = _Keys(self._keys)
        self._second: set[int] = set()  # descriptors in the second class
        self._in_low: set[int] = set()  # ... of them, registered in the second set now

    def _set(self, fd: int) -> select.epoll:
        return self._low if fd in self._in_low else self._first

    def _move(self, fd: int, to_low: bool) -> None:
        key = self._keys.get(fd)
        if key is None or (fd in self._in_low) == to_low:
            return
        self._set(fd).unregister(fd)
        (self._in_low.add if to_low else self._in_low.discard)(fd)
        self._set(fd).register(fd, _poll_events(key.events))

    @property
    def seconds(self) -> int:
        """Descriptors in the second class (registered or about to be)."""
        return len(self._second)

    def demote(self, fd: int) -> None:
        self._second.add(fd)
        self._move(fd, True)

    def promote(self, fd: int) -> None:
        self._second.discard(fd)
        self._move(fd, False)

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = _fd(fileobj)
        if fd in self._keys:
            raise KeyError(f"{fileobj!r} (FD {fd}) is already registered")
        key = selectors.SelectorKey(fileobj, fd, events, data)
        low = fd in self._second
        (self._low if low else self._first).register(fd, _poll_events(events))
        if low:
            self._in_low.add(fd)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        fd = _fd(fileobj)
        try:
            key = self._keys.pop(fd)
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        with contextlib.suppress(OSError):  # closed since it was registered
            self._set(fd).unregister(fd)
        self._in_low.discard(fd)
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = _fd(fileobj)
        try:
            key = self._keys[fd]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        if events != key.events:
            try:
                self._set(fd).modify(fd, _poll_events(events))
            except BaseException:
                self.unregister(fileobj)
                raise
        key = key._replace(events=events, data=data)
        self._keys[fd] = key
        return key

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            wait = -1.0
        elif timeout <= 0:
            wait = 0.0
        else:  # epoll_wait counts milliseconds: wait at least ``timeout``
            wait = math.ceil(timeout * 1e3) * 1e-3
        try:
            events = self._first.poll(wait, len(self._keys) - len(self._in_low) + 1)
        except InterruptedError:
            return []
        low = self._low.fileno()
        if any(fd == low for fd, _ in events):
            events = [e for e in events if e[0] != low] + self._low.poll(0, self.low_batch)
        ready = []
        for fd, event in events:
            key = self._keys.get(fd)
            if key is not None:
                mask = (selectors.EVENT_WRITE if event & ~select.EPOLLIN else 0) | (
                    selectors.EVENT_READ if event & ~select.EPOLLOUT else 0
                )
                ready.append((key, mask & key.events))
        return ready

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._map

    def close(self) -> None:
        self._keys.clear()
        self._low.close()
        self._first.close()


class PriorityLoop(asyncio.SelectorEventLoop):
    """A selector event loop on a ``PrioritySelector``, reachable as ``classes``."""

    def __init__(self, low_batch: int = LOW_BATCH) -> None:
        self.classes = PrioritySelector(low_batch)
        super().__init__(self.classes)


def new_loop() -> asyncio.AbstractEventLoop:
    """A ``PriorityLoop`` where ``epoll`` exists, else the default loop."""
    return PriorityLoop() if hasattr(select, "epoll") else asyncio.new_event_loop()


def classes(loop: asyncio.AbstractEventLoop) -> PrioritySelector | None:
    """The loop's ``PrioritySelector``, or None when it runs on another selector."""
    return loop.classes if isinstance(loop, PriorityLoop) else None


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on ``new_loop``: how ``menara serve`` and the demo run."""
    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(main)


def promote(transport: asyncio.BaseTransport) -> None:
    """Move a connection to the first class (called from a protocol callback, once the
    peer has shown it is a device the registry admits)."""
    sock = transport.get_extra_info("socket")
    sel = classes(asyncio.get_running_loop())
    if sel is not None and sock is not None and sock.fileno() >= 0:
        sel.promote(sock.fileno())
