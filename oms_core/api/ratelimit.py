"""Rate limiting of the routes anyone may call without a token: the tracking answer and
page, complaints, and the driver's sign-in (the only places a stranger can make the
service look something up).

One token bucket per client address: ``per_min`` requests a minute on average, a burst
of a quarter of that at once. The address is ``request.remote``, the socket's peer;
``X-Forwarded-For`` is a header any client can write, so it is never read (behind a
reverse proxy every client is the proxy: limit there instead). An IPv6 client counts by
its /64, since one host is usually handed a whole /64. At most ``max_clients`` buckets
are kept; a new address evicts the one seen longest ago, so memory stays bounded
whatever a flood of addresses does (an evicted client starts again with a full bucket).

A refused request gets 429 with ``Retry-After`` (whole seconds until a request would
pass) and the JSON error; pages under ``/t/`` get a short HTML page instead. Refusals
are counted (``RateLimiter.refused``), and the limiter is on the app as
``app[RATE_LIMITER]`` for the metrics endpoint.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import replace

from aiohttp import web
from aiohttp.typedefs import Middleware

from oms_core.api.errors import Handler, error_response
from oms_core.api.spec import PREFIX, Operation

__all__ = ["RATE_LIMITER", "RateLimiter", "client_key", "documented", "limited", "middleware"]

_PREFIXES = (PREFIX + "/track/", "/t/")
_PATHS = frozenset({PREFIX + "/track", PREFIX + "/driver/sign-in"})
_REFUSED = "too many requests from your address: wait {s} s (Retry-After) and try again"


def limited(path: str) -> bool:
    """Whether requests to ``path`` count against the client's bucket."""
    return path in _PATHS or path.startswith(_PREFIXES)


def client_key(remote: str | None) -> str:
    """The bucket of a peer address: IPv4 as is, IPv6 by its /64."""
    if remote is None:
        return "unknown"
    if ":" not in remote:
        return remote
    try:
        ip = ipaddress.IPv6Address(remote.split("%", 1)[0])
    except ValueError:
        return remote
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))


class RateLimiter:
    """Token buckets per client key, bounded in number; ``per_min`` 0 turns it off."""

    def __init__(
        self,
        per_min: int,
        *,
        burst: int | None = None,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_s = per_min / 60
        self.burst = float(burst if burst is not None else max(1, math.ceil(per_min / 4)))
        self.max_clients = max_clients
        self.clock = clock
        self.refused = 0
        self.evicted = 0
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # key: [tokens, at]

    @property
    def off(self) -> bool:
        return self.per_s <= 0

    @property
    def clients(self) -> int:
        """How many buckets are held."""
        return len(self._buckets)

    def take(self, key: str) -> float:
        """Spend one token of ``key``'s bucket: 0 when the request may pass, else the
        seconds until it could (the request is then counted as refused)."""
        if self.off:
            return 0.0
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_clients:
                self._buckets.popitem(last=False)
                self.evicted += 1
            bucket = self._buckets[key] = [self.burst, now]
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.per_s)
            bucket[1] = now
        if bucket[0] >= 1:
            bucket[0] -= 1
            return 0.0
        self.refused += 1
        return (1 - bucket[0]) / self.per_s

    def counters(self) -> dict[str, int]:
        """What /metrics reports: refusals, evicted buckets, buckets held."""
        return {"refused": self.refused, "evicted": self.evicted, "clients": self.clients}


RATE_LIMITER = web.AppKey("public_rate_limiter", RateLimiter)


def middleware(
    limiter: RateLimiter, html: Callable[[web.Request, int], web.StreamResponse]
) -> Middleware:
    """The aiohttp middleware: ``html(request, retry_after_s)`` answers refused pages."""

    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if limiter.off or not limited(request.path):
            return await handler(request)
        wait = limiter.take(client_key(request.remote))
        if wait <= 0:
            return await handler(request)
        retry = max(1, math.ceil(wait))
        if request.path.startswith("/t/"):
            return html(request, retry)
        return error_response(
            429, "rate_limited", _REFUSED.format(s=retry), headers={"Retry-After": str(retry)}
        )

    return rate_limit


def documented(operations: Iterable[Operation]) -> tuple[Operation, ...]:
    """``operations`` with the 429 added to every limited one that does not list it."""
    refusal = ("too many requests from this address (rate_limited): wait Retry-After s", "Error")
    return tuple(
        replace(op, responses={**op.responses, 429: refusal})
        if op.roles is None and limited(PREFIX + op.path.split("{")[0]) and 429 not in op.responses
        else op
        for op in operations
    )
