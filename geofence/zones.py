"""A zone as the rules see it: an id, a kind and a lon/lat polygon shapely can test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shapely import MultiPolygon, Polygon

__all__ = ["KINDS", "Zone", "ZoneKind"]

ZoneKind = Literal["restricted", "speed", "area"]
KINDS: tuple[ZoneKind, ...] = ("restricted", "speed", "area")  # as the zones table allows


@dataclass(frozen=True, slots=True)
class Zone:
    """One zone; ``geometry`` is in lon/lat (x = lon, y = lat), as GeoJSON has it."""

    id: str
    name: str
    kind: str
    geometry: Polygon | MultiPolygon
    speed_limit_kmh: float | None = None
