"""Compile (or load from cache) the NMEA kernel once, before any timed hypothesis example."""

from __future__ import annotations

import pytest

from decoders import nmea
from decoders.model import Session


@pytest.fixture(autouse=True, scope="session")
def _warm_kernel() -> None:
    nmea.decode(b"$GPGGA,000000,0000.0,N,00000.0,E,1,01,1.0,0.0,M,,M,,", session=Session())
