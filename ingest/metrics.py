"""A tiny HTTP endpoint for Prometheus and probes: ``GET /metrics``, ``/healthz``, ``/readyz``.

``/healthz`` is liveness: it answers 200 whenever the event loop does, so a supervisor
restarts only a process that is stuck. ``/readyz`` is readiness: 503 naming each
dependency that is unreachable right now (the database, the MQTT broker), one per line,
200 once all are back; a load balancer stops sending work meanwhile. A process that is
alive but not ready must not be restarted: it recovers by itself when they return.

The body is ``prometheus_client``'s exposition of a registry of this server's own (not
the process-wide default one, so that tests and several services in one process do
not collide), filled at scrape time by a collector that reads the ``Counters`` and
the service's other families (tower, API, point-in-time gauges). Plain asyncio
streams serve it: two read-only routes do not justify a framework, the scrape load is
one request every few seconds, and ``port=0`` picks a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ingest.counters import HELP, HISTOGRAMS, Counters, LabelSet

__all__ = ["Buckets", "MetricsServer", "Readiness", "Sample", "counter", "gauge", "histogram"]

log = logging.getLogger(__name__)

PREFIX = "menara_"
Sample = tuple[dict[str, str], float]  # (labels, value)
# What keeps the process from working now: {dependency: problem}, empty when ready.
Readiness = Callable[[], Awaitable[Mapping[str, str]]]

_MAX_HEADER_LINES = 100
_READ_TIMEOUT_S = 5.0
_TEXT = "text/plain; charset=utf-8"


class Buckets(Protocol):
    """A histogram as plain counts: ``counts`` has one entry per bound plus the last
    for values above every bound (not cumulative)."""

    @property
    def bounds(self) -> tuple[float, ...]: ...

    @property
    def counts(self) -> Sequence[int]: ...

    @property
    def sum(self) -> float: ...


def counter(name: str, help_text: str, samples: Iterable[Sample]) -> Metric:
    """Counter family ``menara_<name>_total`` (``name`` without the suffix)."""
    return _family(CounterMetricFamily, name, help_text, samples)


def gauge(name: str, help_text: str, samples: Iterable[Sample]) -> Metric:
    """Gauge family ``menara_<name>``."""
    return _family(GaugeMetricFamily, name, help_text, samples)


def histogram(name: str, help_text: str, h: Buckets) -> Metric:
    """Histogram family ``menara_<name>`` with cumulative buckets, as Prometheus counts."""
    labels = [str(float(b)) for b in h.bounds] + ["+Inf"]
    running, buckets = 0, []
    for le, n in zip(labels, h.counts, strict=True):
        running += n
        buckets.append((le, float(running)))
    return HistogramMetricFamily(PREFIX + name, help_text, buckets=buckets, sum_value=h.sum)


def _family(
    kind: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    help_text: str,
    samples: Iterable[Sample],
) -> Metric:
    rows = list(samples)
    # One family takes one set of label names; Prometheus reads "" as an absent label.
    keys = sorted({k for labels, _ in rows for k in labels})
    family = kind(PREFIX + name, help_text, labels=keys)
    for labels, value in rows:
        family.add_metric([labels.get(k, "") for k in keys], value)
    return family


def counter_families(counters: Counters) -> Iterator[Metric]:
    """The ``Counters``' counters and histograms as families, help from ``HELP``."""
    by_name: dict[str, list[tuple[LabelSet, int]]] = {}
    for (name, labels), value in sorted(counters.snapshot().items()):
        by_name.setdefault(name, []).append((labels, value))
    for name, rows in by_name.items():
        text = HELP.get(name, name.replace("_", " "))
        yield counter(name, text, ((dict(labels), float(v)) for labels, v in rows))
    for name, h in counters.histograms().items():
        yield histogram(name, HISTOGRAMS[name][0], h)


class _Collector:
    def __init__(self, counters: Counters, families: Callable[[], Iterable[Metric]]) -> None:
        self._counters = counters
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from counter_families(self._counters)
        yield from self._families()


class MetricsServer:
    """Serves the counters plus the families ``families`` returns on every scrape (so
    gauges are current), and the probes (``readiness`` checked per ``/readyz``: none
    means always ready); ``port=0`` binds a free port, readable as ``.port`` once entered."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        counters: Counters,
        families: Callable[[], Iterable[Metric]] = tuple,
        readiness: Readiness | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._readiness = readiness
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(counters, families))
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> MetricsServer:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def render(self) -> bytes:
        """The exposition body, as ``GET /metrics`` answers it."""
        return generate_latest(self.registry)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, ctype, body = await asyncio.wait_for(self._respond(reader), _READ_TIMEOUT_S)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError) as exc:
            log.debug("metrics: bad request: %r", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
        request = (await reader.readline()).decode("latin-1").split()
        for _ in range(_MAX_HEADER_LINES):
            if (await reader.readline()).strip() == b"":
                break
        if len(request) < 2 or request[0] != "GET":
            return "405 Method Not Allowed", _TEXT, b"only GET\n"
        path = request[1].split("?", 1)[0]
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, self.render()
        if path == "/healthz":
            return "200 OK", _TEXT, b"ok\n"
        if path == "/readyz":
            return await self._ready()
        return "404 Not Found", _TEXT, b"not found\n"

    async def _ready(self) -> tuple[str, str, bytes]:
        problems = {} if self._readiness is None else await self._readiness()
        if not problems:
            return "200 OK", _TEXT, b"ready\n"
        lines = "".join(f"{name}: {problem}\n" for name, problem in sorted(problems.items()))
        return "503 Service Unavailable", _TEXT, lines.encode("utf-8", "replace")
