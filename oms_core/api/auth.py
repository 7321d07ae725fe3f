"""API tokens and roles: a token is a random secret shown once; only its SHA-256 is stored.

A SHA-256 (not a slow password hash) is enough because the secrets are 256 random bits,
not something a person chose, and it lets the lookup be one indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import psycopg

from oms_core.errors import NotFound

__all__ = [
    "TOKEN_PREFIX",
    "Principal",
    "Role",
    "create_sign_in_code",
    "create_token",
    "hash_token",
    "lookup",
    "redeem_sign_in_code",
    "revoke",
]

TOKEN_PREFIX = "mnr_"  # makes leaked tokens easy to spot in logs and secret scanners


class Role(StrEnum):
    """What a token may do; stored in ``api_tokens.role``."""

    DISPATCHER = "dispatcher"  # control room: everything
    SUPERVISOR = "supervisor"  # reads everything, changes nothing
    DRIVER = "driver"  # only their own trips and stops
    CUSTOMER = "customer"  # only their orders, through tracking tokens


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's id, name (the audit trail's actor), role and driver."""

    token_id: int
    name: str
    role: Role
    driver_id: int | None


def hash_token(secret: str) -> str:
    """The stored form of a token: SHA-256 hex of the whole secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    conn: psycopg.Connection[Any], name: str, role: Role | str, driver_id: int | None = None
) -> str:
    """Store a new token and return its secret; it cannot be read back later."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with conn.transaction():
        conn.execute(
            "INSERT INTO api_tokens (name, role, token_hash, driver_id) VALUES (%s, %s, %s, %s)",
            (name, str(Role(role)), hash_token(secret), driver_id),
        )
    return secret


def revoke(conn: psycopg.Connection[Any], secret: str) -> bool:
    """Revoke the token with this secret; False when no live token has it."""
    with conn.transaction():
        cur = conn.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE token_hash = %s AND revoked_at IS NULL",
            (hash_token(secret),),
        )
    return cur.rowcount == 1


def lookup(conn: psycopg.Connection[Any], secret: str) -> Principal | None:
    """The live token with this secret, or None (unknown or revoked)."""
    row = conn.execute(
        "SELECT id, name, role, driver_id FROM api_tokens"
        " WHERE token_hash = %s AND revoked_at IS NULL",
        (hash_token(secret),),
    ).fetchone()
    return None if row is None else Principal(row[0], row[1], Role(row[2]), row[3])


def create_sign_in_code(conn: psycopg.Connection[Any], driver_id: int, ttl_s: float) -> str:
    """A one-time sign-in code for the driver, valid ``ttl_s`` seconds; only its SHA-256
    is stored. ``NotFound`` for an unknown driver."""
    code = secrets.token_urlsafe(24)
    with conn.transaction():
        if conn.execute("SELECT 1 FROM drivers WHERE id = %s", (driver_id,)).fetchone() is None:
            raise NotFound(f"no driver {driver_id}")
        conn.execute(
            "INSERT INTO driver_sign_in_links (driver_id, code_hash, expires_at)"
            " VALUES (%s, %s, now() + make_interval(secs => %s))",
            (driver_id, hash_token(code), ttl_s),
        )
    return code


def redeem_sign_in_code(conn: psycopg.Connection[Any], code: str) -> tuple[str, int, str] | None:
    """Exchange a live, unused code for a new driver token: (secret, driver id, name).
    None when the code is unknown, used or expired (one answer for all three)."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE driver_sign_in_links l SET used_at = now() FROM drivers d"
            " WHERE l.code_hash = %s AND l.used_at IS NULL AND l.expires_at > now()"
            " AND d.id = l.driver_id RETURNING d.id, d.name",
            (hash_token(code),),
        ).fetchone()
        if row is None:
            return None
        driver_id, name = int(row[0]), str(row[1])
        secret = create_token(conn, f"driver {driver_id} ({name}) phone", Role.DRIVER, driver_id)
    return secret, driver_id, name
