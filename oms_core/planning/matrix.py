"""Travel distance and time between sites: a pluggable provider, haversine by default.

The solver, the baseline and the checker all ask the same provider for the same sites,
so they agree on every leg. A vehicle's ``max_speed_kmh`` only ever makes legs slower
(``vehicle_durations``), never faster than the provider says.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from oms_core.errors import OmsError
from oms_core.planning.model import Site

IntMatrix = npt.NDArray[np.int64]
EARTH_RADIUS_M = 6_371_008.8
# osrm-routed refuses tables with more coordinates than its --max-table-size (default 100).
OSRM_MAX_TABLE_SIZE = 100


class RoutingUnavailable(OmsError):
    """The road network server did not answer or answered something unusable."""

    code = "routing_unavailable"


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
    """Road distances and times from an OSRM server's table API.

    OSRM answers in float metres and seconds; they are rounded to integers. Larger
    problems are asked in blocks of sources × destinations so no request carries more
    than ``max_table_size`` coordinates (osrm-routed's own limit). A failed request or
    a pair without a route raises ``RoutingUnavailable`` rather than becoming zeros.
    """

    def __init__(
        self,
        url: str,
        *,
        profile: str = "driving",
        timeout_s: float = 30.0,
        max_table_size: int = OSRM_MAX_TABLE_SIZE,
    ) -> None:
        if max_table_size < 2:
            raise ValueError("max_table_size must be at least 2")
        self.url = url.rstrip("/")
        self.profile = profile
        self.timeout_s = timeout_s
        self.max_table_size = max_table_size

    def request_url(
        self,
        sites: Sequence[Site],
        sources: Sequence[int] | None = None,
        destinations: Sequence[int] | None = None,
    ) -> str:
        """The table request for ``sites`` (OSRM wants lon,lat), optionally one block."""
        coords = ";".join(f"{s.lon:.6f},{s.lat:.6f}" for s in sites)
        url = f"{self.url}/table/v1/{self.profile}/{coords}?annotations=distance,duration"
        if sources is not None and destinations is not None:
            url += "&sources=" + ";".join(map(str, sources))
            url += "&destinations=" + ";".join(map(str, destinations))
        return url

    @staticmethod
    def parse(body: bytes, n: int, m: int | None = None) -> tuple[IntMatrix, IntMatrix]:
        """Turn a table response of ``n`` sources × ``m`` (default ``n``) destinations
        into the two matrices."""
        doc = json.loads(body)
        if doc.get("code") != "Ok":
            raise ValueError(f"OSRM table failed: {doc.get('code')}: {doc.get('message')}")
        cols = n if m is None else m
        out = []
        for key in ("distances", "durations"):
            rows = doc[key]
            if len(rows) != n or any(len(row) != cols for row in rows):
                raise ValueError(f"OSRM table has the wrong shape ({key})")
            if any(v is None for row in rows for v in row):
                raise ValueError(f"OSRM table has no route for some pairs ({key})")
            out.append(np.rint(np.array(rows, dtype=np.float64)).astype(np.int64))
        return out[0], out[1]

    def matrices(self, sites: Sequence[Site]) -> tuple[IntMatrix, IntMatrix]:
        n = len(sites)
        if n <= self.max_table_size:
            return self._block(sites, n, n, None, None)
        dist = np.zeros((n, n), dtype=np.int64)
        dur = np.zeros((n, n), dtype=np.int64)
        step = self.max_table_size // 2
        for i in range(0, n, step):
            for j in range(0, n, step):
                src, dst = range(i, min(i + step, n)), range(j, min(j + step, n))
                # Each block sends only its own coordinates: sources first, then targets.
                block = [sites[k] for k in src] + [sites[k] for k in dst]
                a, b = len(src), len(dst)
                d, t = self._block(block, a, b, range(a), range(a, a + b))
                dist[i : i + a, j : j + b], dur[i : i + a, j : j + b] = d, t
        return dist, dur

    def _block(
        self,
        sites: Sequence[Site],
        n: int,
        m: int,
        sources: Sequence[int] | None,
        destinations: Sequence[int] | None,
    ) -> tuple[IntMatrix, IntMatrix]:
        url = self.request_url(sites, sources, destinations)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                body: bytes = resp.read()
            return self.parse(body, n, m)
        except urllib.error.HTTPError as exc:
            with exc:  # closes the socket the error holds
                why = f"HTTP {exc.code}: {exc.read()[:200]!r}"
            raise RoutingUnavailable(self._advice(why)) from exc
        except (OSError, TimeoutError, ValueError, KeyError) as exc:
            raise RoutingUnavailable(self._advice(str(exc))) from exc

    def _advice(self, why: str) -> str:
        return (
            f"the OSRM table service at {self.url} failed ({why}): check that it runs and"
            " covers these places, or clear osrm_url to plan with straight-line estimates"
        )


class MemoMatrix:
    """A provider asked once per list of sites (a road server's table is the slow part
    of a small plan, and callers such as the solver and the checker ask alike)."""

    def __init__(self, inner: MatrixProvider) -> None:
        self.inner = inner
        self.seen: dict[tuple[Site, ...], tuple[IntMatrix, IntMatrix]] = {}

    def matrices(self, sites: Sequence[Site]) -> tuple[IntMatrix, IntMatrix]:
        key = tuple(sites)
        if key not in self.seen:
            self.seen[key] = self.inner.matrices(sites)
        return self.seen[key]


def vehicle_durations(dist: IntMatrix, dur: IntMatrix, max_speed_kmh: float | None) -> IntMatrix:
    """Durations no faster than ``max_speed_kmh`` allows (the matrix itself if None)."""
    if max_speed_kmh is None:
        return dur
    floor = np.ceil(dist / (max_speed_kmh / 3.6)).astype(np.int64)
    return np.maximum(dur, floor)
