"""Logging for the ``menara`` command, with repeated lines rate-limited.

A hostile peer can make one line repeat thousands of times a second: asyncio logged
"socket.accept() out of system resource" with a traceback for every failed accept and
wrote 240 MB in 40 s. ``RepeatFilter`` lets each kind of line (logger, level and the
first line of the message template) through ``burst`` times per ``interval_s`` and then
counts it; once the interval is over the count is logged as one "suppressed K similar
lines" line, when the next line of any kind passes (a quiet service may log it late).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RepeatFilter", "configure"]

BURST = 10
INTERVAL_S = 60.0
MAX_KINDS = 1000  # kinds of line tracked; the oldest window is forgotten beyond it
_KEY_CHARS = 200
_SUMMARY = "_menara_summary"  # set on our own summary records: never filtered

Key = tuple[str, int, str]


@dataclass(slots=True)
class _Window:
    start: float
    passed: int = 0
    suppressed: int = 0


class RepeatFilter(logging.Filter):
    """A handler filter passing each kind of line ``burst`` times per ``interval_s``."""

    def __init__(
        self,
        handler: logging.Handler,
        *,
        burst: int = BURST,
        interval_s: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._handler = handler
        self._burst = burst
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[Key, _Window] = {}
        self._swept = clock()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SUMMARY, False):
            return True
        key = (record.name, record.levelno, str(record.msg).split("\n", 1)[0][:_KEY_CHARS])
        with self._lock:
            now = self._clock()
            due = self._sweep(now, key)
            window = self._windows.get(key)
            if window is None:
                if len(self._windows) >= MAX_KINDS:
                    del self._windows[next(iter(self._windows))]
                window = self._windows[key] = _Window(now)
            passes = window.passed < self._burst
            if passes:
                window.passed += 1
            else:
                window.suppressed += 1
        for summary in due:
            self._handler.handle(summary)
        return passes

    def _sweep(self, now: float, key: Key) -> list[logging.LogRecord]:
        """Close the windows that are over (``key``'s always, the others at most every
        second); summaries of what they suppressed."""
        over = now - self._interval_s
        if now - self._swept >= min(1.0, self._interval_s):
            self._swept = now
            ended = [k for k, w in self._windows.items() if w.start <= over]
        else:
            w = self._windows.get(key)
            ended = [key] if w is not None and w.start <= over else []
        due = []
        for k in ended:
            window = self._windows.pop(k)
            if window.suppressed:
                due.append(_summary(k, window.suppressed, now - window.start))
        return due


def _summary(key: Key, suppressed: int, seconds: float) -> logging.LogRecord:
    name, level, first = key
    record = logging.LogRecord(
        name,
        level,
        __file__,
        0,
        "suppressed %d similar lines in %.0f s: %s",
        (suppressed, seconds, first),
        None,
    )
    setattr(record, _SUMMARY, True)
    return record


def configure(level: str) -> None:
    """Log to stderr at ``level`` with repeated lines rate-limited (``RepeatFilter``)."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter(handler))
