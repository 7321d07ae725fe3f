"""Webhook subscriptions, the delivery outbox (so failures are visible and can be
retried), each order's customer notifications, and the depot contacts whose
supervisors get alert email.

A webhook's ``purpose`` is ``alerts`` (the control room's systems) or
``customer_messages`` (an SMS / WhatsApp gateway sending customer notifications).

A webhook's secret is shown once, in the response that creates it; reads never show it.
Deleting a webhook deactivates it, so its delivery history stays readable; removing a
contact deletes it (its past emails stay in the outbox under its address).
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import psycopg
from aiohttp import web
from psycopg.rows import dict_row

from oms_core.alerts.destinations import url_refusal
from oms_core.alerts.outbox import CHANNEL
from oms_core.api.auth import Role
from oms_core.api.context import CTX, read_json, run
from oms_core.api.errors import ApiError, invalid
from oms_core.api.schema_check import FieldProblem
from oms_core.api.schemas import MAX_ID
from oms_core.api.schemas_webhooks import DELIVERY_STATES
from oms_core.api.spec import PAGE_PARAMS, PREFIX, Operation, Param, parse_params
from oms_core.errors import NotFound
from oms_core.notify import EVENTS

__all__ = ["OPERATIONS", "email_problem", "url_problem"]

Conn = psycopg.Connection[Any]
_READ = frozenset({Role.DISPATCHER, Role.SUPERVISOR})
_WRITE = frozenset({Role.DISPATCHER})
_ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_ERR = "Error"
_WEBHOOK_COLUMNS = "id, url, purpose, depot_id, types, active, created_at"
_DELIVERY_COLUMNS = (
    "id, alert_id, order_id, event, channel, webhook_id, email, state, attempts,"
    " next_attempt_at, last_error, delivered_at, created_at"
)
_NOTIFICATION_COLUMNS = (
    "id, event, payload ->> 'medium' AS medium, coalesce(email, payload ->> 'to') AS to,"
    " channel, webhook_id, state, attempts, next_attempt_at, last_error, delivered_at,"
    " created_at"
)
_EMAIL = re.compile(r"[^@\s,;<>()\[\]\"]+@[^@\s,;<>()\[\]\"]+\.[^@\s,;<>()\[\]\".]+", re.ASCII)


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot receive webhooks, or None: http(s) with a host, nothing else."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"not a URL ({exc})"
    if not (url.startswith("http://") or url.startswith("https://")):
        return "must start with http:// or https://"
    if not parts.hostname or any(c.isspace() for c in url):
        return "needs a host name and no spaces, e.g. https://example.com/menara-hook"
    return None


def email_problem(address: str) -> str | None:
    """Why ``address`` is not one plain email address (name@domain.tld), or None."""
    if not _EMAIL.fullmatch(address):
        return "must be one address like name@example.com (no display name, no list)"
    return None


def _json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def _webhook(conn: Conn, wid: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE id = %s", (wid,))
        found = row.fetchone()
    if found is None:
        raise NotFound(f"no webhook {wid}")
    return _json(found)


def _depot_exists(conn: Conn, depot_id: int) -> bool:
    return conn.execute("SELECT 1 FROM depots WHERE id = %s", (depot_id,)).fetchone() is not None


async def create_webhook(request: web.Request) -> web.Response:
    body = await read_json(request, "WebhookCreate")
    problem = url_problem(body["url"])
    if problem is not None:
        detail = {"code": "invalid_url", "field": "/url", "message": problem}
        raise ApiError(422, "invalid_url", f"the url {problem}", [detail])
    refused = None
    if not request.app[CTX].execution.webhook_allow_private:
        refused = await url_refusal(body["url"])
    if refused is not None:
        detail = {"code": "address_not_allowed", "field": "/url", "message": refused}
        raise ApiError(400, "address_not_allowed", refused, [detail])
    secret = body.get("secret") or secrets.token_urlsafe(32)
    types, purpose = body.get("types"), body.get("purpose", "alerts")
    unknown = sorted(set(types or ()) - set(EVENTS)) if purpose == "customer_messages" else []
    if unknown:
        message = f"{', '.join(unknown)}: a customer_messages webhook takes {', '.join(EVENTS)}"
        raise invalid([FieldProblem("invalid_value", "/types", message)])

    kinds = None if types is None else sorted(set(types))

    def add(conn: Conn) -> dict[str, Any]:
        depot = body.get("depot_id")
        if depot is not None and not _depot_exists(conn, depot):
            raise invalid([FieldProblem("invalid_value", "/depot_id", f"no depot {depot}")])
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                "INSERT INTO webhooks (url, secret, purpose, depot_id, types)"
                f" VALUES (%s, %s, %s, %s, %s) RETURNING {_WEBHOOK_COLUMNS}",
                (body["url"], secret, purpose, depot, kinds),
            ).fetchone()
        assert row is not None  # INSERT … RETURNING returns the row
        return _json(row)

    hook = await run(request, add)
    location = f"{PREFIX}/webhooks/{hook['id']}"
    return web.json_response({**hook, "secret": secret}, status=201, headers={"Location": location})


async def list_webhooks(request: web.Request) -> web.Response:
    def read(conn: Conn) -> list[dict[str, Any]]:
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks ORDER BY id").fetchall()
        return [_json(r) for r in rows]

    return web.json_response({"webhooks": await run(request, read)})


async def get_webhook(request: web.Request) -> web.Response:
    wid = parse_params(request, _OPS["getWebhook"])["id"]
    return web.json_response(await run(request, lambda c: _webhook(c, wid)))


async def delete_webhook(request: web.Request) -> web.Response:
    wid = parse_params(request, _OPS["deleteWebhook"])["id"]

    def deactivate(conn: Conn) -> dict[str, Any]:
        conn.execute("UPDATE webhooks SET active = false WHERE id = %s", (wid,))
        return _webhook(conn, wid)

    return web.json_response(await run(request, deactivate))


def _deliveries(conn: Conn, q: dict[str, Any], webhook_id: int | None) -> dict[str, Any]:
    limit = q.get("limit", 50)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries"
            " WHERE (%(w)s::bigint IS NULL OR webhook_id = %(w)s)"
            " AND (%(s)s::text IS NULL OR state = %(s)s)"
            " AND (%(c)s::text IS NULL OR channel = %(c)s)"
            " AND (%(a)s::bigint IS NULL OR alert_id = %(a)s)"
            " AND (%(o)s::bigint IS NULL OR order_id = %(o)s)"
            " AND (%(before)s::bigint IS NULL OR id < %(before)s)"
            " ORDER BY id DESC LIMIT %(n)s",
            {
                "w": webhook_id,
                "s": q.get("state"),
                "c": q.get("channel"),
                "a": q.get("alert_id"),
                "o": q.get("order_id"),
                "before": None if q.get("cursor") is None else int(q["cursor"]),
                "n": limit + 1,
            },
        ).fetchall()
    page = rows[:limit]
    nxt = str(page[-1]["id"]) if len(rows) > limit else None
    return {"deliveries": [_json(r) for r in page], "next_cursor": nxt}


async def list_webhook_deliveries(request: web.Request) -> web.Response:
    q = parse_params(request, _OPS["listWebhookDeliveries"])

    def read(conn: Conn) -> dict[str, Any]:
        _webhook(conn, q["id"])  # 404 for an unknown webhook, not an empty page
        return _deliveries(conn, q, q["id"])

    return web.json_response(await run(request, read))


async def list_deliveries(request: web.Request) -> web.Response:
    q = parse_params(request, _OPS["listDeliveries"])
    return web.json_response(await run(request, lambda c: _deliveries(c, q, None)))


async def list_notifications(request: web.Request) -> web.Response:
    oid = parse_params(request, _OPS["listOrderNotifications"])["id"]

    def read(conn: Conn) -> dict[str, Any]:
        if conn.execute("SELECT 1 FROM orders WHERE id = %s", (oid,)).fetchone() is None:
            raise NotFound(f"no order {oid}")
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                f"SELECT {_NOTIFICATION_COLUMNS} FROM deliveries WHERE order_id = %s ORDER BY id",
                (oid,),
            ).fetchall()
        return {"order_id": oid, "notifications": [_json(r) for r in rows]}

    return web.json_response(await run(request, read))


async def retry_delivery(request: web.Request) -> web.Response:
    did = parse_params(request, _OPS["retryDelivery"])["id"]

    def retry(conn: Conn) -> dict[str, Any]:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                "SELECT d.state, w.active FROM deliveries d"
                " LEFT JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = %s FOR UPDATE OF d",
                (did,),
            ).fetchone()
            if row is None:
                raise NotFound(f"no delivery {did}")
            if row["state"] != "failed":
                raise ApiError(
                    409, "not_failed", f"delivery {did} is {row['state']}: only failed ones retry"
                )
            if row["active"] is False:
                raise ApiError(
                    409, "webhook_inactive", "its webhook is inactive: register the URL again"
                )
            done = cur.execute(
                "UPDATE deliveries SET state = 'pending', attempts = 0,"
                f" next_attempt_at = now() WHERE id = %s RETURNING {_DELIVERY_COLUMNS}",
                (did,),
            ).fetchone()
            cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(did)))
        assert done is not None
        return _json(done)

    return web.json_response(await run(request, retry))


def _contacts(conn: Conn, depot_id: int, contact_id: int | None = None) -> list[dict[str, Any]]:
    if not _depot_exists(conn, depot_id):
        raise NotFound(f"no depot {depot_id}")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, depot_id, name, email, role FROM depot_contacts WHERE depot_id = %s"
            " AND (%s::bigint IS NULL OR id = %s) ORDER BY id",
            (depot_id, contact_id, contact_id),
        ).fetchall()


async def list_contacts(request: web.Request) -> web.Response:
    depot_id = parse_params(request, _OPS["listDepotContacts"])["id"]
    return web.json_response({"contacts": await run(request, lambda c: _contacts(c, depot_id))})


async def create_contact(request: web.Request) -> web.Response:
    depot_id = parse_params(request, _OPS["createDepotContact"])["id"]
    body = await read_json(request, "ContactCreate")
    problem = email_problem(body["email"])
    if problem is not None:
        detail = {"code": "invalid_email", "field": "/email", "message": problem}
        raise ApiError(422, "invalid_email", f"the email {problem}", [detail])

    def add(conn: Conn) -> dict[str, Any]:
        if not _depot_exists(conn, depot_id):
            raise NotFound(f"no depot {depot_id}")
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                "INSERT INTO depot_contacts (depot_id, name, email, role)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (depot_id, email) DO NOTHING"
                " RETURNING id, depot_id, name, email, role",
                (depot_id, body.get("name", ""), body["email"], body.get("role", "supervisor")),
            ).fetchone()
        if row is None:
            raise ApiError(
                409, "contact_exists", f"{body['email']} is already a contact of depot {depot_id}"
            )
        return row

    contact = await run(request, add)
    location = f"{PREFIX}/depots/{depot_id}/contacts"
    return web.json_response(contact, status=201, headers={"Location": location})


async def delete_contact(request: web.Request) -> web.Response:
    q = parse_params(request, _OPS["deleteDepotContact"])

    def remove(conn: Conn) -> dict[str, Any]:
        found = _contacts(conn, q["id"], q["contact_id"])
        if not found:
            raise NotFound(f"depot {q['id']} has no contact {q['contact_id']}")
        conn.execute("DELETE FROM depot_contacts WHERE id = %s", (q["contact_id"],))
        return found[0]

    return web.json_response(await run(request, remove))


_ID = (Param("id", "path", _ID_SCHEMA, "record id"),)
_DEPOT = (Param("id", "path", _ID_SCHEMA, "depot id"),)
_PAGE = (
    Param("state", "query", {"enum": list(DELIVERY_STATES)}, "only deliveries in this state"),
    *PAGE_PARAMS,
)
_NO_HOOK = (404, ("no such webhook", _ERR))
_NO_DEPOT = (404, ("no such depot", _ERR))
OPERATIONS = (
    Operation(
        "createWebhook", "POST", "/webhooks", create_webhook,
        "Subscribe a URL to alert events or customer messages (HMAC-signed POSTs)", _WRITE,
        {201: ("the webhook with its secret, shown only now", "WebhookCreated"),
         400: ("malformed JSON, or the URL's host is not public (address_not_allowed)", _ERR)},
        body="WebhookCreate",
        description="Each POST carries X-Menara-Event, X-Menara-Delivery (de-duplicate on"
        " it), X-Menara-Timestamp and X-Menara-Signature: sha256=<hex HMAC-SHA256 of"
        " \"{timestamp}.{body}\" with the secret>. 2xx acknowledges; anything else is retried"
        " with backoff; 410 Gone deactivates the webhook. A bad URL is 422 invalid_url;"
        " a host that is or resolves to a loopback, private, link-local, multicast or cloud"
        " metadata address is 400 address_not_allowed (unless webhook_allow_private)."
        " A customer_messages webhook (an SMS / WhatsApp gateway) gets one POST per message"
        " to send: {event, medium, to, language, text, tracking_number, tracking_url}.",
    ),
    Operation(
        "listWebhooks", "GET", "/webhooks", list_webhooks, "List webhooks, by id", _READ,
        {200: ("the webhooks (secrets are never shown again)", "WebhookList")},
    ),
    Operation(
        "getWebhook", "GET", "/webhooks/{id}", get_webhook, "Read a webhook", _READ,
        {200: ("the webhook", "Webhook"), 404: _NO_HOOK[1]}, params=_ID,
    ),
    Operation(
        "deleteWebhook", "DELETE", "/webhooks/{id}", delete_webhook,
        "Delete a webhook: it is deactivated (its deliveries stay readable)", _WRITE,
        {200: ("the deactivated webhook", "Webhook"), 404: _NO_HOOK[1]}, params=_ID,
    ),
    Operation(
        "listWebhookDeliveries", "GET", "/webhooks/{id}/deliveries", list_webhook_deliveries,
        "A webhook's deliveries, newest first, with the last error of each", _READ,
        {200: ("a page of deliveries", "DeliveryPage"), 404: _NO_HOOK[1]},
        params=(*_ID, *_PAGE),
    ),
    Operation(
        "listDeliveries", "GET", "/deliveries", list_deliveries,
        "Every delivery (alerts and customer notifications), newest first", _READ,
        {200: ("a page of deliveries", "DeliveryPage")},
        params=(
            Param("channel", "query", {"enum": ["webhook", "email"]}, "only this channel"),
            Param("alert_id", "query", _ID_SCHEMA, "only deliveries of this alert"),
            Param("order_id", "query", _ID_SCHEMA, "only notifications about this order"),
            *_PAGE,
        ),
    ),
    Operation(
        "listOrderNotifications", "GET", "/orders/{id}/notifications", list_notifications,
        "The order's customer notifications, oldest first: sent, pending or failed", _READ,
        {200: ("the notifications with attempts and last error", "NotificationList"),
         404: ("no such order", _ERR)},
        params=(Param("id", "path", _ID_SCHEMA, "order id"),),
    ),
    Operation(
        "retryDelivery", "POST", "/deliveries/{id}/retry", retry_delivery,
        "Send a failed delivery again now, with a fresh attempt count", _WRITE,
        {200: ("the delivery, pending again", "Delivery"), 404: ("no such delivery", _ERR),
         409: ("not failed (not_failed), or its webhook is inactive (webhook_inactive)", _ERR)},
        params=_ID,
    ),
    Operation(
        "listDepotContacts", "GET", "/depots/{id}/contacts", list_contacts,
        "A depot's contacts; its supervisors get alert email", _READ,
        {200: ("the contacts, by id", "ContactList"), 404: _NO_DEPOT[1]}, params=_DEPOT,
    ),
    Operation(
        "createDepotContact", "POST", "/depots/{id}/contacts", create_contact,
        "Add a contact to a depot (a bad address is 422 invalid_email)", _WRITE,
        {201: ("the contact", "Contact"), 404: _NO_DEPOT[1],
         409: ("the address is already a contact of this depot (contact_exists)", _ERR)},
        body="ContactCreate", params=_DEPOT,
    ),
    Operation(
        "deleteDepotContact", "DELETE", "/depots/{id}/contacts/{contact_id}", delete_contact,
        "Remove a contact from a depot", _WRITE,
        {200: ("the removed contact", "Contact"), 404: ("no such depot or contact", _ERR)},
        params=(*_DEPOT, Param("contact_id", "path", _ID_SCHEMA, "contact id")),
    ),
)  # fmt: skip
_OPS = {op.operation_id: op for op in OPERATIONS}
