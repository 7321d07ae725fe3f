"""``menara admin bootstrap`` on a real database: schema, first token, where to go."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from menara.cli import main
from oms_core.api.auth import Role, lookup
from tests.conftest import ADMIN_DSN

pytestmark = pytest.mark.db


@pytest.fixture
def fresh_dsn() -> Iterator[str]:
    """The DSN of a database that does not exist yet; dropped afterwards."""
    name = f"menara_test_admin_{uuid.uuid4().hex[:8]}"
    yield ADMIN_DSN.rpartition("/")[0] + "/" + name
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _dispatchers(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM api_tokens WHERE role = 'dispatcher' AND revoked_at IS NULL"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_bootstrap_migrates_makes_one_token_and_prints_urls(
    fresh_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = fresh_dsn
    monkeypatch.setenv("MENARA_DB_DSN", dsn)
    monkeypatch.setenv("MENARA_PUBLIC_URL", "https://fleet.example.com/")
    monkeypatch.setenv("MENARA_METRICS_PORT", "9464")
    assert main(["admin", "bootstrap"]) == 0
    out, err = capsys.readouterr()
    secret = out.strip()
    assert secret.startswith("mnr_") and "\n" not in secret
    with psycopg.connect(dsn) as conn:
        principal = lookup(conn, secret)
        assert principal is not None and principal.role == Role.DISPATCHER
        version = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    assert version is not None and version[0] >= 5
    for url in (
        "https://fleet.example.com/api/v1\n",
        "https://fleet.example.com/api/v1/openapi.json",
        "https://fleet.example.com/driver/",
        "https://fleet.example.com/t/<public_token of an order>",
        "http://127.0.0.1:9464/metrics",
        "menara dashboards export",
    ):
        assert url in err, url

    # A second run: the schema is current, a live dispatcher token exists.
    assert main(["admin", "bootstrap"]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "1 dispatcher token(s) exist: none created" in err
    assert _dispatchers(dsn) == 1

    assert main(["admin", "bootstrap", "--force", "--name", "night desk"]) == 0
    assert capsys.readouterr().out.strip().startswith("mnr_")
    assert _dispatchers(dsn) == 2


def test_bootstrap_says_when_the_database_is_unreachable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MENARA_DB_DSN", "postgresql://postgres@127.0.0.1:1/menara")
    assert main(["admin", "bootstrap"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("menara admin: ")
