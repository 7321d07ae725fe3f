"""Payment updates: the control room records what the payment provider or the driver
reported. The legal moves are ``oms_core.states.PAYMENT_TRANSITIONS``; each move is
audited like an order state change, and an illegal one is a 409 naming the legal ones."""

from __future__ import annotations

from aiohttp import web

from oms_core import orders
from oms_core.api.auth import Role
from oms_core.api.context import PRINCIPAL, read_json, run
from oms_core.api.orders import order_json
from oms_core.api.schemas import MAX_ID
from oms_core.api.spec import Operation, Param, parse_params
from oms_core.states import PaymentState

__all__ = ["OPERATIONS"]

_ID = Param("id", "path", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "order id")


async def set_payment(request: web.Request) -> web.Response:
    oid = parse_params(request, OPERATIONS[0])["id"]
    body = await read_json(request, "PaymentUpdate")
    to, reason = PaymentState(body["state"]), body.get("reason", "")
    actor = request[PRINCIPAL].name
    order = await run(request, lambda c: orders.set_payment(c, oid, to, actor=actor, reason=reason))
    return web.json_response(order_json(order))


OPERATIONS = (
    Operation(
        "setPayment", "POST", "/orders/{id}/payment", set_payment,
        "Move the order's payment state (audited)", frozenset({Role.DISPATCHER}),
        {
            200: ("the order with its new payment state", "Order"),
            404: ("no such order", "Error"),
            409: ("not a legal payment move; details name the legal next states", "Error"),
        },
        body="PaymentUpdate", params=(_ID,),
    ),
)  # fmt: skip
