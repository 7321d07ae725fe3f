"""``menara dashboards publish`` against a local stand-in for Grafana's HTTP API.

The stand-in answers the calls publish makes the way Grafana does (404 for a missing
folder or data source, 409 for a duplicate, 412 for a dashboard without overwrite, 401
for a wrong token) and records every call, so the test checks what was sent and that a
second run updates the same objects instead of creating new ones.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from menara.cli import main
from tests.ports import free_port

TOKEN = "glsa_test_token"


@dataclass
class FakeGrafana:
    """Grafana's folder, data source and dashboard endpoints, in memory."""

    calls: list[tuple[str, str, Any, str]] = field(default_factory=list)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/api/folders/{uid}", self.get_folder)
        app.router.add_post("/api/folders", self.create_folder)
        app.router.add_get("/api/datasources/uid/{uid}", self.get_datasource)
        app.router.add_post("/api/datasources", self.create_datasource)
        app.router.add_put("/api/datasources/uid/{uid}", self.update_datasource)
        app.router.add_post("/api/dashboards/db", self.save_dashboard)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        auth = request.headers.get("Authorization", "")
        self.calls.append((request.method, request.path, body, auth))
        if auth != f"Bearer {TOKEN}":
            return web.json_response({"message": "Unauthorized"}, status=401)
        return await handler(request)

    async def get_folder(self, request: web.Request) -> web.Response:
        folder = self.folders.get(request.match_info["uid"])
        if folder is None:
            return web.json_response({"message": "folder not found"}, status=404)
        return web.json_response(folder)

    async def create_folder(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body["uid"] in self.folders:
            return web.json_response({"message": "folder exists"}, status=409)
        self.folders[body["uid"]] = {"id": len(self.folders) + 1, **body}
        return web.json_response(self.folders[body["uid"]])

    async def get_datasource(self, request: web.Request) -> web.Response:
        ds = self.datasources.get(request.match_info["uid"])
        if ds is None:
            return web.json_response({"message": "Data source not found"}, status=404)
        return web.json_response(ds)

    async def create_datasource(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body["uid"] in self.datasources:
            return web.json_response({"message": "data source exists"}, status=409)
        self.datasources[body["uid"]] = body
        return web.json_response({"id": len(self.datasources), "message": "Datasource added"})

    async def update_datasource(self, request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        if uid not in self.datasources:
            return web.json_response({"message": "Data source not found"}, status=404)
        self.datasources[uid] = await request.json()
        return web.json_response({"message": "Datasource updated"})

    async def save_dashboard(self, request: web.Request) -> web.Response:
        body = await request.json()
        doc = body["dashboard"]
        if body.get("folderUid") not in self.folders:
            return web.json_response({"message": "folder not found"}, status=400)
        old = self.dashboards.get(doc["uid"])
        if old is not None and not body.get("overwrite"):
            return web.json_response({"status": "version-mismatch"}, status=412)
        version = 1 if old is None else old["version"] + 1
        self.dashboards[doc["uid"]] = {"version": version, "folderUid": body["folderUid"]}
        return web.json_response(
            {"id": 1, "uid": doc["uid"], "status": "success", "version": version}
        )


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    """The stand-in serving on a free local port, in its own thread and event loop."""
    fake = FakeGrafana()
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(fake.app())
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


def _publish(url: str, token: str = TOKEN) -> int:
    return main(
        ["dashboards", "publish", "--url", url, "--token", token, "--db-password", "s3cret"]
    )


def test_publish_creates_then_updates_the_same_objects(
    grafana: tuple[FakeGrafana, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = grafana
    assert _publish(url) == 0
    first = [(m, p) for m, p, _, _ in fake.calls]
    uids = ["menara-live-map", "menara-alerts", "menara-delivery-performance"]
    uids.append("menara-fleet-health")
    assert first == [
        ("GET", "/api/folders/menara"),
        ("POST", "/api/folders"),
        ("GET", "/api/datasources/uid/menara-pg"),
        ("POST", "/api/datasources"),
        *[("POST", "/api/dashboards/db")] * len(uids),
    ]
    assert all(auth == f"Bearer {TOKEN}" for _, _, _, auth in fake.calls)
    assert fake.calls[1][2] == {"title": "Menara", "uid": "menara"}
    ds = fake.datasources["menara-pg"]
    assert ds["type"] == "grafana-postgresql-datasource"
    assert ds["jsonData"]["timescaledb"] is True
    assert ds["secureJsonData"] == {"password": "s3cret"}
    saved = [body for m, p, body, _ in fake.calls if p == "/api/dashboards/db"]
    assert [b["dashboard"]["uid"] for b in saved] == uids
    assert all(b["folderUid"] == "menara" and b["overwrite"] is True for b in saved)
    assert all(b["dashboard"]["id"] is None and b["dashboard"]["panels"] for b in saved)
    out = capsys.readouterr().out
    assert "folder 'Menara' (uid menara): created" in out
    assert "data source 'Menara' (uid menara-pg): created" in out

    fake.calls.clear()
    assert _publish(url) == 0
    second = [(m, p) for m, p, _, _ in fake.calls]
    assert second == [
        ("GET", "/api/folders/menara"),
        ("GET", "/api/datasources/uid/menara-pg"),
        ("PUT", "/api/datasources/uid/menara-pg"),
        *[("POST", "/api/dashboards/db")] * len(uids),
    ]
    assert list(fake.folders) == ["menara"] and list(fake.datasources) == ["menara-pg"]
    assert {uid: d["version"] for uid, d in fake.dashboards.items()} == dict.fromkeys(uids, 2)
    out = capsys.readouterr().out
    assert "(uid menara): exists" in out and "(uid menara-pg): updated" in out
    assert "(uid menara-live-map): version 2" in out


def test_a_rejected_token_says_what_to_do(
    grafana: tuple[FakeGrafana, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = grafana
    assert _publish(url, token="wrong") == 1
    err = capsys.readouterr().err
    assert "refused the token (401)" in err and "--token" in err
    assert fake.folders == {} and fake.dashboards == {}


def test_an_unreachable_grafana_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert _publish(url) == 1
    err = capsys.readouterr().err
    assert f"cannot reach Grafana at {url}" in err and "--url" in err


def test_publish_needs_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    assert main(["dashboards", "publish", "--url", "http://127.0.0.1:9"]) == 2
    assert "--token" in capsys.readouterr().err
