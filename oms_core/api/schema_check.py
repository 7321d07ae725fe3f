"""Request values checked against the API's component schemas by ``jsonschema_rs``.

The OpenAPI document and the request checks read the same schema dicts, so what the
document promises is what the handlers enforce. ``jsonschema_rs`` (Draft 2020-12, in
Rust) does the validating: about 30 µs for an order where the pure-Python ``jsonschema``
takes 350-1,200 µs on the event loop, which a 5,000-order import would feel. This module
turns its errors into ``FieldProblem``s with a stable code, a JSON pointer and a short
message written here, never the library's own text (which quotes the whole offending
value back). A schema using a keyword without such a message is refused when its
validator is built (``check_schema``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any, cast

import jsonschema_rs
from jsonschema_rs import Draft202012Validator, ValidationError, ValidationErrorKind

from oms_core.api.schemas import SCHEMAS

__all__ = ["FieldProblem", "check_schema", "parse_date", "parse_datetime", "problems_in"]

_REF = "#/components/schemas/"
_ANNOTATIONS = frozenset({"description", "title", "examples", "readOnly", "default"})
# The keywords a message is written for; validation keywords outside it are refused.
_KEYWORDS = frozenset(
    {
        "$ref", "type", "enum", "properties", "required", "additionalProperties", "items",
        "minItems", "maxItems", "minLength", "maxLength", "minimum", "maximum", "pattern",
        "format",
    }
) | _ANNOTATIONS  # fmt: skip
_FORMAT_MESSAGES = {
    "date-time": "must be an RFC 3339 date-time",
    "date": "must be a date (YYYY-MM-DD)",
}


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One reason a value does not match: a stable code, a JSON pointer and a message."""

    code: str  # unknown_field | missing_field | wrong_type | invalid_value
    field: str
    message: str


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


# The two formats the schemas use, checked by the parsers the handlers use afterwards.
_FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": lambda text: parse_datetime(text) is not None,
    "date": lambda text: parse_date(text) is not None,
}


def check_schema(schema: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` if ``schema`` is not valid JSON Schema 2020-12, or uses a
    keyword or format this module has no clear message for."""
    try:
        jsonschema_rs.meta.validate(dict(schema))
    except ValidationError as exc:
        raise ValueError(f"not JSON Schema 2020-12: {exc.message}") from exc
    _check_keywords(schema)


def _check_keywords(schema: Mapping[str, Any]) -> None:
    unknown = set(schema) - _KEYWORDS
    if unknown:
        raise ValueError(f"unsupported schema keywords: {sorted(unknown)}")
    if "$ref" in schema and schema["$ref"].removeprefix(_REF) not in SCHEMAS:
        raise ValueError(f"unresolved $ref {schema['$ref']}")
    if "format" in schema and schema["format"] not in _FORMAT_MESSAGES:
        raise ValueError(f"unsupported format {schema['format']}")
    for sub in schema.get("properties", {}).values():
        _check_keywords(sub)
    if isinstance(schema.get("items"), Mapping):
        _check_keywords(schema["items"])


_DOCUMENT = {"components": {"schemas": SCHEMAS}}  # what ``_REF`` points into


@cache
def _validator(name: str) -> Draft202012Validator:
    check_schema(SCHEMAS[name])
    root = {"$ref": _REF + name, **_DOCUMENT}
    return Draft202012Validator(root, formats=_FORMATS, validate_formats=True)


def problems_in(value: Any, schema: str) -> list[FieldProblem]:
    """Every way ``value`` (parsed JSON) fails component schema ``schema``; empty when it
    matches. Where a value has the wrong type, that is the one problem named there."""
    found: dict[tuple[str, str], FieldProblem] = {}
    for error in _validator(schema).iter_errors(value):
        for p in _from_error(error):
            found.setdefault((p.code, p.field), p)
    wrong = {p.field for p in found.values() if p.code == "wrong_type"}
    return [p for p in found.values() if p.code == "wrong_type" or p.field not in wrong]


def _pointer(path: Iterable[Any], name: str | None = None) -> str:
    parts = [str(p) for p in path] + ([] if name is None else [name])
    return "/" + "/".join(parts)


def _from_error(error: ValidationError) -> list[FieldProblem]:
    at, kind = error.instance_path, error.kind
    if isinstance(kind, ValidationErrorKind.Required):
        return [FieldProblem("missing_field", _pointer(at, kind.property), "is required")]
    if isinstance(kind, ValidationErrorKind.AdditionalProperties):
        known = ", ".join(_schema_at(error.schema_path[:-1]).get("properties", {}))
        return [
            FieldProblem("unknown_field", _pointer(at, k), f"not one of: {known}")
            for k in kind.unexpected
        ]
    if isinstance(kind, ValidationErrorKind.Type):
        return [FieldProblem("wrong_type", _pointer(at), f"must be {' or '.join(kind.types)}")]
    return [FieldProblem("invalid_value", _pointer(at), _MESSAGES[kind.name](kind.value))]


def _schema_at(path: Sequence[str | int]) -> Mapping[str, Any]:
    """The schema at ``path`` (an error's absolute schema location, resolved ``$ref``)."""
    node: Any = _DOCUMENT
    for key in path:
        node = node[key]
    return cast(Mapping[str, Any], node)


_MESSAGES: dict[str, Callable[[Any], str]] = {
    "enum": lambda v: f"must be one of: {', '.join(str(x) for x in v)}",
    "minimum": lambda v: f"must be ≥ {v}",
    "maximum": lambda v: f"must be ≤ {v}",
    "minItems": lambda v: f"needs ≥ {v} items",
    "maxItems": lambda v: f"allows ≤ {v} items",
    "minLength": lambda v: f"needs ≥ {v} chars",
    "maxLength": lambda v: f"allows ≤ {v} chars",
    "pattern": lambda v: f"must match {v}",
    "format": lambda v: _FORMAT_MESSAGES[v],
}
