"""Which device ids may send data, over which protocol, and what happens to the others.

The known set is loaded from ``devices`` and refreshed by the service, so a device
added with SQL or the API is admitted within one refresh interval. Decisions are
made from memory (the MQTT thread and the event loop both ask); registration of an
unknown device, when the policy allows it, is written by the writer in the same
transaction as the device's first fixes.

A device is bound to its registered protocol (``devices.protocol``, a decoder name:
Teltonika over TCP and over UDP are both ``teltonika``; MQTT's ``/nmea`` and ``/json``
topics are ``nmea`` and ``menara-json``, two protocols). Data from it in any other
protocol is refused as ``wrong_protocol``: an IMEI copied into an OsmAnd URL or a GT06
login is not the device. One registered without a protocol is bound by the writer to
the protocol of its first stored fix; from the first admitted batch on, this registry
holds that protocol as a claim, so a second protocol racing the commit is refused too.

The registry also holds each device's optional secret (its SHA-256; the HTTP intake
checks it) and the ``future_fix_s`` bound every intake applies before storing.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import threading
from collections.abc import Iterable, Mapping

import psycopg

DEFAULT_FUTURE_FIX_S = 300.0


class Admission(enum.Enum):
    """The registry's answer for one device id and protocol."""

    KNOWN = "known"
    BIND = "bind"  # registered without a protocol: this batch's protocol becomes its own
    REGISTER = "register"  # unknown, policy says register it with this batch
    REJECT = "unknown_device"  # unknown or disabled: dead-letter its data
    WRONG_PROTOCOL = "wrong_protocol"  # registered for another protocol: dead-letter

    @property
    def refused(self) -> bool:
        return self in (Admission.REJECT, Admission.WRONG_PROTOCOL)

    @property
    def writes_device(self) -> bool:
        """The writer inserts the device, or binds its protocol, with this batch."""
        return self in (Admission.BIND, Admission.REGISTER)


def hash_secret(secret: str) -> str:
    """What ``devices.secret_hash`` holds: a SHA-256 is enough for a random secret."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


class DeviceRegistry:
    """Known devices with their protocol and secret, plus the unknown-device policy
    (``reject``/``register``) and how far ahead of its receipt a fix may be."""

    def __init__(
        self,
        *,
        policy: str,
        known: Mapping[str, str | None] | Iterable[str] = (),
        future_fix_s: float = DEFAULT_FUTURE_FIX_S,
    ) -> None:
        if policy not in ("reject", "register"):
            raise ValueError(f"unknown_devices must be reject or register, not {policy!r}")
        self.policy = policy
        self.future_fix_s = future_fix_s
        self._lock = threading.Lock()
        self._protocols: dict[str, str | None] = _as_protocols(known)  # enabled devices
        self._disabled: frozenset[str] = frozenset()
        self._claims: dict[str, str] = {}  # unbound or unknown device -> first admitted protocol
        self._secrets: dict[str, str] = {}

    def admit(self, device_id: str, protocol: str) -> Admission:
        """May ``device_id`` send data in ``protocol``? No side effect (see ``claim``)."""
        with self._lock:
            known = device_id in self._protocols
            if not known and (device_id in self._disabled or self.policy == "reject"):
                return Admission.REJECT
            registered = self._protocols.get(device_id)
            bound = registered or self._claims.get(device_id)
        if bound is not None and bound != protocol:
            return Admission.WRONG_PROTOCOL
        if registered is not None:
            return Admission.KNOWN
        return Admission.BIND if known else Admission.REGISTER

    def claim(self, device_id: str, protocol: str) -> None:
        """Hold ``protocol`` as the device's own until the writer binds it (``BIND`` and
        ``REGISTER`` batches); the first claim stands."""
        with self._lock:
            self._claims.setdefault(device_id, protocol)

    def secret_matches(self, device_id: str, secret: str | None) -> bool:
        """True when the device has no secret, or ``secret`` is it."""
        with self._lock:
            expected = self._secrets.get(device_id)
        if expected is None:
            return True
        return secret is not None and hmac.compare_digest(hash_secret(secret), expected)

    def mark_registered(self, device_id: str, protocol: str) -> None:
        """Remember a device the writer has just inserted or bound to ``protocol``."""
        with self._lock:
            self._protocols[device_id] = protocol
            self._claims.pop(device_id, None)

    def replace(
        self,
        enabled: Mapping[str, str | None] | Iterable[str],
        disabled: Iterable[str],
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        """Take a new snapshot of ``devices``; ``enabled`` maps an id to its protocol
        (None: not bound yet), ``secrets`` an id to its secret's hash. A claim survives
        only while the snapshot still has no protocol for its device."""
        protocols = _as_protocols(enabled)
        off = frozenset(disabled)
        with self._lock:
            self._protocols = protocols
            self._disabled = off
            self._claims = {
                d: p for d, p in self._claims.items() if protocols.get(d) is None and d not in off
            }
            self._secrets = dict(secrets or {})

    async def refresh(
        self, conn: psycopg.AsyncConnection[tuple[str, bool, str | None, str | None]]
    ) -> int:
        """Reload the known set from ``devices``; returns how many are enabled."""
        cur = await conn.execute("SELECT device_id, enabled, protocol, secret_hash FROM devices")
        rows = await cur.fetchall()
        await conn.commit()
        self.replace(
            {d: p for d, e, p, _ in rows if e},
            (d for d, e, _, _ in rows if not e),
            {d: h for d, _, _, h in rows if h is not None},
        )
        return sum(1 for _, e, _, _ in rows if e)


def _as_protocols(known: Mapping[str, str | None] | Iterable[str]) -> dict[str, str | None]:
    if isinstance(known, Mapping):
        return dict(known)
    return dict.fromkeys(known)
