"""``menara simulate``: runs, reports, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from menara.cli import main
from tests.conftest import free_port

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
