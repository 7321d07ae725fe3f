"""JSON Schemas of the webhooks endpoints, merged into ``schemas.SCHEMAS`` (issue 6)."""

from __future__ import annotations

from typing import Any

__all__ = ["WEBHOOKS_SCHEMAS"]

WEBHOOKS_SCHEMAS: dict[str, dict[str, Any]] = {}
