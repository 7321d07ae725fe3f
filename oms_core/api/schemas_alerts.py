"""JSON Schemas of the alerts endpoints, merged into ``schemas.SCHEMAS`` (issue 6)."""

from __future__ import annotations

from typing import Any

__all__ = ["ALERTS_SCHEMAS"]

ALERTS_SCHEMAS: dict[str, dict[str, Any]] = {}
