"""Travel distance and time between sites: a pluggable provider, haversine by default.

The solver, the baseline and the checker all ask the same provider for the same sites,
so they agree on every leg. A vehicle's ``max_speed_kmh`` only ever makes legs slower
(``vehicle_durations``), never faster than the provider says.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from oms_core.planning.model import Site

IntMatrix = npt.NDArray[np.int64]
EARTH_RADIUS_M = 6_371_008.8


class MatrixProvider(Protocol):
    """Gives (distance in m, duration in s) square int64 matrices over ``sites``."""

    def matrices(self, sites: Sequence[Site]) -> tuple[IntMatrix, IntMatrix]: ...


class HaversineMatrix:
    """Great-circle distance × ``road_factor``, driven at ``avg_speed_kmh``.

    Defaults: roads are 1.3× the straight line (a common urban detour factor) and the
    average urban delivery speed is 30 km/h including lights and traffic.
    """

    def __init__(self, road_factor: float = 1.3, avg_speed_kmh: float = 30.0) -> None:
        if road_factor < 1.0 or avg_speed_kmh <= 0.0:
            raise ValueError("road_factor must be >= 1 and avg_speed_kmh > 0")
        self.road_factor = road_factor
        self.avg_speed_kmh = avg_speed_kmh

    def matrices(self, sites: Sequence[Site]) -> tuple[IntMatrix, IntMatrix]:
        lat = np.radians(np.array([s.lat for s in sites], dtype=np.float64))
        lon = np.radians(np.array([s.lon for s in sites], dtype=np.float64))
        dlat = lat[:, None] - lat[None, :]
        dlon = lon[:, None] - lon[None, :]
        a = (
            np.sin(dlat / 2) ** 2
            + np.cos(lat)[:, None] * np.cos(lat)[None, :] * np.sin(dlon / 2) ** 2
        )
        metres = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
        dist = np.rint(metres * self.road_factor).astype(np.int64)
        dur = np.rint(dist / (self.avg_speed_kmh / 3.6)).astype(np.int64)
        return dist, dur


class OsrmMatrix:
    """Road distances and times from an OSRM server's table API (one request per call).

    OSRM answers in float metres and seconds; they are rounded to integers. Routes it
    cannot find (``null``) raise ``ValueError`` rather than becoming silent zeros.
    """

    def __init__(self, url: str, *, profile: str = "driving", timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.profile = profile
        self.timeout_s = timeout_s

    def request_url(self, sites: Sequence[Site]) -> str:
        """The table request for ``sites`` (OSRM wants lon,lat)."""
        coords = ";".join(f"{s.lon:.6f},{s.lat:.6f}" for s in sites)
        return f"{self.url}/table/v1/{self.profile}/{coords}?annotations=distance,duration"

    @staticmethod
    def parse(body: bytes, n: int) -> tuple[IntMatrix, IntMatrix]:
        """Turn a table response into the two matrices."""
        doc = json.loads(body)
        if doc.get("code") != "Ok":
            raise ValueError(f"OSRM table failed: {doc.get('code')}: {doc.get('message')}")
        out = []
        for key in ("distances", "durations"):
            rows = doc[key]
            if len(rows) != n or any(v is None for row in rows for v in row):
                raise ValueError(f"OSRM table has no route for some pairs ({key})")
            out.append(np.rint(np.array(rows, dtype=np.float64)).astype(np.int64))
        return out[0], out[1]

    def matrices(self, sites: Sequence[Site]) -> tuple[IntMatrix, IntMatrix]:
        with urllib.request.urlopen(self.request_url(sites), timeout=self.timeout_s) as resp:
            body: bytes = resp.read()
        return self.parse(body, len(sites))


def vehicle_durations(dist: IntMatrix, dur: IntMatrix, max_speed_kmh: float | None) -> IntMatrix:
    """Durations no faster than ``max_speed_kmh`` allows (the matrix itself if None)."""
    if max_speed_kmh is None:
        return dur
    floor = np.ceil(dist / (max_speed_kmh / 3.6)).astype(np.int64)
    return np.maximum(dur, floor)
