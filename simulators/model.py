"""Fleet configuration, device identities and run counters, shared by the transports."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from simulators.errors import ConfigError
from simulators.routes import Route

Transport = Literal["mqtt", "tcp", "http"]
# Device protocols a non-MQTT vehicle can speak; all but osmand (HTTP) are TCP.
DEVICE_PROTOCOLS = ("t55", "teltonika", "gt06", "h02", "gps103", "osmand")
# Protocols whose devices are known by a numeric IMEI (H02 ids are digits too).
NEEDS_IMEI = frozenset({"teltonika", "gt06", "gps103", "h02"})

# Fake type allocation code for simulated IMEIs, so they never collide with real devices.
IMEI_TAC = "86999900"


@dataclass(frozen=True)
class FleetConfig:
    """What to simulate and where to send it.

    ``duration_s`` is wall-clock run time when ``realtime``; otherwise fixes are sent as
    fast as possible with fix times advancing by ``1 / rate_hz``, and ``duration_s`` is
    the synthetic time span covered. Either way ``fixes_per_vehicle`` (when set) wins,
    and a vehicle stops retrying an unreachable server once the run's time is up.
    Fault probabilities apply per fix: ``duplicate`` resends a recent fix, ``garbage``
    sends a junk line first, ``split`` (TCP) cuts the write into 2-3 flushed pieces,
    ``disconnect`` (TCP) drops the connection after the fix and reconnects with backoff;
    ``lose_ack`` (protocols with acks) hangs up after writing a fix, before its ack, and
    resends it on the next connection, as a device that never heard back does.
    Non-MQTT vehicles speak ``protocols`` in turn; ``tcp_port`` is T55's port and
    ``ports`` gives the others' (protocol name -> port).
    """

    vehicles: int = 50
    rate_hz: float = 1.0
    duration_s: float = 60.0
    transport: Literal["mixed", "mqtt", "tcp"] = "mixed"
    payload: Literal["nmea", "json"] = "nmea"
    id_prefix: str = "SIM"
    imei: bool = False
    qos: int = 1
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    topic_prefix: str = "menara/v1"
    tcp_host: str = "127.0.0.1"
    tcp_port: int = 5005
    realtime: bool = True
    fixes_per_vehicle: int | None = None
    start_time: datetime | None = None
    seed: int = 1
    routes: tuple[Route, ...] | None = None
    duplicate: float = 0.0
    garbage: float = 0.0
    split: float = 0.0
    disconnect: float = 0.0
    lose_ack: float = 0.0
    ack_timeout_s: float = 10.0
    protocols: tuple[str, ...] = ("t55",)
    ports: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.vehicles <= 1_000_000:
            raise ConfigError(f"vehicles must be 1..1000000, not {self.vehicles}")
        if not (math.isfinite(self.rate_hz) and 0 < self.rate_hz <= 100):
            raise ConfigError("rate_hz must be in (0, 100] (NMEA time has 10 ms steps)")
        if not (math.isfinite(self.duration_s) and self.duration_s >= 0):
            raise ConfigError(f"duration_s must be >= 0, not {self.duration_s}")
        if self.transport not in ("mixed", "mqtt", "tcp"):
            raise ConfigError(f"transport must be mixed, mqtt or tcp, not {self.transport!r}")
        if self.payload not in ("nmea", "json"):
            raise ConfigError(f"payload must be nmea or json, not {self.payload!r}")
        if self.qos not in (0, 1, 2):
            raise ConfigError(f"qos must be 0, 1 or 2, not {self.qos}")
        if not self.id_prefix.isalnum() and self.id_prefix != "":
            raise ConfigError(f"id_prefix {self.id_prefix!r} must be alphanumeric")
        if self.fixes_per_vehicle is not None and self.fixes_per_vehicle < 0:
            raise ConfigError("fixes_per_vehicle must be >= 0")
        if self.start_time is not None and self.start_time.tzinfo is None:
            raise ConfigError("start_time must be timezone-aware")
        if self.routes is not None and not self.routes:
            raise ConfigError("routes must hold at least one route (or be None for Jakarta)")
        bad = [p for p in self.protocols if p not in DEVICE_PROTOCOLS]
        if bad or not self.protocols:
            raise ConfigError(f"protocols must be some of {', '.join(DEVICE_PROTOCOLS)}: {bad}")
        missing = [p for p in self.protocols if p != "t55" and p not in self.ports]
        if missing:
            raise ConfigError(f"no port given for {', '.join(missing)} (FleetConfig.ports)")
        if not self.imei and NEEDS_IMEI & set(self.protocols):
            raise ConfigError(f"{', '.join(sorted(NEEDS_IMEI))} devices need IMEIs: imei=True")
        if not (math.isfinite(self.ack_timeout_s) and self.ack_timeout_s > 0):
            raise ConfigError(f"ack_timeout_s must be > 0, not {self.ack_timeout_s}")
        for name in ("duplicate", "garbage", "split", "disconnect", "lose_ack"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"{name} is a probability in [0, 1], not {p}")

    def port_for(self, protocol: str) -> int:
        """The server port a vehicle speaking ``protocol`` connects to."""
        return self.tcp_port if protocol == "t55" else self.ports[protocol]

    @property
    def fix_count(self) -> int:
        """Fixes each vehicle sends when nothing stops it early."""
        if self.fixes_per_vehicle is not None:
            return self.fixes_per_vehicle
        return math.floor(self.duration_s * self.rate_hz + 1e-9)


def _luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def device_ids(cfg: FleetConfig) -> list[str]:
    """Stable ids: ``<prefix><i:05d>``, or 15-digit IMEIs (valid Luhn digit) with ``imei``."""
    if cfg.imei:
        return [(body := f"{IMEI_TAC}{i:06d}") + _luhn_digit(body) for i in range(cfg.vehicles)]
    return [f"{cfg.id_prefix}{i:05d}" for i in range(cfg.vehicles)]


def transports(cfg: FleetConfig) -> dict[str, Transport]:
    """Which transport each device uses; in mixed mode the first half is MQTT."""
    return {
        d: "mqtt" if p in ("nmea", "menara-json") else _transport(p)
        for d, p in protocols(cfg).items()
    }


def _transport(protocol: str) -> Transport:
    return "http" if protocol == "osmand" else "tcp"


def protocols(cfg: FleetConfig) -> dict[str, str]:
    """The protocol each device speaks: MQTT vehicles ``nmea``/``menara-json``, the others
    ``cfg.protocols`` in turn (in mixed mode the first half is MQTT)."""
    ids = device_ids(cfg)
    mqtt = "menara-json" if cfg.payload == "json" else "nmea"
    first_device = {"mixed": cfg.vehicles // 2, "mqtt": cfg.vehicles}.get(cfg.transport, 0)
    out: dict[str, str] = {}
    for i, d in enumerate(ids):
        k = i - first_device
        out[d] = mqtt if k < 0 else cfg.protocols[k % len(cfg.protocols)]
    return out


class DeviceLink(Protocol):
    """How one vehicle reaches the server; each call is False once the run must end."""

    async def send_fix(self, payload: bytes, key: tuple[str, datetime]) -> bool: ...

    async def send_duplicate(self, payload: bytes) -> bool: ...

    async def send_garbage(self, line: bytes) -> bool: ...

    async def drop(self) -> bool: ...


@dataclass
class TransportStats:
    """Counters of one transport; ``fixes_sent`` counts unique fixes the server took."""

    vehicles: int = 0
    fixes_sent: int = 0
    duplicates_sent: int = 0
    garbage_sent: int = 0
    splits: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    publish_failures: int = 0
    resends: int = 0  # fixes written again because their ack did not come


@dataclass
class FleetStats:
    """Counters of a run; ``sent`` holds every unique (device id, fix time) delivered.

    ``sent`` is left out of the repr, which would otherwise print every fix of a long run.

    "Delivered" means drained into the TCP socket, or acknowledged by the broker
    (PUBACK) at QoS 1 and 2; at QoS 0 it means written to the broker connection.
    """

    mqtt: TransportStats = field(default_factory=TransportStats)
    tcp: TransportStats = field(default_factory=TransportStats)
    http: TransportStats = field(default_factory=TransportStats)
    elapsed_s: float = 0.0
    sent: set[tuple[str, datetime]] = field(default_factory=set, repr=False)

    @property
    def fixes_sent(self) -> int:
        """Unique fixes delivered over both transports."""
        return self.mqtt.fixes_sent + self.tcp.fixes_sent + self.http.fixes_sent

    @property
    def unique_fixes(self) -> int:
        """Size of ``sent``; equals ``fixes_sent`` (kept apart to check one with the other)."""
        return len(self.sent)

    def line(self) -> str:
        """One progress line: per transport what was sent and what went wrong."""
        parts = [f"{self.elapsed_s:6.1f}s"]
        for name in ("mqtt", "tcp", "http"):
            t: TransportStats = getattr(self, name)
            if not t.vehicles and name != "mqtt":
                continue
            parts.append(
                f"{name}: {t.fixes_sent} fixes, {t.duplicates_sent} dup, {t.garbage_sent} junk,"
                f" {t.reconnects} reconn, {t.connect_failures} conn-fail,"
                f" {t.publish_failures} pub-fail, {t.resends} resent"
            )
        return " | ".join(parts)
