"""Virtual delivery vehicles that drive Jakarta routes and speak real tracker bytes.

    import asyncio
    from simulators import FleetConfig, run_fleet

    cfg = FleetConfig(vehicles=10, duration_s=30, transport="mqtt", duplicate=0.05)
    stats = asyncio.run(run_fleet(cfg))
    print(stats.mqtt.fixes_sent, "fixes acknowledged by the broker")

TCP vehicles speak T55 (``$PGID`` then RMC+GGA per fix), MQTT vehicles publish NMEA or
the Menara JSON fix; ``nmea_out`` holds the sentence encoders, ``routes`` the sample
routes and the GeoJSON loader. Imports no project package except ``ingest.backoff``.
"""

from __future__ import annotations

from simulators.errors import ConfigError, EncodeError, RouteError, SimulatorError
from simulators.fleet import run_fleet
from simulators.model import FleetConfig, FleetStats, TransportStats, device_ids, transports
from simulators.routes import JAKARTA_ROUTES, Route, load_geojson

__all__ = [
    "JAKARTA_ROUTES",
    "ConfigError",
    "EncodeError",
    "FleetConfig",
    "FleetStats",
    "Route",
    "RouteError",
    "SimulatorError",
    "TransportStats",
    "device_ids",
    "load_geojson",
    "run_fleet",
    "transports",
]
