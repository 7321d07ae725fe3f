"""Which zones each position is in, for batches of positions: h3 cells narrow, shapely decides.

At build time every zone is covered with h3 cells twice: the cells that *overlap* the zone
(grown by ``MARGIN_DEG`` first) and the cells wholly inside it (shrunk by the same margin
first). A point whose cell is wholly inside a zone is in it without asking shapely; a point
whose cell only overlaps goes to ``shapely.contains_xy`` against that zone's prepared
geometry; a point whose cell the zone does not touch is not in it. The margin (about a
metre) absorbs the difference between h3's cell edges and straight lon/lat edges, so the
prefilter never drops a point shapely says is inside, and a zone smaller than a cell still
gets the cell it lies in. "Inside" means what ``shapely.contains_xy`` says (a point on the
outline is outside). Rings crossing the antimeridian or a pole are not supported.

A padded lon/lat raster of where zones are lets a point far from every zone skip the h3
call; the per-point work of the others is one h3 call, and the rest is numpy over the
distinct cells plus one vectorised ``contains_xy`` over the boundary candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat

import numpy as np
import shapely
from h3 import LatLngPoly
from h3.api import basic_int as h3
from numpy.typing import ArrayLike, NDArray
from shapely import MultiPolygon, Polygon

from geofence.errors import UNKNOWN_ZONE, UnknownZone
from geofence.zones import Zone

__all__ = ["DEFAULT_RESOLUTION", "MARGIN_DEG", "ZoneIndex"]

DEFAULT_RESOLUTION = 9  # cells of about 0.1 km² (edge about 200 m): city zones are 0.1–100 km²
MARGIN_DEG = 1e-5  # about 1 m: far above h3's edge curvature, far below a cell
GRID_STEP_DEG = 0.002  # the lon/lat raster that skips h3 where no zone is (about 200 m)
MAX_GRID = 1024  # raster cells a side: zones spread over a continent get a coarser raster
_GRID_PAD_DEG = 1e-9  # far above float rounding of a raster index, far below any zone
_MASK_BITS = 63  # boundary zones per cell that fit a per-point bitmask
_EMPTY: frozenset[str] = frozenset()
_I64 = NDArray[np.int64]


def _h3shape(p: Polygon) -> LatLngPoly:
    return LatLngPoly(*[[(y, x) for x, y in r.coords[:-1]] for r in [p.exterior, *p.interiors]])


def _cells(geom: Polygon | MultiPolygon, resolution: int, contain: str) -> set[int]:
    if geom.is_empty:
        return set()
    parts = geom.geoms if isinstance(geom, MultiPolygon) else [geom]
    found: set[int] = set()
    for part in parts:  # h3 wants each polygon on its own after a buffer merged or split them
        if isinstance(part, Polygon) and not part.is_empty:
            shape = _h3shape(part)
            found.update(h3.h3shape_to_cells_experimental(shape, resolution, contain=contain))
    return found


class ZoneIndex:
    """Zone membership of positions; exact (same answer as ``shapely.contains_xy``)."""

    def __init__(self, zones: Sequence[Zone], resolution: int = DEFAULT_RESOLUTION) -> None:
        self.resolution = resolution
        self._zones = {z.id: z for z in zones}
        if len(self._zones) != len(zones):
            raise ValueError("zone ids must be unique: two zones would answer to one id")
        ids = list(self._zones)
        self._geoms = np.array([self._zones[i].geometry for i in ids], dtype=object)
        shapely.prepare(self._geoms)
        inside: dict[int, set[str]] = {}
        boundary: dict[int, list[int]] = {}
        for k, zid in enumerate(ids):
            geom = self._zones[zid].geometry
            full = _cells(geom.buffer(-MARGIN_DEG, join_style="mitre"), resolution, "full")
            for cell in full:
                inside.setdefault(cell, set()).add(zid)
            for cell in (
                _cells(geom.buffer(MARGIN_DEG, join_style="mitre"), resolution, "overlap") - full
            ):
                boundary.setdefault(cell, []).append(k)
        table = sorted(inside.keys() | boundary.keys())
        self._table = np.array(table, dtype=np.uint64)
        # One slot per table cell, plus a last slot for "no cell": what a point gets for free.
        sets = [frozenset(inside.get(c, ())) for c in table] + [_EMPTY]
        self._inside = np.empty(len(sets), dtype=object)
        self._inside[:] = sets
        counts = np.array([len(boundary.get(c, ())) for c in table] + [0], dtype=np.int64)
        self._b_count = counts
        self._b_start = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        self._b_zone = np.array([k for c in table for k in boundary.get(c, ())], dtype=np.int64)
        self._ids = np.array(ids, dtype=object)
        bounds = shapely.total_bounds(self._geoms) if ids else np.array([0.0, 0.0, -1.0, -1.0])
        self._bounds = bounds
        self._grid_shape, self._grid_step, self._grid = _raster(self._geoms, bounds)

    def __len__(self) -> int:
        return len(self._zones)

    @property
    def cells(self) -> int:
        """How many h3 cells the index holds (a size figure for logs and benchmarks)."""
        return len(self._table)

    def zone(self, zone_id: str) -> Zone:
        """The zone with this id; ``UnknownZone`` if the index does not hold it."""
        try:
            return self._zones[zone_id]
        except KeyError:
            raise UnknownZone(UNKNOWN_ZONE, f"no zone {zone_id!r} in the index") from None

    def members_of(self, lat: float, lon: float) -> frozenset[str]:
        """The ids of the zones one position is in (NaN or out of range: none)."""
        west, south, east, north = self._bounds
        if not (west <= lon <= east and south <= lat <= north):  # also NaN
            return _EMPTY
        (ny, nx), (sx, sy) = self._grid_shape, self._grid_step
        i, j = min(int((lon - west) / sx), nx - 1), min(int((lat - south) / sy), ny - 1)
        if not self._grid[j * nx + i]:  # the same floor as _on_raster: same answer
            return _EMPTY
        cell = np.uint64(h3.latlng_to_cell(lat, lon, self.resolution))
        s = int(np.searchsorted(self._table, cell))
        if s == self._table.size or self._table[s] != cell:
            return _EMPTY
        start = int(self._b_start[s])
        extra = {
            self._ids[k]
            for k in self._b_zone[start : start + int(self._b_count[s])].tolist()
            if shapely.contains_xy(self._geoms[k], lon, lat)
        }
        found: frozenset[str] = self._inside[s] | extra if extra else self._inside[s]
        return found

    def members(self, lat: ArrayLike, lon: ArrayLike) -> list[frozenset[str]]:
        """The ids of the zones each position is in (NaN or out-of-range: none)."""
        lat_a = np.asarray(lat, dtype=np.float64).ravel()
        lon_a = np.asarray(lon, dtype=np.float64).ravel()
        if lat_a.shape != lon_a.shape:
            raise ValueError(f"lat has {lat_a.size} values, lon {lon_a.size}: pass pairs")
        slot = np.full(lat_a.size, len(self._table), dtype=np.int64)  # "no cell"
        near = np.flatnonzero(self._on_raster(lat_a, lon_a))
        if near.size and self._table.size:
            slot[near] = self._slots(lat_a[near], lon_a[near])
        out = self._inside[slot]
        self._refine(out, slot, lat_a, lon_a)
        result: list[frozenset[str]] = out.tolist()
        return result

    def _on_raster(self, lat: NDArray[np.float64], lon: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Whether each point lies in a raster cell some zone touches (NaN: no)."""
        west, south, east, north = self._bounds
        ok = (lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)
        (ny, nx), (sx, sy) = self._grid_shape, self._grid_step
        i = np.clip(((np.where(ok, lon, west) - west) / sx).astype(np.int64), 0, nx - 1)
        j = np.clip(((np.where(ok, lat, south) - south) / sy).astype(np.int64), 0, ny - 1)
        on: NDArray[np.bool_] = ok & self._grid[j * nx + i]
        return on

    def _slots(self, lat: NDArray[np.float64], lon: NDArray[np.float64]) -> _I64:
        """Table slot of each point's cell (the last slot when no zone touches the cell)."""
        cells = np.fromiter(
            map(h3.latlng_to_cell, lat.tolist(), lon.tolist(), repeat(self.resolution)),
            dtype=np.uint64,
            count=lat.size,
        )
        distinct, back = np.unique(cells, return_inverse=True)
        pos = np.searchsorted(self._table, distinct)
        pos[pos == self._table.size] = 0
        known = self._table[pos] == distinct
        slots: _I64 = np.where(known, pos, self._table.size).astype(np.int64)[back]
        return slots

    def _refine(
        self,
        out: NDArray[np.object_],
        slot: _I64,
        lat: NDArray[np.float64],
        lon: NDArray[np.float64],
    ) -> None:
        """Add the boundary zones shapely says each point is in, in place."""
        count = self._b_count[slot]
        pts = np.flatnonzero(count)
        if not pts.size:
            return
        n = count[pts]
        pair_pt = np.repeat(pts, n)
        first = np.repeat(np.cumsum(n) - n, n)
        local = np.arange(pair_pt.size, dtype=np.int64) - first  # index in the cell's list
        zone = self._b_zone[self._b_start[slot[pair_pt]] + local]
        hit = shapely.contains_xy(self._geoms[zone], lon[pair_pt], lat[pair_pt])
        if not hit.any():
            return
        pair_pt, local, zone = pair_pt[hit], local[hit], zone[hit]
        wide = local >= _MASK_BITS
        narrow = ~wide
        # Points sharing a cell and the same hits get the same set: build each set once.
        mask = np.zeros(slot.size, dtype=np.uint64)
        bits = np.left_shift(np.uint64(1), local[narrow].astype(np.uint64))
        np.bitwise_or.at(mask, pair_pt[narrow], bits)
        hit_pts = np.flatnonzero(mask)
        slots, masks = slot[hit_pts], mask[hit_pts]
        first, back = _groups(slots, masks)
        made = np.empty(first.size, dtype=object)
        for j, (s, m) in enumerate(zip(slots[first].tolist(), masks[first].tolist(), strict=True)):
            start, extra = int(self._b_start[s]), set()
            while m:
                low = m & -m
                extra.add(self._ids[self._b_zone[start + low.bit_length() - 1]])
                m ^= low
            made[j] = self._inside[s] | extra
        out[hit_pts] = made[back]
        for p, k in zip(pair_pt[wide].tolist(), zone[wide].tolist(), strict=True):
            out[p] = out[p] | {self._ids[k]}  # a cell crossed by > 63 zones: rare, slow path


def _groups(slots: _I64, masks: NDArray[np.uint64]) -> tuple[_I64, _I64]:
    """(first member, group of each) of the distinct (slot, mask) pairs: one sort of a
    64-bit mix, checked, instead of a far slower row-wise ``np.unique``."""
    with np.errstate(over="ignore"):
        mixed = masks * np.uint64(0x9E3779B97F4A7C15) ^ slots.astype(np.uint64)
    _, first, back = np.unique(mixed, return_index=True, return_inverse=True)
    back = back.ravel()
    if np.array_equal(slots[first][back], slots) and np.array_equal(masks[first][back], masks):
        return first, back
    keys = np.stack([slots.astype(np.uint64), masks], axis=1)  # a mix collided: exact way
    _, first, back = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return first, back.ravel()


def _raster(
    geoms: NDArray[np.object_], bounds: NDArray[np.float64]
) -> tuple[tuple[int, int], tuple[float, float], NDArray[np.bool_]]:
    """A lon/lat raster over the zones' bounds marking the cells some zone touches, so a
    point far from every zone costs a few numpy operations instead of an h3 call. Boxes
    are padded so a point's floored raster index always names a box that holds it."""
    west, south, east, north = (float(b) for b in bounds)
    nx = int(min(MAX_GRID, max(1, np.ceil((east - west) / GRID_STEP_DEG))))
    ny = int(min(MAX_GRID, max(1, np.ceil((north - south) / GRID_STEP_DEG))))
    sx, sy = max(east - west, 1e-12) / nx, max(north - south, 1e-12) / ny
    jj, ii = np.divmod(np.arange(nx * ny), nx)
    x0, y0 = west + ii * sx - _GRID_PAD_DEG, south + jj * sy - _GRID_PAD_DEG
    boxes = shapely.box(x0, y0, x0 + sx + 2 * _GRID_PAD_DEG, y0 + sy + 2 * _GRID_PAD_DEG)
    grid = np.zeros(nx * ny, dtype=bool)
    if geoms.size:
        touched, _ = shapely.STRtree(geoms).query(boxes, predicate="intersects")
        grid[touched] = True
    return (ny, nx), (sx, sy), grid
