"""Coordinates for addresses entered without them, from a Nominatim-compatible server.

Only used when ``geocoder_url`` is configured; without it an address needs lat/lon.
The client is synchronous on purpose: the API calls it in a worker thread (as it does
all domain code) and the importer calls it inside its per-row loop.

    coder = Geocoder("http://nominatim:8080")
    lat, lon = coder.geocode("Damrak 1, Amsterdam")  # or AddressNotFound / GeocoderUnavailable
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request

from oms_core.errors import OmsError

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "USER_AGENT",
    "AddressNotFound",
    "GeocodeError",
    "Geocoder",
    "GeocoderUnavailable",
]

# Nominatim's usage policy asks every client to name itself; the public servers block
# anonymous library user agents.
USER_AGENT = "Menara-OMS/1 (delivery order geocoding)"
DEFAULT_TIMEOUT_S = 10.0


class GeocodeError(OmsError):
    """The address could not be turned into coordinates."""

    code = "geocode_error"


class AddressNotFound(GeocodeError):
    """The geocoder answered but knows no place for the address."""

    code = "address_not_found"


class GeocoderUnavailable(GeocodeError):
    """The geocoder did not answer, failed or answered something unreadable."""

    code = "geocoder_unavailable"


class Geocoder:
    """``GET {url}/search?q=...&format=jsonv2&limit=1``; the first hit's lat/lon."""

    def __init__(
        self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, user_agent: str = USER_AGENT
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"geocoder_url must be an http(s) URL, not {url!r}")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.user_agent = user_agent

    def request_url(self, text: str) -> str:
        """The search request for one free-form address."""
        query = urllib.parse.urlencode({"q": text, "format": "jsonv2", "limit": 1})
        return f"{self.url}/search?{query}"

    def geocode(self, text: str) -> tuple[float, float]:
        """(lat, lon) of ``text``; ``AddressNotFound`` or ``GeocoderUnavailable`` otherwise."""
        request = urllib.request.Request(
            self.request_url(text),
            headers={"User-Agent": self.user_agent, "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                body: bytes = resp.read()
        except urllib.error.HTTPError as exc:
            exc.close()  # its body is not needed; an open one leaks the socket
            raise self._unavailable(f"it answered HTTP {exc.code}") from exc
        except (OSError, TimeoutError) as exc:  # URLError, refused, reset, timed out
            raise self._unavailable(f"no answer: {exc}") from exc
        return self.parse(body, text)

    def parse(self, body: bytes, text: str) -> tuple[float, float]:
        """The first hit of a jsonv2 answer (a JSON array; lat and lon are strings)."""
        try:
            hits = json.loads(body)
            if not isinstance(hits, list):
                raise ValueError("not a JSON array")
            if not hits:
                raise AddressNotFound(
                    f"the geocoder found no place for {text!r}: correct the address"
                    " or give lat and lon"
                )
            lat, lon = float(hits[0]["lat"]), float(hits[0]["lon"])
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise self._unavailable(f"unreadable answer: {exc}") from exc
        if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
            raise self._unavailable(f"it answered coordinates out of range ({lat}, {lon})")
        return lat, lon

    def _unavailable(self, why: str) -> GeocoderUnavailable:
        return GeocoderUnavailable(
            f"the geocoder at {self.url} failed ({why}): give lat and lon with the address,"
            " try again later, or check the geocoder_url setting"
        )
