"""A small JSON Schema (2020-12) validator for the subset the API's schemas use.

The OpenAPI document and the request checks read the same schema dicts, so what the
document promises is what the handlers enforce. A schema that uses a keyword outside
the subset is refused when it is checked (``check_schema``), never silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

__all__ = ["FieldProblem", "check_schema", "parse_date", "parse_datetime", "validate"]

Schema = Mapping[str, Any]
_ANNOTATIONS = frozenset({"description", "title", "examples", "readOnly", "default"})
_KEYWORDS = frozenset(
    {
        "$ref", "type", "enum", "properties", "required", "additionalProperties", "items",
        "minItems", "maxItems", "minLength", "maxLength", "minimum", "maximum", "pattern",
        "format",
    }
) | _ANNOTATIONS  # fmt: skip
_REF = "#/components/schemas/"
_JSON_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One reason a value does not match: a stable code, a JSON pointer and a message."""

    code: str  # unknown_field | missing_field | wrong_type | invalid_value
    field: str
    message: str


def check_schema(schema: Schema, registry: Mapping[str, Schema]) -> None:
    """Raise ``ValueError`` if ``schema`` uses anything this validator does not enforce."""
    unknown = set(schema) - _KEYWORDS
    if unknown:
        raise ValueError(f"unsupported schema keywords: {sorted(unknown)}")
    if "$ref" in schema and schema["$ref"].removeprefix(_REF) not in registry:
        raise ValueError(f"unresolved $ref {schema['$ref']}")
    types = schema.get("type", [])
    if not set([types] if isinstance(types, str) else types) <= _JSON_TYPES:
        raise ValueError(f"unknown type {types!r}")
    if schema.get("additionalProperties", False) is not False:
        raise ValueError("only additionalProperties: false is supported")
    if schema.get("format", "date-time") not in ("date-time", "date"):
        raise ValueError(f"unsupported format {schema['format']}")
    for sub in schema.get("properties", {}).values():
        check_schema(sub, registry)
    if "items" in schema:
        check_schema(schema["items"], registry)


def validate(value: Any, schema: Schema, registry: Mapping[str, Schema]) -> list[FieldProblem]:
    """Every way ``value`` (parsed JSON) fails ``schema``; empty when it matches."""
    found: list[FieldProblem] = []
    _walk(value, schema, registry, "", found)
    return found


def _type_of(value: Any) -> set[str]:
    if value is None:
        return {"null"}
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int):
        return {"integer", "number"}
    if isinstance(value, float):
        return {"number", "integer"} if value.is_integer() else {"number"}
    if isinstance(value, str):
        return {"string"}
    return {"array"} if isinstance(value, list) else {"object"}


def _walk(
    value: Any, schema: Schema, registry: Mapping[str, Schema], at: str, found: list[FieldProblem]
) -> None:
    if "$ref" in schema:
        schema = registry[schema["$ref"].removeprefix(_REF)]
    where = at or "/"
    types = schema.get("type")
    if types is not None:
        wanted = [types] if isinstance(types, str) else list(types)
        if not _type_of(value) & set(wanted):
            found.append(FieldProblem("wrong_type", where, f"must be {' or '.join(wanted)}"))
            return
    if "enum" in schema and value not in schema["enum"]:
        options = ", ".join(str(v) for v in schema["enum"])
        found.append(FieldProblem("invalid_value", where, f"must be one of: {options}"))
    if isinstance(value, dict):
        _object(value, schema, registry, at, found)
    elif isinstance(value, list):
        _array(value, schema, registry, at, found)
    elif isinstance(value, str):
        _string(value, schema, where, found)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(FieldProblem("invalid_value", where, f"must be ≥ {schema['minimum']}"))
        if "maximum" in schema and value > schema["maximum"]:
            found.append(FieldProblem("invalid_value", where, f"must be ≤ {schema['maximum']}"))


def _object(
    value: dict[str, Any],
    schema: Schema,
    registry: Mapping[str, Schema],
    at: str,
    found: list[FieldProblem],
) -> None:
    props: Mapping[str, Schema] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            found.append(FieldProblem("missing_field", f"{at}/{name}", "is required"))
    for name, item in value.items():
        if name in props:
            _walk(item, props[name], registry, f"{at}/{name}", found)
        elif schema.get("additionalProperties", True) is False:
            known = ", ".join(props)
            found.append(FieldProblem("unknown_field", f"{at}/{name}", f"not one of: {known}"))


def _array(
    value: list[Any], schema: Schema, registry: Mapping[str, Schema], at: str, found: list[Any]
) -> None:
    if len(value) < schema.get("minItems", 0):
        found.append(
            FieldProblem("invalid_value", at or "/", f"needs ≥ {schema['minItems']} items")
        )
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        found.append(
            FieldProblem("invalid_value", at or "/", f"allows ≤ {schema['maxItems']} items")
        )
    if "items" in schema:
        for i, item in enumerate(value):
            _walk(item, schema["items"], registry, f"{at}/{i}", found)


def _string(value: str, schema: Schema, where: str, found: list[FieldProblem]) -> None:
    if len(value) < schema.get("minLength", 0):
        found.append(FieldProblem("invalid_value", where, f"needs ≥ {schema['minLength']} chars"))
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        found.append(FieldProblem("invalid_value", where, f"allows ≤ {schema['maxLength']} chars"))
    if "pattern" in schema and not re.search(schema["pattern"], value):
        found.append(FieldProblem("invalid_value", where, f"must match {schema['pattern']}"))
    fmt = schema.get("format")
    if fmt == "date-time" and parse_datetime(value) is None:
        found.append(FieldProblem("invalid_value", where, "must be an RFC 3339 date-time"))
    if fmt == "date" and parse_date(value) is None:
        found.append(FieldProblem("invalid_value", where, "must be a date (YYYY-MM-DD)"))


_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", re.ASCII
)


def parse_datetime(text: str) -> datetime | None:
    """An RFC 3339 date-time with an offset, or None (a time without a zone is ambiguous)."""
    if not _DATE_TIME.match(text):
        return None
    try:
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_date(text: str) -> date | None:
    """A YYYY-MM-DD date, or None."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text, re.ASCII):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None
