"""Builders every schema module shares (a leaf module: the per-area schema modules are
merged into ``schemas.SCHEMAS``, so they cannot import it)."""

from __future__ import annotations

from typing import Any

__all__ = ["obj", "ref"]


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
