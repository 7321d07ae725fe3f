"""The driver app's endpoints: sign in with a one-time link, read the day's trip, act on
it (loaded, departed, arrived, delivered / partial / failed with the ePOD, back at the
depot), upload ePOD images, and send the phone's positions.

Every action is idempotent (``oms_core.execution.actions``): the phone makes a key per
tap and sends it again on every retry, so a lost answer never makes a second delivery;
a replay answers 200 with ``replayed: true``. A driver reaches only their own trip,
stops and orders; anything else is 404, as if it did not exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from aiohttp import web

from oms_core.api.auth import Principal, Role, create_sign_in_code, redeem_sign_in_code
from oms_core.api.context import CTX, PRINCIPAL, read_json, run
from oms_core.api.driver_view import driver_today
from oms_core.api.errors import ApiError
from oms_core.api.schema_check import parse_datetime
from oms_core.api.schemas import MAX_ID
from oms_core.api.spec import Operation, Param, parse_params
from oms_core.api.uploads import accept_image, read_form
from oms_core.execution import driver as steps
from oms_core.execution.actions import Action, ActionIn, perform
from oms_core.execution.epod import EpodIn, LineOutcome, deliver

__all__ = ["OPERATIONS", "sign_in_url"]

Conn = psycopg.Connection[Any]
_DRIVER = frozenset({Role.DRIVER})
_WRITE = frozenset({Role.DISPATCHER})
_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_ERR = "Error"
_NO_STORE = {"Cache-Control": "no-store"}
DRIVER_PAGE = "/driver/"


def sign_in_url(base_url: str, code: str) -> str:
    """The link a driver opens: the code rides in the fragment, so it never reaches a
    server log or a Referer header; the page posts it to ``/driver/sign-in``."""
    return f"{base_url.rstrip('/')}{DRIVER_PAGE}#code={code}"


def _me(request: web.Request) -> Principal:
    principal: Principal = request[PRINCIPAL]
    assert principal.driver_id is not None  # a driver token always names its driver
    return principal


def _time(text: str | None) -> datetime | None:
    return None if text is None else parse_datetime(text)


def _action_in(me: Principal, kind: str, body: Mapping[str, Any]) -> ActionIn:
    pos = body.get("position") or {}
    at = _time(body["at"])
    assert at is not None and me.driver_id is not None  # the schema checked the format
    return ActionIn(
        driver_id=me.driver_id,
        actor=me.name,
        kind=kind,
        key=body["idempotency_key"],
        phone_time=at,
        body=body,
        sent_at=_time(body.get("sent_at")),
        lat=pos.get("lat"),
        lon=pos.get("lon"),
        accuracy_m=pos.get("accuracy_m"),
    )


async def _act(
    request: web.Request,
    schema: str,
    kind: Callable[[Mapping[str, Any]], str],
    work: Callable[[Conn, Action, Mapping[str, Any]], Mapping[str, Any]],
    **subject: int,
) -> web.Response:
    """Read the action, apply it once, answer what it did (or what it did the first time)."""
    body = await read_json(request, schema)
    a = _action_in(_me(request), kind(body), body)
    now = request.app[CTX].now()
    answer, replayed = await run(
        request,
        lambda c: perform(c, a, lambda conn, action: work(conn, action, body), now=now,
                          **subject),
    )  # fmt: skip
    return web.json_response({**answer, "replayed": replayed}, headers=_NO_STORE)


def _id(request: web.Request, op: str) -> int:
    return int(parse_params(request, _OPS[op])["id"])


async def loaded(request: web.Request) -> web.Response:
    trip_id = _id(request, "driverLoaded")

    def work(conn: Conn, action: Action, body: Mapping[str, Any]) -> Mapping[str, Any]:
        lines = [
            steps.LoadedLine(x["order_id"], x["line_no"], x["loaded_qty"]) for x in body["lines"]
        ]
        return steps.loaded(conn, action, trip_id, lines)

    return await _act(request, "DriverLoaded", lambda _: "loaded", work, trip_id=trip_id)


async def departed(request: web.Request) -> web.Response:
    trip_id = _id(request, "driverDeparted")
    return await _act(
        request, "DriverAction", lambda _: "departed",
        lambda conn, action, _: steps.departed(conn, action, trip_id), trip_id=trip_id,
    )  # fmt: skip


async def arrived(request: web.Request) -> web.Response:
    stop_id = _id(request, "driverArrived")
    return await _act(
        request, "DriverAction", lambda _: "arrived",
        lambda conn, action, _: steps.arrived(conn, action, stop_id), stop_id=stop_id,
    )  # fmt: skip


async def delivery(request: web.Request) -> web.Response:
    order_id = _id(request, "driverDelivery")
    rules = request.app[CTX].execution.epod

    def work(conn: Conn, action: Action, body: Mapping[str, Any]) -> Mapping[str, Any]:
        cod = body.get("cod_collected")
        epod = EpodIn(
            outcome=body["outcome"],
            lines=tuple(
                LineOutcome(x["line_no"], x["delivered_qty"], x.get("damaged_qty", 0))
                for x in body.get("lines", [])
            ),
            recipient_name=body.get("recipient_name", ""),
            signature=body.get("signature"),
            photos=tuple(body.get("photos", [])),
            notes=body.get("notes", ""),
            reason_code=body.get("reason_code"),
            cod_collected=None if cod is None else Decimal(cod),
        )
        return deliver(conn, action, order_id, epod, rules)

    return await _act(request, "DriverDelivery", lambda b: b["outcome"], work, order_id=order_id)


async def returned(request: web.Request) -> web.Response:
    trip_id = _id(request, "driverReturned")

    def work(conn: Conn, action: Action, body: Mapping[str, Any]) -> Mapping[str, Any]:
        cash = body.get("cash_handed_in")
        return steps.returned(conn, action, trip_id, None if cash is None else Decimal(cash))

    return await _act(request, "DriverReturned", lambda _: "returned", work, trip_id=trip_id)


async def today(request: web.Request) -> web.Response:
    me = _me(request)
    assert me.driver_id is not None
    now = request.app[CTX].now()
    view = await run(request, lambda c: driver_today(c, int(me.driver_id or 0), now))
    return web.json_response(view, headers=_NO_STORE)


async def upload(request: web.Request) -> web.Response:
    ex = request.app[CTX].execution
    form = await read_form(request, file_fields=frozenset({"file"}), max_bytes=ex.upload_max_bytes)
    data = form.files.get("file")
    if data is None:
        raise ApiError(422, "missing_file", "send the image as the form field 'file'")
    stored = await accept_image(request, data, _me(request).name)
    return web.json_response(
        {"sha256": stored.sha256, "media_type": stored.media_type,
         "size_bytes": stored.size_bytes, "width": stored.width, "height": stored.height},
        status=201,
    )  # fmt: skip


async def positions(request: web.Request) -> web.Response:
    """The phone's positions as OsmAnd (Traccar Client) JSON, to ingest as the driver's
    phone device: a van without a tracker is still tracked."""
    body = await read_json(request, "DriverPositions")
    me = _me(request)
    sink = request.app[CTX].execution.positions
    if sink is None:
        raise ApiError(503, "positions_off", "this server does not take phone positions")
    device = await run(request, lambda c: _phone_device(c, int(me.driver_id or 0)))
    frame = json.dumps(
        {
            "device_id": device,
            "location": [
                {
                    "timestamp": p["at"],
                    "coords": {
                        "latitude": p["lat"], "longitude": p["lon"],
                        "accuracy": p.get("accuracy_m"), "speed": p.get("speed_mps"),
                        "heading": p.get("heading_deg"),
                    },
                }
                for p in body["positions"]
            ],
        }
    ).encode()  # fmt: skip
    status, reason = await sink(device, frame)
    if status != 200:
        code = "positions_refused" if status < 500 else "positions_unavailable"
        raise ApiError(status if status in (400, 403, 503) else 502, code, reason)
    return web.json_response({"device_id": device, "accepted": len(body["positions"])})


def _phone_device(conn: Conn, driver_id: int) -> str:
    """The driver's phone device id, made (``DRV<id>``) on first use."""
    row = conn.execute(
        "UPDATE drivers SET phone_device_id = coalesce(phone_device_id, 'DRV' || id)"
        " WHERE id = %s RETURNING phone_device_id",
        (driver_id,),
    ).fetchone()
    if row is None:
        raise ApiError(404, "not_found", "this driver no longer exists")
    return str(row[0])


async def sign_in(request: web.Request) -> web.Response:
    body = await read_json(request, "DriverSignIn")
    session = await run(request, lambda c: redeem_sign_in_code(c, body["code"]))
    if session is None:
        raise ApiError(
            401, "invalid_link",
            "this sign-in link is unknown, used or expired: ask the control room for a new one",
        )  # fmt: skip
    secret, driver_id, name = session
    return web.json_response(
        {"token": secret, "driver_id": driver_id, "name": name}, headers=_NO_STORE
    )


async def create_link(request: web.Request) -> web.Response:
    driver_id = _id(request, "createSignInLink")
    ex = request.app[CTX].execution
    code = await run(request, lambda c: create_sign_in_code(c, driver_id, ex.sign_in_ttl_s))
    expires = request.app[CTX].now().astimezone(UTC).timestamp() + ex.sign_in_ttl_s
    return web.json_response(
        {"url": sign_in_url(ex.base_url, code),
         "expires_at": datetime.fromtimestamp(expires, UTC).isoformat()},
        status=201, headers=_NO_STORE,
    )  # fmt: skip


def _path(what: str) -> tuple[Param, ...]:
    return (Param("id", "path", _ID, what),)


_ACTION_RESPONSES = {
    200: ("what the action did (a retry: the same, with replayed true)", "ActionResult"),
    404: ("not this driver's (or no such id)", _ERR),
    409: ("the trip or order is not in a state this action fits, or the key was used for"
          " another request (idempotency_key_reused)", _ERR),
}  # fmt: skip
OPERATIONS = (
    Operation(
        "driverSignIn", "POST", "/driver/sign-in", sign_in,
        "Exchange a one-time sign-in link's code for a driver token", None,
        {200: ("the driver's new token", "DriverSession"),
         401: ("unknown, used or expired link", _ERR)},
        body="DriverSignIn",
    ),
    Operation(
        "createSignInLink", "POST", "/drivers/{id}/sign-in-link", create_link,
        "Make a one-time sign-in link for a driver's phone", _WRITE,
        {201: ("the link (works once, until expires_at)", "SignInLink"),
         404: ("no such driver", _ERR)},
        params=_path("driver id"),
    ),
    Operation(
        "driverToday", "GET", "/driver/today", today,
        "The driver's current trip with its stops, orders and lines", _DRIVER,
        {200: ("the driver's day", "DriverToday")},
    ),
    Operation(
        "driverLoaded", "POST", "/driver/trips/{id}/loaded", loaded,
        "Loading checked at the depot, per order line", _DRIVER, _ACTION_RESPONSES,
        body="DriverLoaded", params=_path("trip id"),
    ),
    Operation(
        "driverDeparted", "POST", "/driver/trips/{id}/departed", departed,
        "Left the depot: the trip starts, its orders go out for delivery", _DRIVER,
        _ACTION_RESPONSES, body="DriverAction", params=_path("trip id"),
    ),
    Operation(
        "driverArrived", "POST", "/driver/stops/{id}/arrived", arrived,
        "Arrived at a stop (kept beside the geofence's arrival)", _DRIVER,
        _ACTION_RESPONSES, body="DriverAction", params=_path("stop id"),
    ),
    Operation(
        "driverDelivery", "POST", "/driver/orders/{id}/delivery", delivery,
        "Delivered, partially delivered or failed, with the ePOD", _DRIVER,
        {**_ACTION_RESPONSES,
         422: ("the ePOD is incomplete or contradicts the order (codes say what)", _ERR)},
        body="DriverDelivery", params=_path("order id"),
        description="Upload the signature and photos first (POST /driver/files) and send"
        " their sha256 here.",
    ),
    Operation(
        "driverReturned", "POST", "/driver/trips/{id}/returned", returned,
        "Back at the depot: the trip and its orders close, COD cash is settled", _DRIVER,
        _ACTION_RESPONSES, body="DriverReturned", params=_path("trip id"),
    ),
    Operation(
        "driverUpload", "POST", "/driver/files", upload,
        "Upload a signature or photo (PNG, JPEG or WebP) for an ePOD", _DRIVER,
        {201: ("stored (the same bytes again: the same answer)", "StoredFile"),
         413: ("larger than upload_max_bytes or upload_max_pixels", _ERR),
         415: ("not a PNG, JPEG or WebP image", _ERR),
         422: ("a broken image, or no file field", _ERR)},
        description="multipart/form-data with the image in the field 'file', or the raw"
        " image with its Content-Type.",
    ),
    Operation(
        "driverPositions", "POST", "/driver/positions", positions,
        "The phone's positions while a trip runs (stored as the driver's phone device)",
        _DRIVER,
        {200: ("stored", None), 503: ("positions are off, or storage is slow", _ERR)},
        body="DriverPositions",
    ),
)  # fmt: skip
_OPS = {op.operation_id: op for op in OPERATIONS}
