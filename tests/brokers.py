"""A private Mosquitto started from ``deploy/mosquitto.conf`` for tests that count losses.

The broker on 1883 may run Debian's defaults (1000 queued, 20 in flight), which drop
QoS 1 messages for a lagging subscriber; exactly-once tests need the project's limits, so
they get their own broker on a free port with its persistence directory in a temp dir,
configured as Menara's local broker is (``menara.local_broker``: what setup and the demo
run), or with the production password file and ACL.
"""

from __future__ import annotations

import getpass
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from menara import local_broker

PROJECT_CONF = local_broker.PROJECT_CONF  # deploy/mosquitto.conf
PROJECT_ACL = PROJECT_CONF.parent / "mosquitto" / "acl"


class Broker:
    """A private Mosquitto process; ``stop``/``start`` keep its port and its persistence."""

    def __init__(
        self, work: Path, *, password_file: Path | None = None, debian: bool = False
    ) -> None:
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.conf = work / "mosquitto.conf"
        if debian:
            self.conf.write_text(debian_config(self.port))
        else:
            self.conf.write_text(derive_config(self.port, work, password_file=password_file))
        self.log = work / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                ["mosquitto", "-c", str(self.conf)], stdout=out, stderr=out
            )
        try:
            wait_listening(self.host, self.port)
        except OSError:
            pytest.fail(f"private mosquitto did not start: {self.log.read_text()}")

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves sessions and queued messages, then exits."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


def _free_port() -> int:
    # Not tests.conftest.free_port: conftest imports this module (no import cycle).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def derive_config(port: int, data_dir: Path, *, password_file: Path | None = None) -> str:
    """The project config with the listener moved to ``port`` and persistence in ``data_dir``.

    Anonymous, as Menara's local broker (``menara.local_broker.local_config``), unless
    ``password_file`` is given: then its users log in and the project's ACL applies, as in
    production.
    """
    if password_file is None:
        return local_broker.local_config(port, data_dir)
    text = PROJECT_CONF.read_text()
    text = re.sub(r"(?m)^listener 1883\b.*$", f"listener {port} 127.0.0.1", text)
    text = re.sub(r"(?m)^persistence_location .*$", f"persistence_location {data_dir}/", text)
    text = re.sub(r"(?m)^password_file .*$", f"password_file {password_file}", text)
    text = re.sub(r"(?m)^acl_file .*$", f"acl_file {PROJECT_ACL}", text)
    # As root Mosquitto switches to user `mosquitto`, who cannot write our temp dir.
    return text + f"\nuser {getpass.getuser()}\n"


def debian_config(port: int) -> str:
    """Mosquitto as Debian ships it (its queue limits spelled out), anonymous on ``port``."""
    return (
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        "max_queued_messages 1000\nmax_inflight_messages 20\n"
        f"user {getpass.getuser()}\n"
    )


def wait_listening(host: str, port: int, timeout_s: float = 10.0) -> None:
    """Poll until something accepts TCP connections on (host, port)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="session")
def project_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A Mosquitto with the project's queue limits, shared by the whole test session."""
    broker = Broker(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto of the test's own, which the test may stop and start."""
    broker = Broker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def debian_broker(tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto with Debian's defaults: it drops what a session queues beyond 1000."""
    broker = Broker(tmp_path, debian=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
