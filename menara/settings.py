"""Every setting, declared once: name, type, default and help.

Loaded from an optional TOML file (``MENARA_CONFIG`` or ``--config``) and then from
``MENARA_<NAME>`` environment variables (environment wins), into a frozen dataclass
that is passed into constructors; nothing reads settings as a global.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A setting has a value of the wrong type or outside its allowed set."""


def _s(default: Any, help: str, choices: tuple[str, ...] = ()) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True, slots=True)
class Settings:
    """The effective configuration; see README "Settings" for the same table."""

    db_dsn: str = _s(
        "postgresql://postgres@127.0.0.1:5432/menara",
        "PostgreSQL/TimescaleDB connection string; the database is created if missing.",
    )
    timescale: str = _s(
        "auto",
        "Use TimescaleDB: auto (when CREATE EXTENSION works), on (fail without it), off.",
        ("auto", "on", "off"),
    )
    compress_after: str = _s(
        "7 days", "TimescaleDB: compress position chunks older than this interval."
    )
    retention: str = _s(
        "", "TimescaleDB: drop position chunks older than this interval (empty: keep all)."
    )
    report_refresh_s: float = _s(
        300.0,
        "Plain PostgreSQL: `menara serve` refreshes the vehicle_position_5m summary this"
        " often (0: never; TimescaleDB refreshes it with a continuous-aggregate policy).",
    )
    mqtt_host: str = _s("127.0.0.1", "MQTT broker host.")
    mqtt_port: int = _s(1883, "MQTT broker port (0 turns MQTT ingest off).")
    mqtt_username: str = _s("", "MQTT user name (empty: anonymous).")
    mqtt_password: str = _s("", "MQTT password.")
    mqtt_topic_prefix: str = _s(
        "menara/v1", "Topic prefix; devices publish to <prefix>/<device>/nmea or /json."
    )
    mqtt_client_id: str = _s(
        "menara-ingest", "Client id of the ingest subscriber (its persistent session)."
    )
    mqtt_shared_group: str = _s(
        "", "When set, subscribe as $share/<group>/... so several workers split the load."
    )
    mqtt_qos: int = _s(
        1, "Subscription QoS (0 or 1); QoS 1 is acked only after commit.", ("0", "1")
    )
    mqtt_receive_maximum: int = _s(
        20000, "MQTT v5 Receive Maximum: unacked messages the broker may send us."
    )
    mqtt_session_expiry_s: int = _s(
        86400, "How long the broker keeps our session (and queued fixes) while we are away."
    )
    mqtt_broker_check: bool = _s(
        True,
        "At start, check that the broker keeps QoS 1 messages queued while ingest is away"
        " (1,200 tiny messages on a private topic); warn and count"
        " mqtt_broker_probe_dropped when it drops them.",
    )
    tcp_host: str = _s("0.0.0.0", "Address the device listeners (TCP, UDP, OsmAnd HTTP) bind to.")
    t55_port: int = _s(5005, "T55 (NMEA over TCP) listener port (0 turns it off).")
    teltonika_port: int = _s(5027, "Teltonika (codec 8/8E over TCP) listener port (0: off).")
    teltonika_udp_port: int = _s(5027, "Teltonika UDP (codec 8/8E datagrams) port (0: off).")
    gt06_port: int = _s(5023, "GT06 / Concox listener port (0: off).")
    h02_port: int = _s(5013, "H02 (Sinotrack HQ) listener port (0: off).")
    gps103_port: int = _s(5001, "GPS103 / TK103 listener port (0: off).")
    osmand_port: int = _s(
        5055, "OsmAnd / Traccar Client HTTP port for phones and HTTP trackers (0: off)."
    )
    http_max_body_bytes: int = _s(
        65536, "Largest HTTP request body accepted on osmand_port; larger gets 413."
    )
    http_commit_timeout_s: float = _s(
        10.0, "Answer 503 when a request's fixes are not committed within this (phones retry)."
    )
    tcp_idle_timeout_s: float = _s(
        300.0,
        "Close a device connection after this many seconds without data, or when one"
        " frame takes longer than this to arrive (slowloris).",
    )
    tcp_max_line_bytes: int = _s(
        1024, "Longest text line accepted; longer input is dead-lettered and the link closed."
    )
    tcp_max_connections: int = _s(
        10000,
        "Most open connections per device port (each TCP protocol and osmand_port); one"
        " more is closed at once and counted in connections_refused (0: no limit).",
    )
    tcp_max_connections_per_peer: int = _s(
        1000,
        "Most open connections from one remote address per device port; generous because"
        " trackers behind a carrier NAT share one address (0: no limit).",
    )
    tcp_max_bad_frames: int = _s(
        50,
        "Close a device connection after this many rejected frames in a row without a good"
        " one (garbage); the device may connect again (0: never).",
    )
    fd_reserve: int = _s(
        256,
        "File descriptors kept free for the API, database and broker: device ports refuse"
        " connections beyond the open-file limit (raised to the hard limit at start) minus this.",
    )
    dead_letter_max_per_peer: int = _s(
        100,
        "Dead letters stored per dead_letter_window_s from one remote address; more are"
        " only counted in dead_letters_dropped (0: no cap).",
    )
    dead_letter_max_per_device: int = _s(
        100, "Dead letters stored per dead_letter_window_s naming one device (0: no cap)."
    )
    dead_letter_max_total: int = _s(
        5000, "Dead letters stored per dead_letter_window_s in all (0: no cap)."
    )
    dead_letter_window_s: float = _s(
        3600.0, "The window the dead_letter_max_* caps count in (seconds)."
    )
    dead_letter_max_bytes: int = _s(
        4096, "Raw bytes kept per dead letter; the rest is cut off (0: keep all)."
    )
    dead_letter_retention_days: float = _s(
        7.0, "`menara serve` deletes dead letters older than this, hourly (0: keep all)."
    )
    unknown_devices: str = _s(
        "reject",
        "What to do with a device id not in the devices table: reject (dead-letter) or register.",
        ("reject", "register"),
    )
    writer_batch_rows: int = _s(5000, "Most fixes written in one COPY transaction.")
    writer_batch_delay_ms: int = _s(
        50, "Longest a fix waits for its batch to fill before it is written."
    )
    writer_max_pending: int = _s(
        100000, "Fixes accepted but not yet committed; readers wait (back-pressure) beyond it."
    )
    api_host: str = _s(
        "0.0.0.0", "Address the REST API, driver app and customer tracking pages bind to."
    )
    api_port: int = _s(
        8080, "Order management REST API on http://<api_host>:<port>/api/v1 (0: off)."
    )
    api_max_body_bytes: int = _s(1048576, "Largest API request body; larger gets 413.")
    api_db_timeout_s: float = _s(
        5.0,
        "Longest an API request waits for a database connection; then it is answered"
        " 503 database_unavailable with Retry-After.",
    )
    plan_time_limit_s: float = _s(
        10.0, "How long `menara plan` lets the route optimiser search per depot and day."
    )
    plan_road_factor: float = _s(
        1.3, "Road distance / straight-line distance assumed by the planner's travel times."
    )
    plan_avg_speed_kmh: float = _s(
        30.0, "Average driving speed (km/h) assumed by the planner, lights and traffic included."
    )
    osrm_url: str = _s(
        "",
        "OSRM server base URL (e.g. http://osrm:5000): road travel times and route geometry"
        " for plans (empty: straight legs at plan_avg_speed_kmh × plan_road_factor).",
    )
    geocoder_url: str = _s(
        "",
        "Nominatim-compatible /search base URL used to find coordinates for addresses"
        " entered without them (empty: such addresses are refused).",
    )
    stop_radius_m: float = _s(
        150.0, "Radius of a customer stop's zone; a stop's own radius_m overrides it."
    )
    depot_radius_m: float = _s(300.0, "Radius of a depot's zone (departure and return).")
    arrival_dwell_s: float = _s(
        60.0, "Seconds inside a stop's zone before the stop counts as arrived (geofence)."
    )
    zone_min_inside_s: float = _s(
        20.0, "Seconds inside a zone before an enter event (GPS jitter at the border)."
    )
    zone_min_outside_s: float = _s(
        30.0, "Seconds outside a zone before an exit event (GPS jitter at the border)."
    )
    corridor_m: float = _s(
        300.0, "Route deviation: distance from the planned route beyond which a vehicle is off it."
    )
    corridor_clear_m: float = _s(
        200.0, "Route deviation clears only when the vehicle is back within this distance."
    )
    corridor_min_s: float = _s(
        60.0, "Route deviation: seconds beyond the corridor before an alert."
    )
    corridor_min_fixes: int = _s(
        5, "Route deviation: or this many consecutive fixes beyond the corridor."
    )
    departure_grace_s: float = _s(
        600.0, "Late departure: seconds after the planned departure before an alert."
    )
    eta_margin_s: float = _s(
        300.0, "A stop is at risk when its ETA is later than its window end minus this."
    )
    eta_interval_s: float = _s(30.0, "Recompute a trip's ETAs at most this often (fix time).")
    default_speed_limit_kmh: float = _s(
        90.0, "Speed limit when neither the vehicle nor a speed zone sets one."
    )
    overspeed_tolerance: float = _s(
        1.1, "Overspeed starts above limit × this factor (1.1: 10 % over)."
    )
    overspeed_min_s: float = _s(20.0, "Overspeed: seconds above the limit before an alert.")
    stop_speed_kmh: float = _s(3.0, "Below this speed a vehicle counts as stopped.")
    unplanned_stop_radius_m: float = _s(
        50.0, "An unplanned stop stays within this radius while it lasts."
    )
    unplanned_stop_s: float = _s(
        300.0, "Unplanned stop: stopped this long away from any stop or depot (5 min)."
    )
    idle_s: float = _s(600.0, "Idling: ignition on and not moving this long.")
    silent_after_s: float = _s(
        300.0, "Silent device: no data this long while its vehicle's trip is active."
    )
    max_implied_speed_kmh: float = _s(
        300.0, "Telemetry: a jump implying more than this speed is flagged impossible."
    )
    stale_fix_s: float = _s(
        3600.0, "Telemetry: a fix received this much later than its time is stale."
    )
    future_fix_s: float = _s(
        300.0,
        "A fix time more than this ahead of its receipt is refused at ingest (future_fix,"
        " dead-lettered) and flagged by the tower's telemetry rule.",
    )
    escalate_after_s: float = _s(
        900.0, "Escalate an alert nobody acknowledged within this many seconds."
    )
    tower_clock: str = _s(
        "wall",
        "Clock of the rules that fire on silence (silent device, late departure, escalation):"
        " wall, or fleet = the newest fix time seen (replays and sped-up simulations).",
        ("wall", "fleet"),
    )
    tower_processes: int = _s(
        1,
        "Rule worker processes, vehicles split among them by id (0: the rules run inside"
        " the service process, sharing its core with ingest).",
    )
    tower_feed: str = _s(
        "inline",
        "Where `menara serve` sends committed fixes for the rules: inline (its own rule"
        " workers), mqtt (published on rules_topic for `menara rules`; run that once), off.",
        ("inline", "mqtt", "off"),
    )
    rules_topic: str = _s(
        "menara/tower/v1/rounds",
        "MQTT topic of committed rounds from ingest to `menara rules` (QoS 1; outside"
        " mqtt_topic_prefix's device topics).",
    )
    rules_client_id: str = _s(
        "menara-rules", "Client id of the `menara rules` subscriber (its persistent session)."
    )
    rules_reorder_ms: int = _s(
        1000,
        "`menara rules` holds each round this long so a vehicle's fixes committed by"
        " different ingest processes are evaluated in time order.",
    )
    public_url: str = _s(
        "",
        "Base URL people reach Menara at, for links in emails, customer messages and driver"
        " sign-in links (empty: http://<api_host>:<api_port>, fine on one machine only).",
    )
    file_dir: str = _s(
        "menara-files",
        "Directory of ePOD and complaint images, stored by SHA-256 (relative to the working"
        " directory; mount durable or S3-backed storage here in production).",
    )
    upload_max_bytes: int = _s(
        8388608, "Largest image upload (signature, photo) in bytes; larger gets 413."
    )
    upload_max_pixels: int = _s(
        40000000, "Most pixels (width × height) an uploaded image may have; more gets 413."
    )
    epod_signature_required: bool = _s(
        True, "A delivered or partly delivered order needs the recipient's signature."
    )
    epod_max_distance_m: float = _s(
        250.0,
        "ePOD check: a delivery farther than this from its stop (phone or vehicle position)"
        " is flagged for review.",
    )
    epod_max_clock_skew_s: float = _s(
        300.0, "ePOD check: a phone clock off by more than this is flagged for review."
    )
    redelivery_after_h: float = _s(
        24.0,
        "A failed or short delivery's re-delivery order gets the same window this many hours"
        " later (the dispatcher may change it before verifying).",
    )
    driver_link_ttl_s: float = _s(
        86400.0, "How long a driver's one-time sign-in link stays valid (seconds)."
    )
    public_rate_per_min: int = _s(
        120,
        "Requests per minute per client address on public routes (tracking pages, complaints,"
        " driver sign-in); beyond it 429 (0: no limit).",
    )
    notify_eta_window_min: int = _s(
        60, "Width of the arrival window customer messages give around the ETA (minutes)."
    )
    smtp_host: str = _s(
        "127.0.0.1", "SMTP server for alert emails to depot supervisors and customer emails."
    )
    smtp_port: int = _s(25, "SMTP port (0 turns email off: alerts and customers).")
    smtp_sender: str = _s("menara@localhost", "From address of alert and customer emails.")
    webhook_timeout_s: float = _s(10.0, "A webhook POST that takes longer counts as failed.")
    webhook_allow_private: bool = _s(
        False,
        "Allow webhook URLs whose host is or resolves to a loopback, private, link-local,"
        " multicast or cloud metadata address (refused by default, at registration and"
        " at every send: a token holder could otherwise make Menara reach internal services).",
    )
    webhook_max_attempts: int = _s(
        8, "Attempts per alert delivery (webhook or email) before it is kept as failed."
    )
    metrics_host: str = _s(
        "127.0.0.1",
        "Address /metrics and /healthz bind to; they need no credentials, so loopback by"
        " default (0.0.0.0 where Prometheus scrapes from another host or container).",
    )
    metrics_port: int = _s(
        9464, "Prometheus text metrics on http://<metrics_host>:<port>/metrics (0: off)."
    )
    log_level: str = _s("INFO", "Logging level.", ("DEBUG", "INFO", "WARNING", "ERROR"))

    def base_url(self) -> str:
        """Where people reach Menara: ``public_url``, else the API on this machine."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.local_host(self.api_host)}:{self.api_port or 8080}"

    @staticmethod
    def local_host(host: str) -> str:
        """The address this machine reaches a listener bound to ``host`` at (loopback
        for a wildcard)."""
        return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied and checked."""
        return load(overrides={**dataclasses.asdict(self), **changes}, environ={})


def describe() -> list[tuple[str, str, Any, str]]:
    """(name, type, default, help) for every setting, in declaration order."""
    return [
        (f.name, str(f.type), f.default, str(f.metadata["help"]))
        for f in dataclasses.fields(Settings)
    ]


def _coerce(name: str, typ: str, value: Any) -> Any:
    try:
        if typ == "bool":
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if typ == "int":
            return int(value)
        if typ == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {name}: expected {typ}, got {value!r}") from exc


def load(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Settings from TOML file, then ``MENARA_*`` environment, then ``overrides``."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    cfg = path or env.get("MENARA_CONFIG")
    if cfg:
        p = Path(cfg)
        if not p.is_file():
            raise SettingsError(f"config file {p} not found; fix --config or MENARA_CONFIG")
        with p.open("rb") as fh:
            values.update(tomllib.load(fh))
    known = {f.name: f for f in dataclasses.fields(Settings)}
    for key in values:
        if key not in known:
            raise SettingsError(f"unknown setting {key!r} in {cfg}; see `menara config`")
    for name in known:
        env_val = env.get(f"MENARA_{name.upper()}")
        if env_val is not None:
            values[name] = env_val
    values.update(overrides or {})
    checked: dict[str, Any] = {}
    for name, value in values.items():
        f = known[name]
        v = _coerce(name, str(f.type), value)
        choices = f.metadata["choices"]
        if choices and str(v) not in choices:
            raise SettingsError(f"setting {name}: {v!r} is not one of {', '.join(choices)}")
        checked[name] = v
    return Settings(**checked)
