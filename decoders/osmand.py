"""OsmAnd / Traccar Client over HTTP: a tracking URL's query string or a phone app's JSON.

A frame is one request's data, as Traccar's ``OsmAndProtocolDecoder`` reads it: a query
string or form body (``id=…&lat=…&lon=…&timestamp=…``; a leading ``/?`` or URL is skipped)
or, when it starts with ``{``, the background-geolocation SDK JSON of Traccar Client 9+
(``{"location": {"timestamp", "coords", "battery", …}, "device_id"}``; ``location`` may be
a list, the SDK's batch sync; parsed in ``_osmand_json``). ``split_frames`` gives one frame
per line (files); the HTTP intake hands each request to ``decode_frames`` whole.

Query parameters, as Traccar: ``id``/``deviceid``; ``lat``+``lon`` or ``location=lat,lon``;
``timestamp`` (an integer below 2^31-1 is unix seconds, else milliseconds; with ``T`` ISO
8601; else ``yyyy-MM-dd HH:mm:ss``, optionally ``.SSS``); ``speed`` in knots (Traccar's
unit here; JSON speed is m/s); ``bearing``/``heading``; ``altitude``; ``accuracy``;
``hdop``; ``batt`` (%); ``valid`` (``true``/``1``; default true); ``charge``;
``ignition`` (true/false, 1/0 or on/off, any case); ``odometer`` (metres); ``sat``;
``cell`` (the first ``mcc,mnc,lac,cid[,rssi]``); ``alarm``. Empty values are skipped, a
repeated parameter's last value wins. Other parameters become attributes typed as Traccar
types them (number, boolean, text): at most ``MAX_EXTRA``, keys up to ``MAX_KEY``, texts
up to ``MAX_TEXT`` characters; vocabulary names and what jsonb cannot store are dropped.
An optional reading that is negative (a phone's -1) or outside its physical range is
left unknown rather than spoiling the position.

Where Traccar differs, because a decoder is pure (no clock, no last position): no
timestamp is ``no_time`` (Traccar uses the server time; the phone apps send one, but a
hand-made tracking URL may not), no
coordinates is ``no_fix`` (Traccar copies the last position), and a time without an
offset is UTC (Traccar: the server's zone). Other rejects: ``no_identity``,
``bad_identity``, ``conflicting_identity`` (two ids in one request), ``identity_changed``
(not the session's device), ``bad_number``, ``bad_coordinates``, ``bad_date`` (also before
the GPS epoch 1980-01-06 or after 2099), ``bad_json``, ``too_many_fields``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

from decoders import _osmand_fields as osm
from decoders import _osmand_json
from decoders import attributes as attr
from decoders.model import Decoded, Reject, Session, empty_fixes

NAME = "osmand"

# The caps (``_osmand_fields`` holds them with the checks that apply them).
MAX_FIELDS, MAX_EXTRA, MAX_KEY, MAX_TEXT = osm.MAX_FIELDS, osm.MAX_EXTRA, osm.MAX_KEY, osm.MAX_TEXT


def split_frames(buf: bytes) -> tuple[list[bytes], bytes]:
    """One request per line (``\\r\\n`` or ``\\n``); the unterminated tail is the rest."""
    lines = buf.split(b"\n")
    rest = lines.pop()
    return [ln.removesuffix(b"\r") for ln in lines], rest


def decode(frame: bytes, *, session: Session) -> Decoded:
    """Decode one request."""
    return decode_frames([frame], session=session)


def decode_frames(frames: Sequence[bytes], *, session: Session) -> Decoded:
    """Decode requests in order; each names its device and must match the session's."""
    rows: list[osm.Row] = []
    rejects: list[Reject] = []
    named: str | None = None
    for frame in frames:
        body = frame.strip()
        if not body:
            continue
        try:
            ident, elements = _osmand_json.parse(body) if body[:1] == b"{" else _query(body)
        except osm.Invalid as exc:
            rejects.append(Reject(exc.code, exc.detail, frame))
            continue
        owner = session.device_id
        if owner is not None and owner != ident:
            rejects.append(Reject("identity_changed", f"connection belongs to {owner}", frame))
            continue
        if owner is None:
            session = replace(session, device_id=ident)
        named = named or ident
        for row, raw in elements:
            if isinstance(row, osm.Invalid):
                rejects.append(Reject(row.code, row.detail, raw or frame))
            else:
                rows.append(row)
    fixes = empty_fixes(len(rows))
    for i, (cols, _) in enumerate(rows):
        for name, value in cols.items():
            fixes[name][i] = value
    attributes = tuple(a for _, a in rows)
    return Decoded(
        fixes=fixes,
        session=session,
        attributes=attributes if any(attributes) else (),
        device_id=named,
        rejects=tuple(rejects),
    )


# -- query strings -----------------------------------------------------------------


def _query(body: bytes) -> tuple[str, osm.Elements]:
    text = body.decode("utf-8", "replace")
    head, sep, tail = text.partition("?")
    if sep and "=" not in head and "&" not in head:  # "/?id=…" or a whole URL
        text = tail
    try:
        pairs = parse_qsl(text, max_num_fields=osm.MAX_FIELDS, errors="replace")
    except ValueError as exc:
        raise osm.Invalid("too_many_fields", f"more than {osm.MAX_FIELDS} parameters") from exc
    ids = {value for key, value in pairs if key in ("id", "deviceid")}
    if len(ids) > 1:
        raise osm.Invalid("conflicting_identity", f"several device ids: {sorted(ids)!r}"[:200])
    return osm.identity(next(iter(ids), None)), [osm.attempt(_query_row, pairs, b"")]


def _query_row(pairs: list[tuple[str, str]]) -> osm.Row:
    cols: dict[str, Any] = {"valid": True}
    attrs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    lat = lon = None
    for key, value in pairs:
        match key:
            case "id" | "deviceid":
                pass
            case "lat":
                lat = osm.parse_number(key, value)
            case "lon":
                lon = osm.parse_number(key, value)
            case "location":
                parts = value.split(",")
                lat = osm.parse_number("location", parts[0])
                lon = osm.parse_number("location", parts[1] if len(parts) > 1 else "")
            case "timestamp":
                cols["fix_time_us"] = osm.time_us(value)
            case "valid":
                cols["valid"] = value.lower() == "true" or value == "1"
            case "speed":
                osm.put(
                    cols,
                    "speed_kmh",
                    osm.parse_number(key, value) * osm.KMH_PER_KNOT,
                    osm.SPEED_KMH,
                )
            case "bearing" | "heading":
                osm.put(cols, "course_deg", osm.parse_number(key, value), osm.COURSE)
            case "altitude":
                osm.put(cols, "altitude_m", osm.parse_number(key, value), osm.ALTITUDE)
            case "hdop":
                osm.put(cols, "hdop", osm.parse_number(key, value), osm.HDOP)
            case "odometer":
                osm.put(cols, "odometer_m", osm.parse_number(key, value), osm.ODOMETER)
            case "sat":
                osm.put(cols, "satellites", osm.parse_integer(key, value), osm.SATS)
            case "ignition":
                cols["ignition"] = int(osm.parse_flag(key, value))
            case "accuracy":
                osm.put(attrs, attr.ACCURACY_M, osm.parse_number(key, value), osm.POSITIVE)
            case "batt":
                osm.put(attrs, attr.BATTERY_LEVEL_PCT, osm.parse_number(key, value), osm.PCT)
            case "charge":
                attrs[attr.CHARGING] = value.lower() == "true"
            case "motion":
                attrs[attr.MOTION] = osm.parse_flag(key, value)
            case "cell":
                attrs.setdefault(attr.CELL, _cell(value))
            case "alarm":
                attrs.update(osm.alarm(value))
            case _:
                osm.put_extra(extra, key, _typed(value))
    if lat is None or lon is None:
        raise osm.Invalid("no_fix", "request carries no position")
    osm.set_coordinates(cols, lat, lon)
    if "fix_time_us" not in cols:
        raise osm.Invalid("no_time", "request carries no timestamp")
    return cols, extra | attrs


def _typed(value: str) -> float | bool | str:
    """A value as Traccar types an unknown parameter: number, boolean, else text."""
    if osm.NUMBER.fullmatch(value):
        number = float(value)
        if math.isfinite(number):
            return number
    return {"true": True, "false": False}.get(value, value)


def _cell(value: str) -> dict[str, int]:
    parts = value.split(",")
    if len(parts) < 4 or not all(osm.INTEGER.fullmatch(p) for p in parts[:4]):
        raise osm.Invalid("bad_number", f"cell {value[:40]!r} is not mcc,mnc,lac,cid")
    mcc, mnc, lac, cid = (int(p) for p in parts[:4])
    return {"mcc": mcc, "mnc": mnc, "lac": lac, "cid": cid}
