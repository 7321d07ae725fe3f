"""Customer and product endpoints: who orders, where they take deliveries, what is sold.

An address is only stored with coordinates: orders to it are planned from them. One
sent without lat/lon is geocoded when a geocoder is configured and refused otherwise
(``no_coordinates``), so a bad address is caught when it is entered, not at planning.
Lists are keyset pages (``limit``, ``cursor``) like ``GET /orders``: customers by id,
products by SKU.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
from aiohttp import web
from psycopg.rows import dict_row

from oms_core.api.auth import Role
from oms_core.api.context import CTX, read_json, run
from oms_core.api.context import geocode as locate
from oms_core.api.errors import ApiError
from oms_core.api.schemas import MAX_ID
from oms_core.api.schemas_fleet import NOTIFY_CHANNELS
from oms_core.api.spec import PAGE_PARAMS, PREFIX, Operation, Param, parse_params
from oms_core.errors import NotFound

__all__ = ["OPERATIONS"]

Conn = psycopg.Connection[Any]
Coords = tuple[float | None, float | None]
_READ = frozenset({Role.DISPATCHER, Role.SUPERVISOR})
_WRITE = frozenset({Role.DISPATCHER})
_ERR = "Error"
_CUSTOMER_COLUMNS = (
    "c.id, c.name, c.email, c.phone, c.notify_prefs, c.language, c.created_at,"
    " coalesce((SELECT json_agg(json_build_object('id', a.id, 'customer_id', a.customer_id,"
    " 'text', a.text, 'lat', a.lat, 'lon', a.lon) ORDER BY a.id)"
    " FROM addresses a WHERE a.customer_id = c.id), '[]') AS addresses"
)
_PRODUCT_COLUMNS = "sku, name, unit_weight_kg::text, unit_volume_m3::text, active"


def _customer_json(row: dict[str, Any]) -> dict[str, Any]:
    prefs = row["notify_prefs"]  # only the channels the API knows, whatever SQL stored
    return {
        **row,
        "notify_prefs": {c: prefs[c] for c in NOTIFY_CHANNELS if isinstance(prefs.get(c), bool)},
        "created_at": row["created_at"].isoformat(),
    }


def _customers(conn: Conn, where: str, params: Sequence[Any], limit: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_CUSTOMER_COLUMNS} FROM customers c WHERE {where} ORDER BY c.id LIMIT %s",
            (*params, limit),
        ).fetchall()
    return [_customer_json(r) for r in rows]


def _one_customer(conn: Conn, customer_id: int) -> dict[str, Any]:
    found = _customers(conn, "c.id = %s", (customer_id,), 1)
    if not found:
        raise NotFound(f"no customer {customer_id}")
    return found[0]


async def _coordinates(request: web.Request, address: dict[str, Any], field: str) -> Coords:
    """The address's lat/lon as sent, or found by the geocoder, or a 422 saying why not."""
    lat, lon = address.get("lat"), address.get("lon")
    if (lat is None) != (lon is None):
        raise _refuse("bad_coordinates", "give both lat and lon, or neither", field)
    if lat is not None:
        return lat, lon
    if request.app[CTX].geocoder is None:
        raise _refuse(
            "no_coordinates",
            "the address has no lat/lon and no geocoder is configured: send lat and lon"
            " (or set geocoder_url so addresses are geocoded)",
            field,
        )
    return await locate(request, address["text"], field)


def _refuse(code: str, message: str, field: str) -> ApiError:
    return ApiError(422, code, message, [{"code": code, "field": field, "message": message}])


def _insert_addresses(
    conn: Conn, customer_id: int, found: Sequence[tuple[str, Coords]]
) -> list[int]:
    ids = []
    for text, (lat, lon) in found:
        row = conn.execute(
            "INSERT INTO addresses (customer_id, text, lat, lon) VALUES (%s, %s, %s, %s)"
            " RETURNING id",
            (customer_id, text, lat, lon),
        ).fetchone()
        assert row is not None  # INSERT … RETURNING always returns the row
        ids.append(int(row[0]))
    return ids


async def create_customer(request: web.Request) -> web.Response:
    body = await read_json(request, "CustomerCreate")
    places = body.get("addresses", [])
    found = [
        (a["text"], await _coordinates(request, a, f"/addresses/{i}")) for i, a in enumerate(places)
    ]

    def add(conn: Conn) -> dict[str, Any]:
        with conn.transaction():
            row = conn.execute(
                "INSERT INTO customers (name, email, phone, notify_prefs, language)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (
                    body["name"],
                    body.get("email"),
                    body.get("phone"),
                    json.dumps(body.get("notify_prefs", {})),
                    body.get("language", "id"),
                ),
            ).fetchone()
            assert row is not None  # INSERT … RETURNING always returns the row
            _insert_addresses(conn, int(row[0]), found)
            return _one_customer(conn, int(row[0]))

    customer = await run(request, add)
    location = f"{PREFIX}/customers/{customer['id']}"
    return web.json_response(customer, status=201, headers={"Location": location})


async def list_customers(request: web.Request) -> web.Response:
    q = parse_params(request, _OPS["listCustomers"])
    limit, cursor = q.get("limit", 50), q.get("cursor")
    where, params = ("c.id > %s", (int(cursor),)) if cursor is not None else ("true", ())
    rows = await run(request, lambda c: _customers(c, where, params, limit + 1))
    page = rows[:limit]
    nxt = str(page[-1]["id"]) if len(rows) > limit else None
    return web.json_response({"customers": page, "next_cursor": nxt})


async def get_customer(request: web.Request) -> web.Response:
    cid = parse_params(request, _OPS["getCustomer"])["id"]
    return web.json_response(await run(request, lambda c: _one_customer(c, cid)))


async def add_address(request: web.Request) -> web.Response:
    cid = parse_params(request, _OPS["addAddress"])["id"]
    body = await read_json(request, "AddressCreate")
    # Unknown customers are refused before the geocoder is asked about their address.
    await run(request, lambda c: _one_customer(c, cid))
    coords = await _coordinates(request, body, "/")

    def add(conn: Conn) -> dict[str, Any]:
        with conn.transaction():
            # Locked against deletion while the address goes in.
            row = conn.execute("SELECT 1 FROM customers WHERE id = %s FOR KEY SHARE", (cid,))
            if row.fetchone() is None:
                raise NotFound(f"no customer {cid}")
            (aid,) = _insert_addresses(conn, cid, [(body["text"], coords)])
        lat, lon = coords
        return {"id": aid, "customer_id": cid, "text": body["text"], "lat": lat, "lon": lon}

    address = await run(request, add)
    location = f"{PREFIX}/customers/{cid}"
    return web.json_response(address, status=201, headers={"Location": location})


def _products(conn: Conn, where: str, params: Sequence[Any], limit: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE {where} ORDER BY sku LIMIT %s",
            (*params, limit),
        ).fetchall()


async def create_product(request: web.Request) -> web.Response:
    body = await read_json(request, "ProductCreate")

    def add(conn: Conn) -> list[dict[str, Any]]:
        with conn.transaction():
            made = conn.execute(
                "INSERT INTO products (sku, name, unit_weight_kg, unit_volume_m3, active)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (sku) DO NOTHING",
                (
                    body["sku"],
                    body.get("name", ""),
                    body["unit_weight_kg"],
                    body["unit_volume_m3"],
                    body.get("active", True),
                ),
            ).rowcount
        return _products(conn, "sku = %s", (body["sku"],), 1) if made else []

    found = await run(request, add)
    if not found:
        raise ApiError(
            409, "product_exists", f"SKU {body['sku']!r} already exists: pick another SKU"
        )
    location = f"{PREFIX}/products/{body['sku']}"
    return web.json_response(found[0], status=201, headers={"Location": location})


async def list_products(request: web.Request) -> web.Response:
    q = parse_params(request, _OPS["listProducts"])
    limit, cursor = q.get("limit", 50), q.get("cursor")
    where, params = ("sku > %s", (cursor,)) if cursor is not None else ("true", ())
    rows = await run(request, lambda c: _products(c, where, params, limit + 1))
    page = rows[:limit]
    nxt = page[-1]["sku"] if len(rows) > limit else None
    return web.json_response({"products": page, "next_cursor": nxt})


async def get_product(request: web.Request) -> web.Response:
    sku = parse_params(request, _OPS["getProduct"])["sku"]
    found = await run(request, lambda c: _products(c, "sku = %s", (sku,), 1))
    if not found:
        raise NotFound(f"no product with SKU {sku!r}")
    return web.json_response(found[0])


_ID = (Param("id", "path", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "customer id"),)
_SKU = (Param("sku", "path", {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}, "SKU"),)
_PRODUCT_PAGE = (
    PAGE_PARAMS[0],
    Param(
        "cursor",
        "query",
        {"type": "string", "maxLength": 64, "pattern": "^[^\\x00]*$"},
        "next_cursor of the last page",
    ),
)
_GEOCODED = "An address without lat/lon is geocoded when geocoder_url is set, else refused."
OPERATIONS = (
    Operation(
        "createCustomer", "POST", "/customers", create_customer,
        "Add a customer, optionally with delivery addresses", _WRITE,
        {201: ("the stored customer", "Customer"),
         422: ("schema problems, or an address without coordinates (no_coordinates,"
               " address_not_found)", _ERR),
         503: ("the geocoder failed (geocoder_unavailable)", _ERR)},
        body="CustomerCreate", description=_GEOCODED,
    ),
    Operation(
        "listCustomers", "GET", "/customers", list_customers,
        "List customers by id, a page at a time", _READ,
        {200: ("one page of customers", "CustomerPage")}, params=PAGE_PARAMS,
    ),
    Operation(
        "getCustomer", "GET", "/customers/{id}", get_customer,
        "Read a customer with their addresses", _READ,
        {200: ("the customer", "Customer"), 404: ("no such customer", _ERR)}, params=_ID,
    ),
    Operation(
        "addAddress", "POST", "/customers/{id}/addresses", add_address,
        "Add a delivery address to a customer", _WRITE,
        {201: ("the stored address", "Address"), 404: ("no such customer", _ERR),
         422: ("schema problems, or no coordinates (no_coordinates, address_not_found)",
               _ERR),
         503: ("the geocoder failed (geocoder_unavailable)", _ERR)},
        body="AddressCreate", params=_ID, description=_GEOCODED,
    ),
    Operation(
        "listProducts", "GET", "/products", list_products,
        "List products by SKU, a page at a time", _READ,
        {200: ("one page of products", "ProductPage")}, params=_PRODUCT_PAGE,
    ),
    Operation(
        "createProduct", "POST", "/products", create_product, "Add a product (SKU)", _WRITE,
        {201: ("the stored product", "Product"), 409: ("the SKU exists", _ERR)},
        body="ProductCreate",
    ),
    Operation(
        "getProduct", "GET", "/products/{sku}", get_product, "Read a product", _READ,
        {200: ("the product", "Product"), 404: ("no such product", _ERR)}, params=_SKU,
    ),
)  # fmt: skip
_OPS = {op.operation_id: op for op in OPERATIONS}
