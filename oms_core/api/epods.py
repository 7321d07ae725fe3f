"""What dispatchers read of deliveries: an order's ePOD with its automatic checks and
perfect-delivery row, the ePODs flagged for review, the images, and the trips' COD
settlements.

Images are served with the type recorded at upload, ``nosniff`` and a CSP that forbids
everything, so even a file that slipped past the checks could not run as a page.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from aiohttp import web
from psycopg.rows import dict_row

from oms_core.api.auth import Role
from oms_core.api.context import CTX, jsonable, run
from oms_core.api.schemas import MAX_ID
from oms_core.api.spec import PAGE_PARAMS, PREFIX, Operation, Param, parse_params
from oms_core.errors import NotFound

__all__ = ["FILE_HEADERS", "OPERATIONS", "epod_view"]

Conn = psycopg.Connection[Any]
_READ = frozenset({Role.DISPATCHER, Role.SUPERVISOR})
_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_SHA = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_ERR = "Error"
FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, max-age=86400, immutable",  # content-addressed: never changes
}
_EPOD = """
SELECT e.id, e.order_id, o.tracking_number, e.trip_id, e.stop_id, e.driver_id, e.outcome,
       e.reason_code, e.recipient_name, e.notes, e.signature_sha256, e.cod_collected, e.at,
       e.lat, e.lon, e.accuracy_m, e.checks, e.needs_review, e.created_at
FROM epods e JOIN orders o ON o.id = e.order_id
"""


def _file(sha: str | None) -> dict[str, str] | None:
    return None if sha is None else {"sha256": sha, "url": f"{PREFIX}/files/{sha}"}


def epod_view(conn: Conn, row: dict[str, Any]) -> dict[str, Any]:
    """One ePOD row with its lines, photos and perfect-delivery row, as JSON."""
    with conn.cursor(row_factory=dict_row) as cur:
        lines = cur.execute(
            "SELECT l.line_no, ol.sku, ol.qty, l.delivered_qty, l.damaged_qty FROM epod_lines l"
            " JOIN order_lines ol ON ol.order_id = %s AND ol.line_no = l.line_no"
            " WHERE l.epod_id = %s ORDER BY l.line_no",
            (row["order_id"], row["id"]),
        ).fetchall()
        photos = cur.execute(
            "SELECT sha256 FROM epod_photos WHERE epod_id = %s ORDER BY seq", (row["id"],)
        ).fetchall()
        pd = cur.execute(
            "SELECT on_time, on_time_reason, in_full, in_full_reason, damage_free, damage_reason,"
            " documents_accurate, documents_reason, perfect, arrival FROM perfect_deliveries"
            " WHERE order_id = %s",
            (row["order_id"],),
        ).fetchone()
    out = {k: jsonable(v) for k, v in row.items() if k != "signature_sha256"}
    out["signature"] = _file(row["signature_sha256"])
    out["photos"] = [_file(p["sha256"]) for p in photos]
    out["lines"] = lines
    out["perfect_delivery"] = jsonable(pd)
    return out


def _order_epod(conn: Conn, order_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_EPOD + " WHERE e.order_id = %s", (order_id,)).fetchone()
    if row is None:
        raise NotFound(f"order {order_id} has no proof of delivery (yet)")
    return epod_view(conn, row)


async def get_order_epod(request: web.Request) -> web.Response:
    order_id = parse_params(request, _OPS["getOrderEpod"])["id"]
    return web.json_response(await run(request, lambda c: _order_epod(c, order_id)))


async def list_epods(request: web.Request) -> web.Response:
    """Newest first (keyset on id); ``needs_review`` and ``trip_id`` narrow it."""
    q = parse_params(request, _OPS["listEpods"])
    limit, cursor = q.get("limit", 50), q.get("cursor")
    clauses = {
        "e.needs_review = %s": None if "needs_review" not in q else q["needs_review"] == "true",
        "e.trip_id = %s": q.get("trip_id"),
        "e.id < %s": None if cursor is None else int(cursor),
    }
    where = " AND ".join(["true", *(k for k, v in clauses.items() if v is not None)])
    params = [v for v in clauses.values() if v is not None]

    def read(conn: Conn) -> list[dict[str, Any]]:
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                f"{_EPOD} WHERE {where} ORDER BY e.id DESC LIMIT %s", (*params, limit + 1)
            ).fetchall()
        return [epod_view(conn, r) for r in rows]

    found = await run(request, read)
    page = found[:limit]
    more = len(found) > limit
    return web.json_response({"epods": page, "next_cursor": str(page[-1]["id"]) if more else None})


async def get_file(request: web.Request) -> web.StreamResponse:
    sha = parse_params(request, _OPS["getFile"])["sha256"]
    row = await run(
        request,
        lambda c: c.execute("SELECT media_type FROM files WHERE sha256 = %s", (sha,)).fetchone(),
    )
    if row is None:
        raise NotFound(f"no file {sha}")
    try:
        data = await asyncio.to_thread(request.app[CTX].execution.files.read, sha)
    except FileNotFoundError as exc:
        raise NotFound(f"file {sha} is recorded but its bytes are missing from the store") from exc
    return web.Response(body=data, content_type=str(row[0]), headers=FILE_HEADERS)


async def list_cod(request: web.Request) -> web.Response:
    q = parse_params(request, _OPS["listCodSettlements"])

    def read(conn: Conn) -> list[dict[str, Any]]:
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                "SELECT c.trip_id, c.driver_id, d.name AS driver_name, t.day, c.orders,"
                " c.expected, c.collected, c.handed_in, c.difference, c.settled_at"
                " FROM cod_settlements c JOIN trips t ON t.id = c.trip_id"
                " LEFT JOIN drivers d ON d.id = c.driver_id"
                " WHERE (%(day)s::date IS NULL OR t.day = %(day)s)"
                " AND (%(driver)s::bigint IS NULL OR c.driver_id = %(driver)s)"
                " ORDER BY t.day DESC, c.trip_id DESC LIMIT 500",
                {"day": q.get("day"), "driver": q.get("driver_id")},
            ).fetchall()
        out: list[dict[str, Any]] = jsonable(rows)
        return out

    return web.json_response({"settlements": await run(request, read)})


OPERATIONS = (
    Operation(
        "getOrderEpod", "GET", "/orders/{id}/epod", get_order_epod,
        "An order's proof of delivery, its automatic checks and perfect-delivery row", _READ,
        {200: ("the ePOD", "Epod"), 404: ("no such order, or no outcome recorded yet", _ERR)},
        params=(Param("id", "path", _ID, "order id"),),
    ),
    Operation(
        "listEpods", "GET", "/epods", list_epods,
        "Proofs of delivery, newest first (needs_review=true: the ones to look at)", _READ,
        {200: ("one page of ePODs", None)},
        params=(
            Param("needs_review", "query", {"enum": ["true", "false"]}, "only flagged or not"),
            Param("trip_id", "query", _ID, "only this trip's"),
            *PAGE_PARAMS,
        ),
    ),
    Operation(
        "getFile", "GET", "/files/{sha256}", get_file,
        "An ePOD or complaint image by its SHA-256", _READ,
        {200: ("the image, with its recorded type", None), 404: ("no such file", _ERR)},
        params=(Param("sha256", "path", _SHA, "the file's SHA-256"),),
    ),
    Operation(
        "listCodSettlements", "GET", "/cod-settlements", list_cod,
        "Cash on delivery per trip: due, collected per the ePODs, handed in", _READ,
        {200: ("settlements, newest day first (at most 500)", None)},
        params=(
            Param("day", "query", {"type": "string", "format": "date"}, "only this day"),
            Param("driver_id", "query", _ID, "only this driver's"),
        ),
    ),
)  # fmt: skip
_OPS = {op.operation_id: op for op in OPERATIONS}
