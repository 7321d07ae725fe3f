"""A tiny HTTP endpoint for Prometheus: ``GET /metrics`` and ``GET /healthz``.

Plain asyncio streams, no web framework: two read-only routes do not justify a
dependency, and the scrape load is one request every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from types import TracebackType

from ingest.counters import Counters, _labels

log = logging.getLogger(__name__)

Gauge = tuple[str, dict[str, str], float]  # (name without prefix, labels, value)

_MAX_HEADER_LINES = 100
_READ_TIMEOUT_S = 5.0


class MetricsServer:
    """Serves the counters plus point-in-time gauges (queue depth, open connections).

    ``gauges`` is called on every scrape so the values are current; ``port=0`` binds a
    free port, readable as ``.port`` once entered.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        counters: Counters,
        gauges: Callable[[], Iterable[Gauge]] = tuple,
    ) -> None:
        self.host = host
        self.port = port
        self._counters = counters
        self._gauges = gauges
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

    def render(self) -> str:
        """The exposition text: counters, then gauges."""
        lines = [self._counters.prometheus().rstrip("\n")]
        seen: set[str] = set()
        for name, labels, value in self._gauges():
            metric = f"menara_{name}"
            if metric not in seen:
                seen.add(metric)
                lines.append(f"# TYPE {metric} gauge")
            lines.append(f"{metric}{_labels(sorted(labels.items()))} {value:g}")
        return "\n".join(line for line in lines if line) + "\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await asyncio.wait_for(self._respond(reader), _READ_TIMEOUT_S)
            data = body.encode()
            ctype = "text/plain; version=0.0.4; charset=utf-8"
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + data)
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError) as exc:
            log.debug("metrics: bad request: %r", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[str, str]:
        request = (await reader.readline()).decode("latin-1").split()
        for _ in range(_MAX_HEADER_LINES):
            if (await reader.readline()).strip() == b"":
                break
        if len(request) < 2 or request[0] != "GET":
            return "405 Method Not Allowed", "only GET\n"
        path = request[1].split("?", 1)[0]
        if path == "/metrics":
            return "200 OK", self.render()
        if path == "/healthz":
            return "200 OK", "ok\n"
        return "404 Not Found", "not found\n"
