"""JSON Schemas of the zones endpoints, merged into ``schemas.SCHEMAS`` (issue 6)."""

from __future__ import annotations

from typing import Any

__all__ = ["ZONES_SCHEMAS"]

ZONES_SCHEMAS: dict[str, dict[str, Any]] = {}
