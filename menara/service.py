"""The service: schema, device registry, writer, listeners, the control tower, alert
delivery, the OMS API, metrics, clean stop.

Shutdown order is what keeps "stored exactly once" true across restarts: stop reading
from every transport, drain the writer (commit everything accepted and send the acks
it owes), and only then disconnect. TCP listeners stop reading first and the writer is
drained while devices are still connected; leaving ``MqttIngest`` does the same steps
for MQTT (stop reading, drain, PUBACK, disconnect); then the TCP connections close and
the writer stops. Anything not acked by then is resent and de-duplicated by the database.
The tower is entered before the writer so that it outlives it: every fix the writer
commits while draining is still evaluated by the rules. With ``tower_feed = mqtt`` the
rules run in ``menara rules`` instead, and committed rounds are published for it
(``menara.rules_feed``); the outbox worker still runs here (several share it safely).
An intake that fails (a TCP listener or the MQTT network thread) stops the service the
same way, and ``serve`` then raises its error: ``menara serve`` exits non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import psycopg
from aiohttp import web

from decoders import PROTOCOLS, teltonika
from decoders.warmup import warm_up
from ingest import backoff, broker_check, priority
from ingest.counters import Counters
from ingest.dead_letters import LetterCap, LetterLimits, retention_loop
from ingest.devices import Admission, DeviceRegistry
from ingest.http import HttpListener
from ingest.limits import FdBudget, Limits, raise_fd_limit
from ingest.model import Batch
from ingest.mqtt import MqttIngest
from ingest.tcp import TcpListener
from ingest.udp import UdpListener
from ingest.writer import Writer
from menara import db, logs, position_summary, service_metrics
from menara.rules_feed import RoundPublisher
from menara.settings import Settings
from oms_core.alerts.delivery import Deliverer
from oms_core.api import make_app
from oms_core.api.context import Execution, PositionSink
from oms_core.api.ratelimit import RATE_LIMITER
from oms_core.execution.epod import EpodRules
from oms_core.files import FileStore
from oms_core.geocode import Geocoder
from oms_core.planning.routes import road_providers
from tower.pool import TowerPool
from tower.worker import Tower

log = logging.getLogger(__name__)

REGISTRY_REFRESH_S = 5.0
# Device protocol -> the setting holding its listener port (0 turns it off).
TCP_PORTS = {
    "t55": "t55_port",
    "teltonika": "teltonika_port",
    "gt06": "gt06_port",
    "h02": "h02_port",
    "gps103": "gps103_port",
}
HTTP_PORTS = {"osmand": "osmand_port"}
LISTENER_PORTS = {**TCP_PORTS, **HTTP_PORTS}
UDP_PORTS = {"teltonika": "teltonika_udp_port"}
# Every setting that opens a port for devices or clients (tests turn them all off).
PORT_SETTINGS = (*LISTENER_PORTS.values(), *UDP_PORTS.values(), "api_port")


def make_writer(
    settings: Settings,
    counters: Counters,
    registry: DeviceRegistry,
    on_committed: Callable[[Sequence[Batch]], Awaitable[object]] | None = None,
) -> Writer:
    """The writer as configured, telling ``registry`` about devices it registers and
    handing committed fixes to ``on_committed`` (the tower, or the rounds publisher)."""
    return Writer(
        settings.db_dsn,
        counters=counters,
        batch_rows=settings.writer_batch_rows,
        batch_delay_ms=settings.writer_batch_delay_ms,
        max_pending=settings.writer_max_pending,
        on_registered=registry.mark_registered,
        on_committed=on_committed,
        letters=LetterCap(
            LetterLimits(
                per_peer=settings.dead_letter_max_per_peer,
                per_device=settings.dead_letter_max_per_device,
                total=settings.dead_letter_max_total,
                window_s=settings.dead_letter_window_s,
                max_bytes=settings.dead_letter_max_bytes,
            ),
            counters=counters,
        ),
    )


def make_tower(settings: Settings) -> Tower | TowerPool:
    """The rule workers: ``tower_processes`` processes, or in this process when 0. Their
    clock is the wall clock, or the newest fix time when ``tower_clock`` is ``fleet``
    (replays and sped-up simulations)."""
    config = settings
    fleet = settings.tower_clock == "fleet"
    if settings.tower_processes > 0:
        return TowerPool(
            settings.db_dsn,
            config=config,
            processes=settings.tower_processes,
            fleet_clock=fleet,
            log_setup=functools.partial(logs.configure, settings.log_level),
        )
    tower: Tower

    def fleet_clock() -> float:
        return tower.fleet_time_s

    tower = Tower(settings.db_dsn, config=config, clock=fleet_clock if fleet else time.time)
    return tower


def make_execution(settings: Settings, positions: PositionSink | None) -> Execution:
    """The driver app's, ePOD files' and public pages' settings for the API."""
    return Execution(
        files=FileStore(settings.file_dir),
        upload_max_bytes=settings.upload_max_bytes,
        upload_max_pixels=settings.upload_max_pixels,
        epod=EpodRules(
            signature_required=settings.epod_signature_required,
            max_distance_m=settings.epod_max_distance_m,
            max_clock_skew_s=settings.epod_max_clock_skew_s,
            redelivery_after=timedelta(hours=settings.redelivery_after_h),
        ),
        sign_in_ttl_s=settings.driver_link_ttl_s,
        base_url=settings.base_url(),
        positions=positions,
        public_rate_per_min=settings.public_rate_per_min,
        eta_window_min=settings.notify_eta_window_min,
        webhook_allow_private=settings.webhook_allow_private,
    )


def phone_sink(dsn: str, registry: DeviceRegistry, intake: HttpListener) -> PositionSink:
    """Where the driver page's positions go: the OsmAnd intake, as the driver's phone
    device, which is registered (protocol osmand) on its first position unless an
    operator disabled it or registered it for another protocol."""

    async def sink(device_id: str, frame: bytes) -> tuple[int, str]:
        if registry.admit(device_id, "osmand") in (Admission.REGISTER, Admission.REJECT):
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                await conn.execute(
                    "INSERT INTO devices (device_id, protocol, label) VALUES (%s, 'osmand',"
                    " 'driver phone (driver app)') ON CONFLICT (device_id) DO NOTHING",
                    (device_id,),
                )
                cur = await conn.execute(
                    "SELECT enabled, protocol FROM devices WHERE device_id = %s", (device_id,)
                )
                row = await cur.fetchone()
            if row is not None and row[0] and row[1] is not None:
                registry.mark_registered(device_id, row[1])
        return await intake.submit(frame, "driver-app")

    return sink


def make_deliverer(settings: Settings) -> Deliverer:
    """The outbox: alert webhooks and supervisor email, customer notifications."""
    return Deliverer(
        dsn=settings.db_dsn,
        smtp_host=settings.smtp_host,
        smtp_port=settings.smtp_port,
        smtp_sender=settings.smtp_sender,
        timeout_s=settings.webhook_timeout_s,
        max_attempts=settings.webhook_max_attempts,
        public_url=settings.public_url or None,
        base_url=settings.base_url(),
        eta_window_min=settings.notify_eta_window_min,
        allow_private=settings.webhook_allow_private,
    )


async def serve(
    settings: Settings,
    *,
    counters: Counters,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
) -> None:
    """Run ingest until ``stop`` is set; ``ready`` is set once every listener is up."""
    dsn = settings.db_dsn
    # Device connections share what the open-file limit leaves beyond the reserve.
    fds = FdBudget(settings.fd_reserve, limit=raise_fd_limit())
    limits = Limits(settings.tcp_max_connections, settings.tcp_max_connections_per_peer)
    log.info("open files: limit %d, %d kept for the API and database", fds.limit, fds.reserve)
    await asyncio.to_thread(db.ready, settings)
    registry = DeviceRegistry(policy=settings.unknown_devices, future_fix_s=settings.future_fix_s)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        known = await registry.refresh(conn)
    log.info("devices: %d known, unknown devices: %s", known, settings.unknown_devices)
    # Before any device connects: a first packet would otherwise compile on the event loop.
    log.info("decoders: preparing kernels (after an install they compile: up to a minute)")
    # Meanwhile: does the broker keep what it queues while we are away? (a warning if not)
    checking = settings.mqtt_port > 0 and settings.mqtt_broker_check
    check = asyncio.create_task(broker_check.check(settings, counters)) if checking else None
    took = await asyncio.to_thread(warm_up, PROTOCOLS)
    log.info("decoders: ready in %.1f s", took)
    if check is not None:
        await check

    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(make_deliverer(settings))
        tower: Tower | TowerPool | None = None
        on_committed: Callable[[Sequence[Batch]], Awaitable[object]] | None = None
        if settings.tower_feed == "inline":
            tower = make_tower(settings)
            await stack.enter_async_context(tower)
            on_committed = tower.feed
        elif settings.tower_feed == "mqtt":  # for `menara rules` (menara.rules_cmd)
            publisher = RoundPublisher(settings, counters=counters)
            on_committed = await stack.enter_async_context(publisher)
        writer = await stack.enter_async_context(
            make_writer(settings, counters, registry, on_committed=on_committed)
        )
        listeners: list[TcpListener | HttpListener | UdpListener] = []

        def http_intake(name: str, port: int) -> HttpListener:
            return HttpListener(
                codec=PROTOCOLS[name],
                host=settings.tcp_host,
                port=port,
                max_body_bytes=settings.http_max_body_bytes,
                commit_timeout_s=settings.http_commit_timeout_s,
                writer=writer,
                registry=registry,
                counters=counters,
                limits=limits,
                fds=fds,
            )

        # The OsmAnd intake takes the driver page's positions too, listening or not.
        phones = http_intake("osmand", settings.osmand_port)
        for name, setting in LISTENER_PORTS.items():
            port = int(getattr(settings, setting))
            if port <= 0:
                continue
            listener: TcpListener | HttpListener | UdpListener
            if name in TCP_PORTS:
                listener = TcpListener(
                    codec=PROTOCOLS[name],
                    host=settings.tcp_host,
                    port=port,
                    idle_timeout_s=settings.tcp_idle_timeout_s,
                    max_line_bytes=settings.tcp_max_line_bytes,
                    writer=writer,
                    registry=registry,
                    counters=counters,
                    limits=limits,
                    fds=fds,
                    max_bad_frames=settings.tcp_max_bad_frames,
                )
            else:
                listener = phones if name == "osmand" else http_intake(name, port)
            listeners.append(await stack.enter_async_context(listener))
            kind = "tcp" if name in TCP_PORTS else "http"
            log.info("%s listening on %s %s:%d", name, kind, settings.tcp_host, listener.port)
        if settings.teltonika_udp_port > 0:
            udp = UdpListener(
                protocol=teltonika.NAME,
                decode=teltonika.decode_datagram,
                host=settings.tcp_host,
                port=settings.teltonika_udp_port,
                writer=writer,
                registry=registry,
                counters=counters,
            )
            listeners.append(await stack.enter_async_context(udp))
            log.info("teltonika listening on udp %s:%d", settings.tcp_host, udp.port)
        app: web.Application | None = None
        if settings.api_port > 0:
            matrix, routes = road_providers(
                settings.osrm_url,
                road_factor=settings.plan_road_factor,
                avg_speed_kmh=settings.plan_avg_speed_kmh,
            )
            geocoder = Geocoder(settings.geocoder_url) if settings.geocoder_url else None
            app = make_app(
                dsn,
                max_body_bytes=settings.api_max_body_bytes,
                db_timeout_s=settings.api_db_timeout_s,
                geocoder=geocoder,
                matrix=matrix,
                routes=routes,
                execution=make_execution(settings, phone_sink(dsn, registry, phones)),
            )
            api = web.AppRunner(app, access_log=None)
            await api.setup()
            stack.push_async_callback(api.cleanup)
            await web.TCPSite(api, settings.api_host, settings.api_port).start()
            log.info("api on http://%s:%d/api/v1", settings.api_host, settings.api_port)
            log.info("driver app on %s/driver/", settings.base_url())
            if not settings.public_url:
                log.warning(
                    "public_url is not set: customer and driver links point at %s, which only"
                    " this machine can open; set public_url to the address people reach",
                    settings.base_url(),
                )
        limiter = None if app is None else app[RATE_LIMITER]
        mqtt: MqttIngest | None = None
        if settings.mqtt_port > 0:
            mqtt = MqttIngest(
                settings=settings, writer=writer, registry=registry, counters=counters
            )
            await stack.enter_async_context(mqtt)
        await service_metrics.start_metrics(
            stack,
            settings,
            counters,
            lambda: service_metrics.families(writer, tower, limiter, listeners),
            broker=mqtt,
        )

        background = [
            asyncio.create_task(_refresh_devices(dsn, registry), name="device-refresh"),
            asyncio.create_task(_announce(settings, mqtt, ready), name="ready"),
        ]
        if settings.report_refresh_s > 0:
            refresh = position_summary.refresh_loop(dsn, settings.report_refresh_s)
            background.append(asyncio.create_task(refresh, name="report-refresh"))
        if settings.dead_letter_retention_days > 0:
            prune = retention_loop(dsn, settings.dead_letter_retention_days)
            background.append(asyncio.create_task(prune, name="dead-letter-retention"))
        intakes: list[TcpListener | HttpListener | UdpListener | MqttIngest] = [
            *listeners,
            *([mqtt] if mqtt else []),
        ]
        watched = [
            asyncio.create_task(stop.wait(), name="stop"),
            *(asyncio.create_task(x.wait(), name=service_metrics.intake_name(x)) for x in intakes),
        ]
        try:
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.get_name() != "stop" and not task.cancelled():
                    exc = task.exception()
                    log.error("%s intake stopped (%r): stopping the service", task.get_name(), exc)
            log.info("stopping: closing intake, draining the writer")
            for lis in listeners:
                await lis.stop_reading()
            await writer.drain()  # TCP acks go out while the devices are still connected
            for task in done:
                task.result()  # an intake that failed (its writer died, a bug) fails the service
        finally:
            for task in (*background, *watched):
                task.cancel()
            await asyncio.gather(*background, *watched, return_exceptions=True)
    log.info("stopped")


async def _announce(
    settings: Settings, mqtt: MqttIngest | None, ready: asyncio.Event | None
) -> None:
    """Set ``ready`` once MQTT is subscribed too (a fresh session gets nothing before).

    Everything start-up made (modules, compiled kernels, the API, the rule host's link:
    ~10^5 objects) lives as long as the process, so it is frozen out of the collector
    here: a full collection walked it all, holding the loop 0.1-0.5 s each time a burst
    of thousands of connections set one off (bench_hostile's idle attack).
    """
    if mqtt is not None:
        await mqtt.subscribed()
        log.info("mqtt subscribed at %s:%d", settings.mqtt_host, settings.mqtt_port)
    gc.collect()
    gc.freeze()
    if ready is not None:
        ready.set()


async def _refresh_devices(dsn: str, registry: DeviceRegistry) -> None:
    """Reload ``devices`` every few seconds; a lost database is retried with backoff."""
    delays = backoff.delays()
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                delays = backoff.delays()
                while True:
                    await asyncio.sleep(REGISTRY_REFRESH_S)
                    await registry.refresh(conn)
        except psycopg.Error as exc:
            delay = next(delays)
            log.warning("device refresh failed (%s); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)


def run_blocking(settings: Settings, counters: Counters) -> int:
    """``menara serve``: run until SIGINT/SIGTERM, then stop cleanly; the exit code.

    A second signal abandons the drain (say, the database is gone for good): what was
    not committed is not acked either, so devices and the broker send it again.
    """

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():
                log.warning("second signal: stopping without waiting for the writer")
                for task in asyncio.all_tasks(loop):
                    task.cancel()
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        await serve(settings, counters=counters, stop=stop)

    try:
        priority.run(main())
    except asyncio.CancelledError:
        return 130
    except db.DatabaseError as exc:
        log.error("%s", exc)
        return 1
    except Exception:
        log.exception("ingest service failed")
        return 1
    return 0
