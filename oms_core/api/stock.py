"""Stock endpoints: read stock levels, set a depot's count of a SKU (depots: ``depots``).

Setting ``on_hand`` is a stock count (goods received, a stocktake), so it replaces the
number rather than adding to it; it may not drop below what orders have reserved,
because those units are promised and the order core would have nothing to release.
"""

from __future__ import annotations

from typing import Any

import psycopg
from aiohttp import web
from psycopg.rows import dict_row

from oms_core.api.auth import Role
from oms_core.api.context import read_json, run
from oms_core.api.errors import ApiError
from oms_core.api.schemas import MAX_ID
from oms_core.api.spec import Operation, Param, parse_params
from oms_core.errors import NotFound

__all__ = ["OPERATIONS"]

Conn = psycopg.Connection[Any]
_READ = frozenset({Role.DISPATCHER, Role.SUPERVISOR})
_WRITE = frozenset({Role.DISPATCHER})
_ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
# No minLength: query checks do not enforce it, and an empty SKU simply matches nothing.
_SKU_SCHEMA = {"type": "string", "maxLength": 64, "pattern": "^[^\\x00]*$"}
_STOCK_COLUMNS = "depot_id, sku, on_hand, reserved, on_hand - reserved AS available"


async def list_stock(request: web.Request) -> web.Response:
    q = parse_params(request, _OPS["listStock"])
    depot_id, sku = q.get("depot_id"), q.get("sku")

    def read(conn: Conn) -> list[dict[str, Any]]:
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                f"SELECT {_STOCK_COLUMNS} FROM stock"
                " WHERE (%(d)s::bigint IS NULL OR depot_id = %(d)s)"
                " AND (%(s)s::text IS NULL OR sku = %(s)s) ORDER BY depot_id, sku",
                {"d": depot_id, "s": sku},
            ).fetchall()

    return web.json_response({"stock": await run(request, read)})


def _set_stock(conn: Conn, depot_id: int, sku: str, on_hand: int) -> dict[str, Any]:
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        if cur.execute("SELECT 1 FROM depots WHERE id = %s", (depot_id,)).fetchone() is None:
            raise NotFound(f"no depot {depot_id}")
        if cur.execute("SELECT 1 FROM products WHERE sku = %s", (sku,)).fetchone() is None:
            raise NotFound(f"no product with SKU {sku!r}")
        row = cur.execute(
            "INSERT INTO stock (depot_id, sku, on_hand) VALUES (%s, %s, %s)"
            " ON CONFLICT (depot_id, sku) DO UPDATE SET on_hand = EXCLUDED.on_hand"
            " WHERE stock.reserved <= EXCLUDED.on_hand"
            f" RETURNING {_STOCK_COLUMNS}",
            (depot_id, sku, on_hand),
        ).fetchone()
        if row is None:
            held = cur.execute(
                "SELECT reserved FROM stock WHERE depot_id = %s AND sku = %s", (depot_id, sku)
            ).fetchone()
            reserved = 0 if held is None else held["reserved"]
            raise ApiError(
                409,
                "below_reserved",
                f"orders hold {reserved} of {sku} at depot {depot_id}: on_hand cannot go"
                " below that; cancel orders or count again",
                [{"sku": sku, "depot_id": depot_id, "reserved": reserved}],
            )
        return row


async def set_stock(request: web.Request) -> web.Response:
    p = parse_params(request, _OPS["setStock"])
    on_hand = int((await read_json(request, "StockSet"))["on_hand"])
    row = await run(request, lambda c: _set_stock(c, p["depot_id"], p["sku"], on_hand))
    return web.json_response(row)


_ERR = "Error"
OPERATIONS = (
    Operation(
        "listStock", "GET", "/stock", list_stock, "Stock levels by depot and SKU", _READ,
        {200: ("matching levels, by depot and SKU", "StockList")},
        params=(
            Param("depot_id", "query", _ID_SCHEMA, "only this depot"),
            Param("sku", "query", _SKU_SCHEMA, "only this SKU"),
        ),
    ),
    Operation(
        "setStock", "PUT", "/stock/{depot_id}/{sku}", set_stock,
        "Set the counted units on hand of a SKU at a depot", _WRITE,
        {200: ("the new level", "StockLevel"), 404: ("no such depot or SKU", _ERR),
         409: ("fewer than the units reserved by orders", _ERR)},
        body="StockSet",
        params=(
            Param("depot_id", "path", _ID_SCHEMA, "depot id"),
            Param("sku", "path", _SKU_SCHEMA, "product SKU"),
        ),
    ),
)  # fmt: skip
_OPS = {op.operation_id: op for op in OPERATIONS}
