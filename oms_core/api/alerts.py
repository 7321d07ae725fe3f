"""Alert endpoints for the control room: list and read alerts, acknowledge, escalate,
resolve and comment on them (the actor is the token's name), and the live stream.

The stream is Server-Sent Events: one shared ``LISTEN`` per app (``alerts.stream.Hub``,
started and stopped by ``attach_stream``) fans out to each client. Browsers'
``EventSource`` cannot set headers, so the token may also come as ``?access_token=``;
prefer the header elsewhere (query strings end up in access logs).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
from aiohttp import web

from oms_core.alerts import store
from oms_core.alerts.stream import Hub
from oms_core.api.auth import Role, lookup
from oms_core.api.context import CTX, PRINCIPAL, read_json, run
from oms_core.api.errors import ApiError
from oms_core.api.schemas import MAX_ID
from oms_core.api.schemas_alerts import ALERT_STATES, SEVERITIES
from oms_core.api.spec import PAGE_PARAMS, Operation, Param, parse_params

__all__ = ["HUB", "KEEPALIVE_S", "OPERATIONS", "RETRY_MS", "attach_stream"]

HUB = web.AppKey("alerts_hub", Hub)
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing an idle stream
RETRY_MS = 3000  # EventSource reconnects after this long when the stream drops
_LISTEN_WAIT_S = 5.0  # a new client waits this long for the listener before streaming
_REPLAY_PAGE = 500  # store.announced_since's default page
_REPLAY_MAX = 10_000  # events replayed to one reconnecting client at most
_ROLES = frozenset({Role.DISPATCHER, Role.SUPERVISOR})
_ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_TYPE = {"type": "string", "pattern": "^[a-z0-9_]{1,64}$"}
_ERR = "Error"
Conn = psycopg.Connection[Any]


def attach_stream(app: web.Application) -> None:
    """Give ``app`` its alert hub: listening from startup, every stream ended on
    shutdown (so open streams do not hold the server's shutdown), stopped on cleanup."""
    app[HUB] = Hub(app[CTX].pool.conninfo)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(app[HUB].run(), name="alerts-listener")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def end_streams(app: web.Application) -> None:
        app[HUB].close()

    app.cleanup_ctx.append(lifetime)
    app.on_shutdown.append(end_streams)


async def list_alerts(request: web.Request) -> web.Response:
    q = parse_params(request, _OPS["listAlerts"])
    since = q.get("since")  # a datetime: parse_params read the date-time
    filters = store.AlertFilter(
        states=q.get("state", ()),
        type=q.get("type"),
        severity=q.get("severity"),
        depot_id=q.get("depot_id"),
        vehicle_id=q.get("vehicle_id"),
        trip_id=q.get("trip_id"),
        since=since,
    )
    cursor = None if q.get("cursor") is None else int(q["cursor"])
    alerts, nxt = await run(
        request, lambda c: store.list_alerts(c, filters, limit=q.get("limit", 50), cursor=cursor)
    )
    return web.json_response({"alerts": alerts, "next_cursor": None if nxt is None else str(nxt)})


async def get_alert(request: web.Request) -> web.Response:
    aid = parse_params(request, _OPS["getAlert"])["id"]
    return web.json_response(await run(request, lambda c: store.get_alert(c, aid)))


def _mover(
    operation_id: str, schema: str, act: Callable[[Conn, int, str, str], dict[str, Any]]
) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        aid = parse_params(request, _OPS[operation_id])["id"]
        note = (await read_json(request, schema)).get("comment", "")
        actor = request[PRINCIPAL].name
        return web.json_response(await run(request, lambda c: act(c, aid, actor, note)))

    return handler


async def _stream_caller(request: web.Request) -> None:
    """The auth middleware's checks, with the token also taken from ``?access_token=``."""
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if "Authorization" not in request.headers:
        scheme, secret = "bearer", request.query.get("access_token", "")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(
            401,
            "unauthenticated",
            "send an API token as 'Authorization: Bearer <token>' or ?access_token=<token>",
        )
    principal = await run(request, lambda c: lookup(c, secret.strip()))
    if principal is None:
        raise ApiError(401, "invalid_token", "the token is unknown or revoked: get a new one")
    if principal.role not in _ROLES:
        allowed = ", ".join(sorted(_ROLES))
        raise ApiError(
            403, "forbidden", f"a {principal.role} token may not do this; needs: {allowed}"
        )


async def stream_alerts(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: ``event: alert`` per change, ``event: dropped`` when this
    client fell behind and lost older events, a comment line as keep-alive."""
    await _stream_caller(request)
    q = parse_params(request, _OPS["streamAlerts"])
    hub = request.app[HUB]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx would buffer the stream otherwise
        }
    )
    last = _last_event_id(request)
    with hub.subscribe(q.get("depot_id", ()), q.get("type", ())) as sub:
        with contextlib.suppress(TimeoutError):  # then stream anyway: events flow
            await asyncio.wait_for(hub.listening.wait(), _LISTEN_WAIT_S)  # once it is back
        await response.prepare(request)
        try:
            await response.write(f"retry: {RETRY_MS}\n: listening\n\n".encode())
            sent: set[int] = set()  # replayed, so skipped when they come live as well
            while last is not None:  # what this client missed, in pages
                page = await run(request, functools.partial(store.announced_since, seq=last))
                for text in page:
                    alert = json.loads(text)
                    last = int(alert["seq"])
                    if sub.wants(alert):
                        sent.add(last)
                        await response.write(_event(text, last))
                if len(page) < _REPLAY_PAGE or len(sent) >= _REPLAY_MAX:
                    break
            reported = 0
            while True:
                try:
                    payload = await asyncio.wait_for(sub.get(), KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if payload is None:
                    break
                if sub.dropped > reported:
                    lost = json.dumps({"dropped": sub.dropped - reported})
                    await response.write(f"event: dropped\ndata: {lost}\n\n".encode())
                    reported = sub.dropped
                seq = json.loads(payload).get("seq")
                if seq not in sent:
                    await response.write(_event(payload, seq))
        except ConnectionResetError:
            pass  # the client went away
    return response


def _event(payload: str, seq: int | None) -> bytes:
    ident = "" if seq is None else f"id: {seq}\n"
    return f"event: alert\n{ident}data: {payload}\n\n".encode()


def _last_event_id(request: web.Request) -> int | None:
    """Where a reconnecting client left off: EventSource sends ``Last-Event-ID`` by
    itself; a fresh page may pass ``?last_event_id=`` instead."""
    raw = request.headers.get("Last-Event-ID", request.query.get("last_event_id", "")).strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(
            422,
            "bad_last_event_id",
            f"Last-Event-ID {raw[:40]!r} is not an event id this stream sent: drop it to"
            " start from now, or pass the id: of the last event received",
        )
    return int(raw)


_ID = (Param("id", "path", _ID_SCHEMA, "alert id"),)
_LIST_PARAMS = (
    Param("state", "query", {"enum": ALERT_STATES}, "any of", many=True),
    Param("type", "query", _TYPE, "alerts of this type"),
    Param("severity", "query", {"enum": SEVERITIES}, "alerts of this severity"),
    Param("depot_id", "query", _ID_SCHEMA, "alerts of this depot"),
    Param("vehicle_id", "query", _ID_SCHEMA, "alerts of this vehicle"),
    Param("trip_id", "query", _ID_SCHEMA, "alerts of this trip"),
    Param(
        "since",
        "query",
        {"type": "string", "format": "date-time", "maxLength": 64},
        "alerts whose incident began at or after this time (RFC 3339 with an offset)",
    ),
    *PAGE_PARAMS,
)
_STREAM_PARAMS = (
    Param("depot_id", "query", _ID_SCHEMA, "only alerts of these depots", many=True),
    Param("type", "query", _TYPE, "only alerts of these types", many=True),
    Param(
        "access_token",
        "query",
        {"type": "string", "maxLength": 200},
        "the API token, for clients that cannot send headers (browsers' EventSource)",
    ),
    Param(
        "last_event_id",
        "query",
        {"type": "string", "pattern": "^[0-9]{1,18}$"},
        "replay the events after this event id first (as the Last-Event-ID header does)",
    ),
)
_NOT_FOUND = (404, ("no such alert", _ERR))
_STREAM_DOC = (
    "Server-Sent Events (text/event-stream), never ending: `event: alert` with the JSON"
    " {event, id, type, severity, state, vehicle_id, trip_id, stop_id, depot_id, order_ids,"
    " message, opened_at, seq} for open, clear, acknowledge, escalate and resolve, each"
    " with `id:` seq; a client that reconnects with `Last-Event-ID` (EventSource does so"
    " by itself) or ?last_event_id= first gets the events it missed, each carrying the"
    " alert as it is now; `event:"
    " dropped` with {dropped} when this client fell behind (the oldest events go: re-read"
    f" GET /alerts); a comment every {KEEPALIVE_S:.0f} s; `retry: {RETRY_MS}`. Browsers'"
    " EventSource cannot send headers: pass the token as ?access_token= instead.\n\n"
    "roles: dispatcher, supervisor (checked by the operation itself, which also takes the"
    " token from the query: the document's bearer scheme cannot say so)"
)


def _move_op(verb: str, action: Any, summary: str, conflict: str) -> Operation:
    op_id = f"{verb}Alert"
    body = "AlertComment" if verb == "comment" else "AlertMove"
    responses = dict([(200, ("the alert after the change", "Alert")), _NOT_FOUND])
    if conflict:
        responses[409] = (conflict, _ERR)
    return Operation(
        op_id, "POST", f"/alerts/{{id}}/{verb}", _mover(op_id, body, action), summary,
        _ROLES, responses, body=body, params=_ID,
    )  # fmt: skip


OPERATIONS = (
    Operation(
        "listAlerts", "GET", "/alerts", list_alerts, "List alerts, newest first", _ROLES,
        {200: ("one page", "AlertPage")}, params=_LIST_PARAMS,
    ),
    Operation(
        "streamAlerts", "GET", "/alerts/stream", stream_alerts,
        "Live alert changes as Server-Sent Events", None,
        {200: ("text/event-stream of alert changes", None),
         401: ("no valid token in the Authorization header or ?access_token=", _ERR),
         403: ("the token's role may not do this", _ERR)},
        params=_STREAM_PARAMS,
        description=_STREAM_DOC,
    ),
    Operation(
        "getAlert", "GET", "/alerts/{id}", get_alert,
        "Read an alert with its evidence and action log", _ROLES,
        dict([(200, ("the alert", "AlertDetail")), _NOT_FOUND]), params=_ID,
    ),
    _move_op("acknowledge", store.acknowledge,
             "Acknowledge an open alert, or an escalated one nobody acknowledged",
             "the alert was acknowledged already or is resolved (details name the legal"
             " moves)"),
    _move_op("escalate", store.escalate, "Escalate an open or acknowledged alert",
             "the alert is escalated or resolved already"),
    _move_op("resolve", store.resolve, "Resolve an alert (final)", "the alert is resolved"),
    _move_op("comment", store.comment, "Add a comment to an alert's action log", ""),
)  # fmt: skip
_OPS = {op.operation_id: op for op in OPERATIONS}
