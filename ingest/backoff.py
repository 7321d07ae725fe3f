"""One reconnect backoff for broker, database and TCP clients: capped, jittered, exponential."""

from __future__ import annotations

import random
from collections.abc import Iterator


def delays(initial_s: float = 0.2, maximum_s: float = 10.0, factor: float = 2.0) -> Iterator[float]:
    """Endless delays: ``initial_s`` growing by ``factor`` up to ``maximum_s``, ±20 % jitter."""
    d = initial_s
    while True:
        yield d * random.uniform(0.8, 1.2)
        d = min(d * factor, maximum_s)
