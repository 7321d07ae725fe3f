"""The OMS API served by ``menara serve`` (``service.serve``), with a CLI-made token."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from ingest.counters import Counters
from menara.cli import main
from tests.ingest.test_service import running, settings_for
from tests.ports import free_port

pytestmark = pytest.mark.db


def test_serve_runs_the_api_and_cli_tokens_work(
    clean_db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MENARA_DB_DSN", clean_db)
    assert main(["token", "create", "--name", "desk", "--role", "supervisor"]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("mnr_")
    cfg = settings_for(clean_db, api_port=free_port())
    base = f"http://127.0.0.1:{cfg.api_port}/api/v1"

    async def main_() -> None:
        async with running(cfg, Counters()), aiohttp.ClientSession() as http:
            async with http.get(f"{base}/openapi.json") as r:
                assert r.status == 200 and (await r.json())["openapi"].startswith("3.1")
            async with http.get(f"{base}/orders") as r:
                assert r.status == 401
            auth = {"Authorization": f"Bearer {secret}"}
            async with http.get(f"{base}/orders", headers=auth) as r:
                # a list (other tests' orders may share this database)
                assert r.status == 200 and isinstance((await r.json())["orders"], list)
            async with http.post(f"{base}/orders", json={}, headers=auth) as r:
                assert r.status == 403  # a supervisor reads, never writes

    asyncio.run(main_())
    assert main(["token", "revoke", secret]) == 0
    assert main(["token", "revoke", secret]) == 1
