"""What handlers share: the connection pool, the clock, verification settings, the
geocoder and road network providers, the caller, and the two steps every handler
repeats (run domain code, read a JSON body)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
from aiohttp import web
from psycopg_pool import ConnectionPool

from oms_core.api.auth import Principal
from oms_core.api.errors import ApiError, invalid
from oms_core.api.schema_check import problems_in
from oms_core.execution.epod import EpodRules
from oms_core.files import FileStore
from oms_core.geocode import AddressNotFound, GeocodeError, Geocoder
from oms_core.planning.matrix import MatrixProvider
from oms_core.planning.routes import RouteProvider
from oms_core.verify import ServiceArea

__all__ = [
    "CTX",
    "PRINCIPAL",
    "Context",
    "Execution",
    "PositionSink",
    "geocode",
    "geocode_refusal",
    "jsonable",
    "load_json",
    "read_json",
    "run",
]

T = TypeVar("T")
# Hands a phone's OsmAnd request body to ingest (device id, body) and answers its HTTP
# status and reason: how the driver page's positions reach the writer without the order
# core importing ingest (``menara.service`` wires it).
PositionSink = Callable[[str, bytes], Awaitable[tuple[int, str]]]


@dataclass(frozen=True, slots=True)
class Execution:
    """What the driver app, ePOD files and the public pages need (defaults as in
    ``menara.settings``)."""

    files: FileStore
    upload_max_bytes: int = 8_388_608
    upload_max_pixels: int = 40_000_000
    epod: EpodRules = field(default_factory=EpodRules)
    sign_in_ttl_s: float = 86_400.0
    base_url: str = "http://127.0.0.1:8080"  # links people open: sign-in, tracking
    positions: PositionSink | None = None  # None: the driver page's positions get 503
    public_rate_per_min: int = 120  # per client address on public routes; 0: no limit
    eta_window_min: int = 60  # the tracking page's arrival window around the ETA
    webhook_allow_private: bool = False  # webhooks may name non-public addresses


@dataclass(frozen=True, slots=True)
class Context:
    """Per-application state, built once by ``make_app``."""

    pool: ConnectionPool[psycopg.Connection[Any]]
    now: Callable[[], datetime]
    min_lead_s: float
    service_area: ServiceArea
    geocoder: Geocoder | None = None  # None: addresses need lat/lon
    matrix: MatrixProvider | None = None  # None: the planner's default (haversine)
    routes: RouteProvider | None = None  # None: straight legs
    execution: Execution = field(default_factory=lambda: Execution(FileStore("menara-files")))


CTX = web.AppKey("oms_context", Context)
PRINCIPAL = web.RequestKey("oms_principal", Principal)


def jsonable(value: Any) -> Any:
    """``value`` (rows, lists, dicts of them) ready for JSON: times as RFC 3339, money
    and other numerics as decimal strings (a float would round cents)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


async def run(request: web.Request, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
    """Run synchronous domain code with a pooled connection, off the event loop."""
    pool = request.app[CTX].pool

    def call() -> T:
        with pool.connection() as conn:
            return fn(conn)

    return await asyncio.to_thread(call)


MAX_JSON_DEPTH = 32  # nested arrays and objects in a request body; the schemas need ≤ 6
# A \\uD800-\\uDFFF escape: the only way a lone surrogate gets into parsed JSON.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_Trail = tuple[Any, ...]  # (parent trail, key), () at the root: a pointer built on failure


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def load_json(raw: bytes) -> Any:
    """``raw`` parsed as JSON, or a 400 ``bad_json`` saying what is wrong: not JSON,
    nested deeper than ``MAX_JSON_DEPTH``, or a string that is not Unicode text (a lone
    UTF-16 surrogate escape, which no database column can store)."""
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError as exc:
        raise _bad_json(f"nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:
        raise _bad_json(str(exc)) from exc
    deep = raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH
    if deep or _SURROGATE_ESCAPE.search(raw):
        _check_tree(value)
    return value


def _bad_json(why: str) -> ApiError:
    return ApiError(400, "bad_json", f"the body is not valid JSON: {why}")


def _check_tree(value: Any) -> None:
    """Walk ``value`` without recursion: its depth, and every string and key is text."""
    todo: list[tuple[Any, int, _Trail]] = [(value, 1, ())]
    while todo:
        item, depth, trail = todo.pop()
        if isinstance(item, str):
            _check_text(item, trail)
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise _bad_json(f"nested deeper than {MAX_JSON_DEPTH} levels")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, sub in pairs:
                if isinstance(key, str):
                    _check_text(key, (trail, key))
                todo.append((sub, depth + 1, (trail, key)))


def _check_text(text: str, trail: _Trail) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        keys: list[str] = []
        while trail:
            trail, key = trail
            keys.append(str(key).encode("utf-8", "backslashreplace").decode()[:40])
        at = "/" + "/".join(reversed(keys))
        bad = f"\\u{ord(text[exc.start]):04x}"
        raise _bad_json(f"{at} holds a lone surrogate {bad}: send Unicode text") from exc


async def read_json(request: web.Request, schema: str) -> dict[str, Any]:
    """The request body parsed and checked against a component schema, or an ``ApiError``."""
    if request.content_type != "application/json":
        raise ApiError(
            415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)"
        )
    body = load_json(await request.read())  # the read raises 413 past client_max_size
    found = problems_in(body, schema)
    if found:
        raise invalid(found)
    assert isinstance(body, dict)  # every request schema is an object
    return body


def geocode_refusal(exc: GeocodeError, field: str) -> ApiError:
    """An address the geocoder could not place is the caller's to fix (422); a geocoder
    that failed is the server's (503): the message says what to do either way."""
    status = 422 if isinstance(exc, AddressNotFound) else 503
    return ApiError(
        status, exc.code, str(exc), [{"code": exc.code, "field": field, "message": str(exc)}]
    )


async def geocode(request: web.Request, text: str, field: str) -> tuple[float, float]:
    """(lat, lon) of ``text`` from the configured geocoder (``field`` names the address
    in errors); the caller checked that one is configured."""
    coder = request.app[CTX].geocoder
    assert coder is not None
    try:
        return await asyncio.to_thread(coder.geocode, text)
    except GeocodeError as exc:
        raise geocode_refusal(exc, field) from exc
