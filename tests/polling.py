"""Bounded polling for tests: wait until a condition holds, fail clearly at a deadline.

Tests never sleep as synchronisation; they poll a real observable (rows, counters,
sockets) with one of these and fail with what they were waiting for.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def until(
    cond: Callable[[], bool | Awaitable[bool]], timeout_s: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``cond`` (plain or async) every 10 ms until it is true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = cond()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)


def wait_for(cond: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """The blocking twin of ``until`` for tests outside an event loop."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)
