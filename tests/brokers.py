"""A private Mosquitto started from ``deploy/mosquitto.conf`` for tests that count losses.

The broker on 1883 may run Debian's defaults (1000 queued, 20 in flight), which drop
QoS 1 messages for a lagging subscriber; exactly-once tests need the project's limits, so
they get their own broker on a free port with its persistence directory in a temp dir,
configured as Menara's local broker is (``menara.local_broker``: what setup and the demo
run), or with the production password file and ACL.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from pathlib import Path

import pytest

from menara import local_broker
from tests.ports import free_port

PROJECT_CONF = local_broker.PROJECT_CONF  # deploy/mosquitto.conf
PROJECT_ACL = PROJECT_CONF.parent / "mosquitto" / "acl"


class Broker(local_broker.LocalBroker):
    """A private Mosquitto on a free port; ``stop``/``start`` keep its port and persistence.

    Anonymous with the project's limits (as Menara's local broker), or with the production
    password file and ACL (``password_file``), or as Debian ships it (``debian``).
    """

    def __init__(
        self, work: Path, *, password_file: Path | None = None, debian: bool = False
    ) -> None:
        port = free_port()
        if debian:
            config = debian_config(port)
        else:
            acl = PROJECT_ACL if password_file is not None else None
            config = local_broker.local_config(
                port, work.resolve(), password_file=password_file, acl_file=acl
            )
        super().__init__(work, port, config=config)


def debian_config(port: int) -> str:
    """Mosquitto as Debian ships it (its queue limits spelled out), anonymous on ``port``."""
    return (
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        "max_queued_messages 1000\nmax_inflight_messages 20\n"
        f"user {getpass.getuser()}\n"
    )


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
