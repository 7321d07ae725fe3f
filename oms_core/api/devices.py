"""Device endpoints: register trackers and phones, list them with their newest fix,
disable and enable them, change the protocol they are bound to, give them a secret.

Ingest reloads the registry every few seconds (``menara.service``), so a device
registered here is admitted under ``unknown_devices = reject`` without a restart, and a
disabled one is refused (its data kept as dead letters) just as soon. The list is a
keyset page by device id (``cursor`` = the last page's ``next_cursor``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web

from oms_core import devices
from oms_core.api.auth import Role
from oms_core.api.context import jsonable, read_json, run
from oms_core.api.schemas_setup import DEVICE_ID_PATTERN
from oms_core.api.spec import PREFIX, Operation, Param, parse_params

__all__ = ["OPERATIONS"]

_READ = frozenset({Role.DISPATCHER, Role.SUPERVISOR})
_WRITE = frozenset({Role.DISPATCHER})
_DEVICE_ID = {"type": "string", "maxLength": 64, "pattern": DEVICE_ID_PATTERN}
_ERR = "Error"


def _json(device: devices.Device) -> dict[str, Any]:
    out: dict[str, Any] = jsonable(asdict(device))
    return out


async def register(request: web.Request) -> web.Response:
    body = await read_json(request, "DeviceCreate")
    device = await run(
        request,
        lambda c: devices.register_device(
            c,
            body["device_id"],
            protocol=body["protocol"],
            label=body.get("label"),
            vehicle_id=body.get("vehicle_id"),
        ),
    )
    location = f"{PREFIX}/devices/{device.device_id}"
    return web.json_response(_json(device), status=201, headers={"Location": location})


async def list_devices(request: web.Request) -> web.Response:
    q = parse_params(request, _OPS["listDevices"])
    limit = q.get("limit", 50)
    enabled = None if "enabled" not in q else q["enabled"] == "true"
    found = await run(
        request,
        lambda c: devices.list_devices(
            c, after=q.get("cursor"), limit=limit + 1, enabled=enabled, protocol=q.get("protocol")
        ),
    )
    page = found[:limit]
    nxt = page[-1].device_id if len(found) > limit else None
    return web.json_response({"devices": [_json(d) for d in page], "next_cursor": nxt})


async def get_device(request: web.Request) -> web.Response:
    device_id = parse_params(request, _OPS["getDevice"])["device_id"]
    return web.json_response(_json(await run(request, lambda c: devices.get_device(c, device_id))))


async def disable(request: web.Request) -> web.Response:
    device_id = parse_params(request, _OPS["disableDevice"])["device_id"]
    found = await run(request, lambda c: devices.set_enabled(c, device_id, False))
    return web.json_response(_json(found))


async def update(request: web.Request) -> web.Response:
    device_id = parse_params(request, _OPS["updateDevice"])["device_id"]
    body = await read_json(request, "DeviceUpdate")
    found = await run(request, lambda c: devices.set_protocol(c, device_id, body["protocol"]))
    return web.json_response(_json(found))


async def new_secret(request: web.Request) -> web.Response:
    device_id = parse_params(request, _OPS["newDeviceSecret"])["device_id"]
    secret = await run(request, lambda c: devices.new_secret(c, device_id))
    return web.json_response({"device_id": device_id, "secret": secret}, status=201)


async def clear_secret(request: web.Request) -> web.Response:
    device_id = parse_params(request, _OPS["clearDeviceSecret"])["device_id"]
    found = await run(request, lambda c: devices.clear_secret(c, device_id))
    return web.json_response(_json(found))


async def enable(request: web.Request) -> web.Response:
    device_id = parse_params(request, _OPS["enableDevice"])["device_id"]
    found = await run(request, lambda c: devices.set_enabled(c, device_id, True))
    return web.json_response(_json(found))


_PATH = (Param("device_id", "path", _DEVICE_ID, "the device's id"),)
_NOT_FOUND = (f"no such device: register it first (POST {PREFIX}/devices)", _ERR)
OPERATIONS = (
    Operation(
        "listDevices", "GET", "/devices", list_devices,
        "List registered devices by id with their newest fix, a page at a time", _READ,
        {200: ("one page of devices", "DevicePage")},
        params=(
            Param("enabled", "query", {"enum": ["true", "false"]}, "only enabled / disabled"),
            Param("protocol", "query", {"type": "string", "maxLength": 32}, "only this protocol"),
            Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500},
                  "page size (50)"),
            Param("cursor", "query", _DEVICE_ID, "next_cursor of the last page"),
        ),
    ),
    Operation(
        "registerDevice", "POST", "/devices", register,
        "Register a device so ingest accepts its data", _WRITE,
        {201: ("the registered device", "Device"), 404: ("no such vehicle", _ERR),
         409: ("the device id is already registered", _ERR)},
        body="DeviceCreate",
        description="Ingest admits it within a few seconds (the registry reloads), also"
        " under unknown_devices = reject. With vehicle_id it becomes that vehicle's tracker"
        " (the control tower follows the vehicle through it).",
    ),
    Operation(
        "getDevice", "GET", "/devices/{device_id}", get_device,
        "Read a device with its newest fix", _READ,
        {200: ("the device", "Device"), 404: _NOT_FOUND}, params=_PATH,
    ),
    Operation(
        "disableDevice", "POST", "/devices/{device_id}/disable", disable,
        "Refuse a device's data from now on (kept as dead letters)", _WRITE,
        {200: ("the disabled device", "Device"), 404: _NOT_FOUND}, params=_PATH,
    ),
    Operation(
        "enableDevice", "POST", "/devices/{device_id}/enable", enable,
        "Accept a disabled device's data again", _WRITE,
        {200: ("the enabled device", "Device"), 404: _NOT_FOUND}, params=_PATH,
    ),
    Operation(
        "updateDevice", "PATCH", "/devices/{device_id}", update,
        "Bind a device to another protocol", _WRITE,
        {200: ("the changed device", "Device"), 404: _NOT_FOUND},
        body="DeviceUpdate", params=_PATH,
        description="Ingest takes a device's data only in its protocol (another is refused"
        " as wrong_protocol and kept as a dead letter); within a few seconds it takes the"
        " new one. A stored fix of another protocol is replaced by the device's own fix"
        " for the same time.",
    ),
    Operation(
        "newDeviceSecret", "POST", "/devices/{device_id}/secret", new_secret,
        "Give a device a new secret (shown once)", _WRITE,
        {201: ("the secret: configure it on the device now", "DeviceSecret"),
         404: _NOT_FOUND},
        params=_PATH,
        description="Replaces any earlier secret; only its SHA-256 is stored. From the next"
        " registry reload (a few seconds) the device's OsmAnd requests must carry it as the"
        " key query parameter (?key=...), else they are refused 403 bad_secret. For an MQTT"
        " device use it as its broker password (README: device users on the broker).",
    ),
    Operation(
        "clearDeviceSecret", "DELETE", "/devices/{device_id}/secret", clear_secret,
        "Remove a device's secret: its requests need none again", _WRITE,
        {200: ("the device", "Device"), 404: _NOT_FOUND}, params=_PATH,
    ),
)  # fmt: skip
_OPS = {op.operation_id: op for op in OPERATIONS}
