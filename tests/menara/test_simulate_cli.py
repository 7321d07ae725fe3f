"""``menara simulate``: runs, reports, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from menara.cli import main
from tests.conftest import listeners_off_env
from tests.polling import wait_for
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_simulate_gives_up_on_a_dead_server(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MENARA_T55_PORT", str(free_port()))
    args = ["simulate", "--transport", "tcp", "--fast", "--duration", "0.3", "--vehicles", "2"]
    assert main(args) == 0
    assert capsys.readouterr().out.endswith("unique fixes delivered: 0\n")


def test_ctrl_c_stops_a_realtime_run() -> None:
    cmd = [sys.executable, "-m", "menara", "simulate", "--transport", "tcp", "--vehicles", "2"]
    cmd += ["--duration", "600"]
    env = {**os.environ, "MENARA_T55_PORT": str(free_port())}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        assert "tcp:" in proc.stdout.readline()  # first progress line: it is running
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
        assert time.monotonic() - began < 3.0
        assert proc.returncode == 0 and "unique fixes delivered: 0" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.db
def test_simulate_device_protocols_against_menara_serve(
    clean_db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``menara serve`` in its own process, ``menara simulate --protocol …`` against it:
    Teltonika and GT06 devices (IMEIs implied) log in, and every fix is stored once."""
    ports = {"MENARA_TELTONIKA_PORT": str(free_port()), "MENARA_GT06_PORT": str(free_port())}
    env = {
        **listeners_off_env(),
        **ports,
        "MENARA_DB_DSN": clean_db,
        "MENARA_TCP_HOST": "127.0.0.1",
        "MENARA_MQTT_PORT": "0",
        "MENARA_METRICS_PORT": "0",
        "MENARA_UNKNOWN_DEVICES": "register",
    }
    serve = subprocess.Popen(
        [sys.executable, "-m", "menara", "serve"], cwd=ROOT, env={**os.environ, **env}
    )
    try:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        wait_for(lambda: _listening(int(ports["MENARA_GT06_PORT"])), "menara serve to listen")
        args = ["simulate", "--transport", "tcp", "--protocol", "teltonika", "--protocol", "gt06"]
        assert main([*args, "--fast", "--fixes", "5", "--vehicles", "4"]) == 0
        assert capsys.readouterr().out.endswith("unique fixes delivered: 20\n")
    finally:
        serve.send_signal(signal.SIGINT)
        assert serve.wait(30) == 0
    with psycopg.connect(clean_db) as conn:
        got = conn.execute("SELECT protocol, count(*) FROM positions GROUP BY 1 ORDER BY 1")
        assert got.fetchall() == [("gt06", 10), ("teltonika", 10)]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
