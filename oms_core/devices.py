"""The device registry as the control room edits it: register, enable/disable, change its
protocol, give it a secret, link it to a vehicle.

Ingest admits a device by its row in ``devices`` (reloaded every few seconds by the
service), so what is written here takes effect without a restart: only in its
``protocol`` (another is refused ``wrong_protocol``; none yet: the first stored fix's),
and, with a secret, only OsmAnd requests carrying it (``key``). The tower finds a
vehicle's fixes through ``vehicles.tracker_device_id``; ``devices.vehicle_id`` mirrors
it, and both are written in one transaction so the two never disagree.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

from oms_core import fleet
from oms_core.errors import NotFound, OmsError

__all__ = [
    "Device",
    "DeviceConflict",
    "clear_secret",
    "get_device",
    "list_devices",
    "new_secret",
    "register_device",
    "set_enabled",
    "set_protocol",
    "track_vehicle",
]

Conn = psycopg.Connection[Any]
# Newest fix per device from the positions primary key (device_id, fix_time): one index probe.
_SELECT = (
    "SELECT d.device_id, d.protocol, d.label, d.enabled, d.vehicle_id, d.created_at,"
    " d.secret_hash IS NOT NULL AS has_secret,"
    " p.fix_time AS last_fix_time FROM devices d LEFT JOIN LATERAL ("
    " SELECT fix_time FROM positions WHERE device_id = d.device_id"
    " ORDER BY fix_time DESC LIMIT 1) p ON true"
)


class DeviceConflict(OmsError):
    """The device id is already registered; nothing was changed."""

    code = "device_exists"


@dataclass(frozen=True, slots=True)
class Device:
    """A registered device and when its newest stored fix was taken (None: none yet)."""

    device_id: str
    protocol: str | None
    label: str | None
    enabled: bool
    vehicle_id: int | None
    created_at: datetime
    has_secret: bool
    last_fix_time: datetime | None


def get_device(conn: Conn, device_id: str) -> Device:
    """The device or ``NotFound``."""
    with conn.cursor(row_factory=class_row(Device)) as cur:
        row = cur.execute(_SELECT + " WHERE d.device_id = %s", (device_id,)).fetchone()
    if row is None:
        raise NotFound(f"no device {device_id!r}: register it with POST /devices")
    return row


def list_devices(
    conn: Conn,
    *,
    after: str | None,
    limit: int,
    enabled: bool | None = None,
    protocol: str | None = None,
) -> list[Device]:
    """Up to ``limit`` devices by id after ``after`` (keyset), optionally filtered."""
    with conn.cursor(row_factory=class_row(Device)) as cur:
        return cur.execute(
            _SELECT + " WHERE (%(after)s::text IS NULL OR d.device_id > %(after)s)"
            " AND (%(enabled)s::boolean IS NULL OR d.enabled = %(enabled)s)"
            " AND (%(protocol)s::text IS NULL OR d.protocol = %(protocol)s)"
            " ORDER BY d.device_id LIMIT %(limit)s",
            {"after": after, "enabled": enabled, "protocol": protocol, "limit": limit},
        ).fetchall()


def _link(conn: Conn, device_id: str, vehicle_id: int) -> None:
    """Make ``device_id`` the vehicle's tracker: the vehicle's previous device (if any)
    is unlinked, and a device linked to another vehicle is moved to this one."""
    fleet.get_vehicle(conn, vehicle_id)  # NotFound for an unknown vehicle
    conn.execute(
        "UPDATE vehicles SET tracker_device_id = NULL WHERE tracker_device_id = %s AND id <> %s",
        (device_id, vehicle_id),
    )
    _unlink_others(conn, vehicle_id, device_id)
    conn.execute(
        "UPDATE vehicles SET tracker_device_id = %s WHERE id = %s", (device_id, vehicle_id)
    )


def register_device(
    conn: Conn,
    device_id: str,
    *,
    protocol: str,
    label: str | None = None,
    vehicle_id: int | None = None,
) -> Device:
    """Register a new, enabled device (optionally as a vehicle's tracker); an id already
    registered raises ``DeviceConflict``, an unknown vehicle ``NotFound``."""
    with conn.transaction():
        try:
            conn.execute(
                "INSERT INTO devices (device_id, protocol, label, vehicle_id)"
                " VALUES (%s, %s, %s, %s)",
                (device_id, protocol, label, vehicle_id),
            )
        except psycopg.errors.UniqueViolation as exc:
            raise DeviceConflict(
                f"device {device_id!r} is already registered: enable or disable it instead"
            ) from exc
        if vehicle_id is not None:
            _link(conn, device_id, vehicle_id)
    return get_device(conn, device_id)


def set_enabled(conn: Conn, device_id: str, enabled: bool) -> Device:
    """Enable or disable a device (a disabled device's data is refused and kept as dead
    letters); ``NotFound`` for an unregistered one."""
    cur = conn.execute("UPDATE devices SET enabled = %s WHERE device_id = %s", (enabled, device_id))
    if cur.rowcount != 1:
        raise NotFound(f"no device {device_id!r}: register it with POST /devices")
    return get_device(conn, device_id)


def set_protocol(conn: Conn, device_id: str, protocol: str) -> Device:
    """Bind a device to ``protocol`` (its data in any other is refused from the next
    registry reload on); ``NotFound`` for an unregistered one."""
    cur = conn.execute(
        "UPDATE devices SET protocol = %s WHERE device_id = %s", (protocol, device_id)
    )
    if cur.rowcount != 1:
        raise NotFound(f"no device {device_id!r}: register it with POST /devices")
    return get_device(conn, device_id)


def new_secret(conn: Conn, device_id: str) -> str:
    """Give the device a new random secret (replacing any) and return it: only its
    SHA-256 is stored (ingest.devices.hash_secret computes the same), so it is shown once.
    ``NotFound`` for an unregistered device."""
    secret = secrets.token_urlsafe(32)  # 256 bits: a fast hash is enough, as for API tokens
    digest = hashlib.sha256(secret.encode()).hexdigest()
    cur = conn.execute(
        "UPDATE devices SET secret_hash = %s WHERE device_id = %s", (digest, device_id)
    )
    if cur.rowcount != 1:
        raise NotFound(f"no device {device_id!r}: register it with POST /devices")
    return secret


def clear_secret(conn: Conn, device_id: str) -> Device:
    """Let the device send without a secret again; ``NotFound`` for an unregistered one."""
    cur = conn.execute("UPDATE devices SET secret_hash = NULL WHERE device_id = %s", (device_id,))
    if cur.rowcount != 1:
        raise NotFound(f"no device {device_id!r}: register it with POST /devices")
    return get_device(conn, device_id)


def track_vehicle(conn: Conn, vehicle_id: int, device_id: str | None, protocol: str | None) -> None:
    """Mirror ``vehicles.tracker_device_id`` into ``devices``: register the tracker, or
    link it if already registered (its protocol is kept unless one is given; a disabled
    device stays disabled), and unlink the vehicle's other devices (all when ``device_id``
    is None). Run it in the transaction that sets ``tracker_device_id``."""
    if device_id is not None:
        conn.execute(
            "INSERT INTO devices (device_id, protocol, label, vehicle_id) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (device_id) DO UPDATE SET vehicle_id = EXCLUDED.vehicle_id,"
            " protocol = coalesce(EXCLUDED.protocol, devices.protocol)",
            (device_id, protocol, f"tracker of vehicle {vehicle_id}", vehicle_id),
        )
    _unlink_others(conn, vehicle_id, device_id)


def _unlink_others(conn: Conn, vehicle_id: int, device_id: str | None) -> None:
    """No device but ``device_id`` (none when None) stays linked to the vehicle."""
    conn.execute(
        "UPDATE devices SET vehicle_id = NULL"
        " WHERE vehicle_id = %s AND device_id IS DISTINCT FROM %s",
        (vehicle_id, device_id),
    )
