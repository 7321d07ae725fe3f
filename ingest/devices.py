"""Which device ids may send data, and what happens to the others.

The known set is loaded from ``devices`` and refreshed by the service, so a device
added with SQL or the API is admitted within one refresh interval. Decisions are
made from memory (the MQTT thread and the event loop both ask); registration of an
unknown device, when the policy allows it, is written by the writer in the same
transaction as the device's first fixes.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable

import psycopg


class Admission(enum.Enum):
    """The registry's answer for one device id."""

    KNOWN = "known"
    REGISTER = "register"  # unknown, policy says register it with this batch
    REJECT = "reject"  # unknown or disabled: dead-letter its data


class DeviceRegistry:
    """Known, enabled device ids plus the unknown-device policy (``reject``/``register``)."""

    def __init__(self, *, policy: str, known: Iterable[str] = ()) -> None:
        if policy not in ("reject", "register"):
            raise ValueError(f"unknown_devices must be reject or register, not {policy!r}")
        self.policy = policy
        self._lock = threading.Lock()
        self._known: frozenset[str] = frozenset(known)
        self._disabled: frozenset[str] = frozenset()

    def admit(self, device_id: str) -> Admission:
        with self._lock:
            known, disabled = self._known, self._disabled
        if device_id in known:
            return Admission.KNOWN
        if device_id in disabled or self.policy == "reject":
            return Admission.REJECT
        return Admission.REGISTER

    def mark_registered(self, device_id: str) -> None:
        """Remember a device the writer has just inserted, so it is not re-registered."""
        with self._lock:
            self._known = self._known | {device_id}

    def replace(self, enabled: Iterable[str], disabled: Iterable[str]) -> None:
        with self._lock:
            self._known = frozenset(enabled)
            self._disabled = frozenset(disabled)

    async def refresh(self, conn: psycopg.AsyncConnection[tuple[str, bool]]) -> int:
        """Reload the known set from ``devices``; returns how many are enabled."""
        cur = await conn.execute("SELECT device_id, enabled FROM devices")
        rows = await cur.fetchall()
        await conn.commit()
        self.replace((d for d, e in rows if e), (d for d, e in rows if not e))
        return sum(1 for _, e in rows if e)
