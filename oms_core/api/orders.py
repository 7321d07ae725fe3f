"""Order endpoints: create, read, list, verify, cancel, audit trail.

Handlers only translate: JSON in (already schema-checked), one call into the order
core in a worker thread, JSON out. Every business rule stays in ``oms_core``.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web

from oms_core import orders, verify
from oms_core.api.auth import Role
from oms_core.api.context import CTX, PRINCIPAL, geocode, read_json, run
from oms_core.api.schema_check import parse_datetime
from oms_core.api.schemas import MAX_ID
from oms_core.api.spec import PAGE_PARAMS, PREFIX, Operation, Param, parse_params
from oms_core.errors import Problem
from oms_core.model import LineIn, Order, OrderFilter, OrderIn
from oms_core.states import OrderState, PaymentMethod

__all__ = ["OPERATIONS", "needs_geocoding", "order_in", "order_json"]

_READ = frozenset({Role.DISPATCHER, Role.SUPERVISOR})
_WRITE = frozenset({Role.DISPATCHER})
_ID = Param("id", "path", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "order id")
_ERR = "Error"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def order_json(order: Order) -> dict[str, Any]:
    """An order as the ``Order`` schema describes it."""
    out: dict[str, Any] = _jsonable(asdict(order))
    return out


def order_in(body: dict[str, Any]) -> OrderIn:
    start = parse_datetime(body["window_start"])
    end = parse_datetime(body["window_end"])
    assert start is not None and end is not None  # the schema checked the format
    return OrderIn(
        customer_id=int(body["customer_id"]),
        depot_id=int(body["depot_id"]),
        address_text=body["address_text"],
        window_start=start,
        window_end=end,
        lines=tuple(
            LineIn(ln["sku"], int(ln["qty"]), Decimal(ln["unit_price"])) for ln in body["lines"]
        ),
        payment_method=PaymentMethod(body.get("payment_method", PaymentMethod.PREPAID)),
        lat=body.get("lat"),
        lon=body.get("lon"),
        address_id=None if body.get("address_id") is None else int(body["address_id"]),
        instructions=body.get("instructions", ""),
        invoice_number=body.get("invoice_number"),
    )


def needs_geocoding(new: OrderIn) -> bool:
    """No coordinates and no stored address to take them from."""
    return new.lat is None and new.lon is None and new.address_id is None


async def create_order(request: web.Request) -> web.Response:
    new = order_in(await read_json(request, "OrderCreate"))
    if request.app[CTX].geocoder is not None and needs_geocoding(new):
        lat, lon = await geocode(request, new.address_text, "/address_text")
        new = replace(new, lat=lat, lon=lon)
    actor = request[PRINCIPAL].name
    order = await run(request, lambda c: orders.create_order(c, new, actor=actor))
    return web.json_response(
        order_json(order), status=201, headers={"Location": f"{PREFIX}/orders/{order.id}"}
    )


async def get_order(request: web.Request) -> web.Response:
    oid = parse_params(request, _OPS["getOrder"])["id"]
    order = await run(request, lambda c: orders.get_order(c, oid))
    return web.json_response(order_json(order))


async def list_orders(request: web.Request) -> web.Response:
    q = parse_params(request, _OPS["listOrders"])
    day = q.get("window_day")
    start = None if day is None else datetime.combine(day, time(), UTC)
    filters = OrderFilter(
        states=tuple(OrderState(s) for s in q["state"]) if "state" in q else None,
        customer_id=q.get("customer_id"),
        depot_id=q.get("depot_id"),
        window_from=start,
        window_to=None if start is None else start + timedelta(days=1),
        tracking_number=q.get("tracking_number"),
    )
    limit, cursor = q.get("limit", 50), q.get("cursor")
    page = await run(request, lambda c: orders.list_orders(c, filters, limit=limit, cursor=cursor))
    return web.json_response(
        {"orders": [order_json(o) for o in page.orders], "next_cursor": page.next_cursor}
    )


async def verify_order(request: web.Request) -> web.Response:
    oid = parse_params(request, _OPS["verifyOrder"])["id"]
    ctx, actor = request.app[CTX], request[PRINCIPAL].name

    def check(conn: Any) -> tuple[list[Problem], Order]:
        found = verify.verify(
            conn,
            oid,
            now=ctx.now(),
            min_lead_s=ctx.min_lead_s,
            service_area=ctx.service_area,
            actor=actor,
        )
        return found, orders.get_order(conn, oid)

    found, order = await run(request, check)
    return web.json_response(
        {
            "verified": not found,
            "problems": [{"code": p.code, "message": p.message} for p in found],
            "order": order_json(order),
        }
    )


async def cancel_order(request: web.Request) -> web.Response:
    oid = parse_params(request, _OPS["cancelOrder"])["id"]
    reason = (await read_json(request, "CancelRequest"))["reason"]
    actor = request[PRINCIPAL].name
    order = await run(
        request,
        lambda c: orders.transition(c, oid, OrderState.CANCELLED, actor=actor, reason=reason),
    )
    return web.json_response(order_json(order))


async def reserve_order(request: web.Request) -> web.Response:
    """Verified → reserved: takes the order's stock at its depot, all lines or none."""
    oid = parse_params(request, _OPS["reserveOrder"])["id"]
    actor = request[PRINCIPAL].name
    order = await run(
        request, lambda c: orders.transition(c, oid, OrderState.RESERVED, actor=actor)
    )
    return web.json_response(order_json(order))


async def order_events(request: web.Request) -> web.Response:
    oid = parse_params(request, _OPS["orderEvents"])["id"]
    events = await run(request, lambda c: orders.audit_trail(c, oid))
    rows = [{k: v for k, v in asdict(e).items() if k != "order_id"} for e in events]
    return web.json_response({"events": _jsonable(rows)})


_ID_FILTER = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_LIST_PARAMS = (
    Param("state", "query", {"enum": [s.value for s in OrderState]}, "any of", many=True),
    Param("customer_id", "query", _ID_FILTER, "orders of this customer"),
    Param("depot_id", "query", _ID_FILTER, "orders leaving this depot"),
    Param(
        "window_day",
        "query",
        {"type": "string", "format": "date"},
        "orders whose window starts on this day (UTC)",
    ),
    Param(
        "tracking_number",
        "query",
        {"type": "string", "maxLength": 64, "pattern": "^[^\\x00]*$"},
        "exact match",
    ),
    *PAGE_PARAMS,
)
_NOT_FOUND = (404, ("no such order", _ERR))
OPERATIONS = (
    Operation(
        "createOrder", "POST", "/orders", create_order, "Enter a draft order", _WRITE,
        {201: ("the stored draft", "Order"),
         422: ("schema problems, a refused order, or an address the geocoder cannot place"
               " (address_not_found)", _ERR),
         503: ("the geocoder failed (geocoder_unavailable)", _ERR)},
        body="OrderCreate",
        description="Without lat, lon and address_id the address_text is geocoded when"
        " geocoder_url is set; else the draft is stored without coordinates and"
        " verification refuses it until they are known.",
    ),
    Operation(
        "listOrders", "GET", "/orders", list_orders, "List orders, newest first", _READ,
        {200: ("one page", "OrderPage")}, params=_LIST_PARAMS,
    ),
    Operation(
        "getOrder", "GET", "/orders/{id}", get_order, "Read an order", _READ,
        dict([(200, ("the order", "Order")), _NOT_FOUND]), params=(_ID,),
    ),
    Operation(
        "verifyOrder", "POST", "/orders/{id}/verify", verify_order,
        "Verify a draft; verified when no problems are found", _WRITE,
        dict([(200, ("problems found, or the verified order", "VerifyResult")), _NOT_FOUND,
              (409, ("the order is not a draft", _ERR))]),
        params=(_ID,),
    ),
    Operation(
        "reserveOrder", "POST", "/orders/{id}/reserve", reserve_order,
        "Reserve a verified order's stock at its depot (all lines or none)", _WRITE,
        dict([(200, ("the reserved order", "Order")), _NOT_FOUND,
              (409, ("not verified, or not enough stock (insufficient_stock)", _ERR))]),
        params=(_ID,),
    ),
    Operation(
        "cancelOrder", "POST", "/orders/{id}/cancel", cancel_order,
        "Cancel an order before dispatch (releases reserved stock)", _WRITE,
        dict([(200, ("the cancelled order", "Order")), _NOT_FOUND,
              (409, ("the order can no longer be cancelled", _ERR))]),
        body="CancelRequest", params=(_ID,),
    ),
    Operation(
        "orderEvents", "GET", "/orders/{id}/events", order_events,
        "The order's audit trail, oldest first", _READ,
        dict([(200, ("the events", "EventList")), _NOT_FOUND]), params=(_ID,),
    ),
)  # fmt: skip
_OPS = {op.operation_id: op for op in OPERATIONS}
