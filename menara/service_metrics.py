"""What ``/metrics`` and the health endpoints of ``menara serve`` and ``menara rules`` show.

Kept apart from the service wiring: the gauges are read from the running parts at scrape
time, and the rule host reuses the server and the tower's families.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import Metric

from ingest import metrics
from ingest.counters import Counters
from ingest.http import HttpListener
from ingest.metrics import MetricsServer
from ingest.mqtt import MqttIngest
from ingest.tcp import TcpListener
from ingest.udp import UdpListener
from ingest.writer import Writer
from menara import health
from menara.settings import Settings
from oms_core.api.ratelimit import RateLimiter
from tower import stats
from tower.pool import TowerPool
from tower.worker import Tower

__all__ = ["families", "intake_name", "start_metrics", "tower_families"]

log = logging.getLogger("menara.service")


_OPEN_HELP = {
    "tcp": "Open TCP device connections, by protocol.",
    "http": "HTTP intake requests being served, by protocol.",
    "udp": "Datagrams queued for the writer, by protocol (UDP has no connections).",
}


async def start_metrics(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    counters: Counters,
    families: Callable[[], Iterable[Metric]],
    *,
    broker: health.Broker | None,
) -> None:
    """``/metrics``, ``/healthz`` and ``/readyz`` (the database, and ``broker`` when there
    is one) on ``metrics_port`` (none when it is 0), for as long as ``stack`` is open."""
    if settings.metrics_port <= 0:
        return
    server = MetricsServer(
        host=settings.metrics_host,
        port=settings.metrics_port,
        counters=counters,
        families=families,
        readiness=health.Readiness(
            settings.db_dsn,
            broker=broker,
            broker_address=f"{settings.mqtt_host}:{settings.mqtt_port}",
        ),
    )
    await stack.enter_async_context(server)
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, server.port)


def tower_families(tower: Tower | TowerPool) -> Iterator[Metric]:
    """The rules' gauge, counters and latency, wherever they run (serve or rules)."""
    yield metrics.gauge(
        "tower_queued_rounds",
        "Rounds of committed fixes waiting for the rules (back-pressure on ingest).",
        [({}, tower.queued)],
    )
    for name, value in sorted(tower.counters.items()):
        yield metrics.counter(f"tower_{name}", stats.COUNTERS.get(name, name), [({}, value)])
    yield metrics.histogram(
        "tower_rule_latency_seconds", stats.RULE_LATENCY_HELP, tower.rule_latency
    )


def families(
    writer: Writer,
    tower: Tower | TowerPool | None,
    limiter: RateLimiter | None,
    listeners: Iterable[TcpListener | HttpListener | UdpListener],
) -> Iterator[Metric]:
    """What /metrics shows besides the ingest counters, read at scrape time."""
    yield metrics.gauge(
        "writer_pending_rows", "Rows accepted and not yet committed.", [({}, writer.pending_rows)]
    )
    if tower is not None:
        yield from tower_families(tower)
    if limiter is not None:
        rate = limiter.counters()
        yield metrics.counter(
            "public_rate_refused",
            "Public requests (tracking, complaints, sign-in) refused with 429.",
            [({}, rate["refused"])],
        )
        yield metrics.counter(
            "public_rate_evicted",
            "Rate-limit buckets evicted to keep at most max_clients.",
            [({}, rate["evicted"])],
        )
        yield metrics.gauge(
            "public_rate_clients",
            "Client addresses with a rate-limit bucket.",
            [({}, rate["clients"])],
        )
    open_by_kind: dict[str, list[metrics.Sample]] = {}
    for lis in listeners:
        kind, name = intake_name(lis).split()
        open_by_kind.setdefault(kind, []).append(({"protocol": name}, lis.open_connections))
    for kind, samples in open_by_kind.items():
        yield metrics.gauge(f"{kind}_connections_open", _OPEN_HELP[kind], samples)


def intake_name(intake: TcpListener | HttpListener | UdpListener | MqttIngest) -> str:
    if isinstance(intake, MqttIngest):
        return "mqtt"
    if isinstance(intake, UdpListener):
        return f"udp {intake.protocol}"
    kind = "tcp" if isinstance(intake, TcpListener) else "http"
    return f"{kind} {intake.codec.NAME}"
