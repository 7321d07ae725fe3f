"""Webhook signatures: HMAC-SHA256 over ``f"{timestamp}.{body}"`` with the webhook's secret.

The timestamp is inside the signed text, so a captured request cannot be replayed later
with a fresh ``X-Menara-Timestamp``. This module uses only the standard library: a
receiver can copy ``verify_signature`` as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["SCHEME", "sign", "verify_signature"]

SCHEME = "sha256="


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def sign(secret: str, timestamp: int, body: str | bytes) -> str:
    """The ``X-Menara-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    signed = f"{timestamp}.".encode() + _as_bytes(body)
    return SCHEME + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    timestamp: str | int,
    body: str | bytes,
    header: str,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """True when ``header`` (X-Menara-Signature) signs ``body`` (the raw request bytes)
    at ``timestamp`` (X-Menara-Timestamp) and that time is within ``tolerance_s`` of
    ``now`` (default: this machine's clock). Compare in constant time; refuse otherwise."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    clock = time.time() if now is None else now
    if abs(clock - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body).encode(), header.encode())
