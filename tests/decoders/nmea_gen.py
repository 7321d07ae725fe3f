"""A tiny NMEA encoder for tests: hypothesis strategies that write RMC and GGA sentences.

Kept apart from the decoder on purpose: it builds text from numbers, the decoder
goes the other way, and pynmea2 is the referee.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

from hypothesis import strategies as st

TALKERS = ("GP", "GN", "GL", "GA", "BD", "GB", "GQ")


def with_checksum(body: str) -> str:
    """``$body*HH`` with the XOR checksum of ``body``."""
    return f"${body}*{reduce(lambda a, b: a ^ b, body.encode(), 0):02X}"


@dataclass(frozen=True)
class Coord:
    """``deg`` whole degrees and ``minutes_text`` (e.g. '07.03812'), written [d]ddmm.mmmm."""

    deg: int
    minutes_text: str
    hemi: str

    def text(self, width: int) -> str:
        return f"{self.deg:0{width}d}{self.minutes_text}"


def _minutes() -> st.SearchStrategy[str]:
    return st.builds(
        lambda whole, frac, n: f"{whole:02d}." + f"{frac:0{n}d}"[-n:],
        st.integers(0, 59),
        st.integers(0, 10**9),
        st.integers(1, 9),
    )


def coords(max_deg: int, hemis: str) -> st.SearchStrategy[Coord]:
    return st.builds(Coord, st.integers(0, max_deg - 1), _minutes(), st.sampled_from(hemis))


def _decimal(max_int: int, max_decimals: int) -> st.SearchStrategy[str]:
    return st.builds(
        lambda i, f, n: str(i) if n == 0 else f"{i}." + f"{f:0{n}d}"[-n:],
        st.integers(0, max_int),
        st.integers(0, 10**6),
        st.integers(0, max_decimals),
    )


def times() -> st.SearchStrategy[str]:
    return st.builds(
        lambda h, m, s, frac: f"{h:02d}{m:02d}{s:02d}{frac}",
        st.integers(0, 23),
        st.integers(0, 59),
        st.integers(0, 59),
        st.sampled_from(["", ".0", ".00", ".5", ".25", ".123", ".999"]),
    )


def dates() -> st.SearchStrategy[str]:
    # 2000..2068: where NMEA's two-digit year means the same to us and to strptime.
    return st.builds(
        lambda d, m, y: f"{d:02d}{m:02d}{y:02d}",
        st.integers(1, 28),
        st.integers(1, 12),
        st.integers(0, 68),
    )


@st.composite
def rmc(draw: st.DrawFn) -> str:
    lat, lon = draw(coords(90, "NS")), draw(coords(180, "EW"))
    fields = [
        draw(st.sampled_from(TALKERS)) + "RMC",
        draw(times()),
        draw(st.sampled_from("AV")),
        lat.text(2),
        lat.hemi,
        lon.text(3),
        lon.hemi,
        draw(_decimal(300, 3)),
        draw(st.one_of(_decimal(359, 2), st.just(""))),
        draw(dates()),
        "",
        "",
    ]
    if draw(st.booleans()):
        fields.append(draw(st.sampled_from("ADN")))
    body = ",".join(fields)
    return with_checksum(body) if draw(st.booleans()) else "$" + body


@st.composite
def gga(draw: st.DrawFn) -> str:
    lat, lon = draw(coords(90, "NS")), draw(coords(180, "EW"))
    alt = draw(st.one_of(st.just(""), _decimal(9000, 2), _decimal(400, 1).map(lambda s: "-" + s)))
    fields = [
        draw(st.sampled_from(TALKERS)) + "GGA",
        draw(times()),
        lat.text(2),
        lat.hemi,
        lon.text(3),
        lon.hemi,
        str(draw(st.integers(0, 8))),
        f"{draw(st.integers(0, 40)):02d}",
        draw(_decimal(50, 2)),
        alt,
        "M",
        "46.9",
        "M",
        "",
        "",
    ]
    return with_checksum(",".join(fields))
