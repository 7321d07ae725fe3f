"""Fixtures shared by the order core tests: the seeded world and a connection to it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.oms_core import World, seed

Conn = psycopg.Connection[Any]


@pytest.fixture
def world(clean_db: str) -> World:
    return seed(clean_db)


@pytest.fixture
def conn(world: World) -> Iterator[Conn]:
    with psycopg.connect(world.dsn, autocommit=True) as c:
        yield c
