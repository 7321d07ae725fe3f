"""The invariant every decoded fix must satisfy, whatever the protocol or input."""

from __future__ import annotations

import math

import numpy as np

from decoders.model import FIX_DTYPE, Decoded

# 2100-01-01 in microseconds: later than any real fix, earlier than overflow garbage.
FAR_FUTURE_US = 4_102_444_800_000_000
# 1980-01-06, the GPS epoch: nothing a receiver reports is older.
GPS_EPOCH_US = 315_964_800_000_000


def check_fixes(decoded: Decoded) -> None:
    """Fail if any fix breaks a unit or range rule (lat/lon, speed, time, counts)."""
    fixes = decoded.fixes
    assert fixes.dtype == FIX_DTYPE
    if decoded.attributes:
        assert len(decoded.attributes) == len(fixes)
    for row in fixes:
        lat, lon = float(row["lat"]), float(row["lon"])
        assert -90.0 <= lat <= 90.0, lat
        assert -180.0 <= lon <= 180.0, lon
        assert GPS_EPOCH_US <= int(row["fix_time_us"]) < FAR_FUTURE_US, row
        speed = float(row["speed_kmh"])
        assert math.isnan(speed) or speed >= 0.0, speed
        course = float(row["course_deg"])
        assert math.isnan(course) or 0.0 <= course <= 360.0, course
        hdop = float(row["hdop"])
        assert math.isnan(hdop) or hdop >= 0.0, hdop
        assert int(row["satellites"]) >= -1
        assert int(row["ignition"]) in (-1, 0, 1)
        for name in ("altitude_m", "odometer_m"):
            assert not np.isinf(row[name])
    for rej in decoded.rejects:
        assert rej.code and rej.code == rej.code.lower() and " " not in rej.code
        assert isinstance(rej.raw, bytes)
