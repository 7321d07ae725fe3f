"""Decoded frames → a writer ``Batch``, counted the same way for every transport.

TCP, MQTT and HTTP all end here, so the counters and the dead-letter shape are
identical whichever way a fix arrived.
"""

from __future__ import annotations

from collections.abc import Callable

from decoders.model import Decoded
from ingest.counters import Counters
from ingest.devices import Admission, DeviceRegistry
from ingest.model import Batch, DeadLetter, now_us


def to_batch(
    decoded: Decoded,
    *,
    device_id: str,
    transport: str,
    protocol: str,
    peer: str,
    registry: DeviceRegistry,
    counters: Counters,
    raw: bytes = b"",
    on_commit: Callable[[], None] | None = None,
) -> Batch:
    """Count and package one decode result; unadmitted devices become dead letters.

    ``raw`` is the input that produced ``decoded``; it is kept when the device is refused.
    """
    received = now_us()
    letters = [
        DeadLetter(transport, protocol, peer, device_id or None, r.code, r.detail, r.raw, received)
        for r in decoded.rejects
    ]
    for r in decoded.rejects:
        counters.inc("rejects", protocol=protocol, code=r.code)
    if decoded.ignored:
        counters.inc("frames_ignored", decoded.ignored, protocol=protocol)
    fixes, attributes = decoded.fixes, decoded.attributes
    admission = registry.admit(device_id) if len(fixes) else Admission.KNOWN
    if admission is Admission.REJECT:
        counters.inc("rejects", len(fixes), protocol=protocol, code="unknown_device")
        letters.append(
            DeadLetter(
                transport,
                protocol,
                peer,
                device_id,
                "unknown_device",
                f"{len(fixes)} fixes from a device not in `devices` (unknown_devices=reject)",
                raw,
                received,
            )
        )
        fixes, attributes = fixes[:0], ()
    counters.inc("fixes_in", len(fixes), transport=transport, protocol=protocol)
    return Batch(
        device_id=device_id,
        transport=transport,
        protocol=protocol,
        fixes=fixes,
        attributes=attributes,
        dead_letters=tuple(letters),
        register_device=admission is Admission.REGISTER,
        received_us=received,
        on_commit=on_commit,
    )
