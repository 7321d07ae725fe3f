"""Builders every schema module shares (a leaf module: the per-area schema modules are
merged into ``schemas.SCHEMAS``, so they cannot import it)."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CLOCK",
    "MAX_ID",
    "OPT_TIME",
    "TEXT_PATTERN",
    "TIME",
    "id_schema",
    "obj",
    "page",
    "ref",
    "text_schema",
]

MAX_ID = 2**63 - 1  # bigint ids
TEXT_PATTERN = "^[^\\x00]*$"  # any text PostgreSQL can store (no NUL)
TIME = {"type": "string", "format": "date-time"}
OPT_TIME = {**TIME, "type": ["string", "null"]}
CLOCK = {
    "type": "string",
    "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$",
    "description": "local time HH:MM[:SS]",
}
_CURSOR = {
    "type": ["string", "null"],
    "description": "pass as cursor for the next page; null on the last",
}


def ref(name: str) -> dict[str, str]:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """A closed object: unknown fields are refused (``unknown_field``); every property
    is required unless ``required`` says otherwise."""
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
        "additionalProperties": False,
    }


def id_schema(*, nullable: bool = False) -> dict[str, Any]:
    """A row id (bigint, from 1), or null when ``nullable``."""
    kind: Any = ["integer", "null"] if nullable else "integer"
    return {"type": kind, "minimum": 1, "maximum": MAX_ID}


def text_schema(max_length: int, *, nullable: bool = False) -> dict[str, Any]:
    """Non-empty text up to ``max_length`` characters, or null when ``nullable``."""
    kind: Any = ["string", "null"] if nullable else "string"
    return {"type": kind, "minLength": 1, "maxLength": max_length, "pattern": TEXT_PATTERN}


def page(key: str, item: str) -> dict[str, Any]:
    """One keyset page: the ``item`` rows under ``key`` and the next page's cursor."""
    return obj({key: {"type": "array", "items": ref(item)}, "next_cursor": _CURSOR})
