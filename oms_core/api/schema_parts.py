"""Builders every schema module shares (a leaf module: the per-area schema modules are
merged into ``schemas.SCHEMAS``, so they cannot import it)."""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_ID", "TEXT_PATTERN", "id_schema", "obj", "ref", "text_schema"]

MAX_ID = 2**63 - 1  # bigint ids
TEXT_PATTERN = "^[^\\x00]*$"  # any text PostgreSQL can store (no NUL)


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
