"""Operations declared once: the router, the auth check, parameter parsing and the
OpenAPI 3.1 document all read the same ``Operation`` records."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from oms_core.api.auth import Role
from oms_core.api.errors import ApiError, invalid
from oms_core.api.schema_check import FieldProblem, parse_date, parse_datetime
from oms_core.api.schemas import SCHEMAS, ref

__all__ = ["PAGE_PARAMS", "PREFIX", "Operation", "Param", "document", "parse_params"]

PREFIX = "/api/v1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ERRORS = {
    401: "no valid token: send Authorization: Bearer <token>",
    403: "the token's role may not do this",
    413: "body too large",
    422: "the request does not match its schema, or the order core refused it",
}


@dataclass(frozen=True, slots=True)
class Param:
    """A path or query parameter; ``schema`` is JSON Schema for one value."""

    name: str
    where: str  # "path" | "query"
    schema: Mapping[str, Any]
    description: str
    many: bool = False  # a repeated query parameter (?state=a&state=b)


@dataclass(frozen=True, slots=True)
class Operation:
    """One endpoint: where it lives, who may call it, what it takes and returns."""

    operation_id: str
    method: str
    path: str  # below PREFIX, OpenAPI template syntax
    handler: Handler
    summary: str
    roles: frozenset[Role] | None  # None: no token needed
    responses: Mapping[int, tuple[str, str | None]]  # status: (description, schema)
    body: str | None = None  # component schema of the JSON request body
    params: Sequence[Param] = field(default_factory=tuple)
    description: str = ""  # more than the summary says (e.g. a CSV layout)
    other_bodies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # media: schema


# Keyset pages: every list takes the same two parameters.
PAGE_PARAMS = (
    Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500}, "page size (50)"),
    Param(
        "cursor",
        "query",
        {"type": "string", "maxLength": 20, "pattern": "^[0-9]+$"},
        "next_cursor of the last page",
    ),
)


def parse_params(request: web.Request, op: Operation) -> dict[str, Any]:
    """Path and query parameters converted by their schemas; a bad path value is 404
    (no such resource), a bad or unknown query parameter 422."""
    values: dict[str, Any] = {}
    problems: list[FieldProblem] = []
    known = {p.name for p in op.params if p.where == "query"}
    problems += [
        FieldProblem("unknown_field", k, f"not one of: {', '.join(sorted(known))}")
        for k in request.query
        if k not in known
    ]
    for p in op.params:
        raw = (
            [request.match_info[p.name]] if p.where == "path" else request.query.getall(p.name, [])
        )
        if p.where == "query" and not p.many and len(raw) > 1:
            problems.append(FieldProblem("invalid_value", p.name, "give it once"))
            continue
        parsed = []
        for text in raw:
            value, problem = _convert(text, p.schema)
            if problem is not None and p.where == "path":
                raise ApiError(404, "not_found", f"no such resource: {p.name} {text!r}")
            if problem is not None:
                problems.append(FieldProblem(problem[0], p.name, problem[1]))
            parsed.append(value)
        if parsed:
            values[p.name] = parsed if p.many else parsed[0]
    if problems:
        raise invalid(problems, "query")
    return values


def _convert(text: str, schema: Mapping[str, Any]) -> tuple[Any, tuple[str, str] | None]:
    if schema.get("type") == "integer":
        if not text.isascii() or not text.lstrip("-").isdigit():
            return None, ("wrong_type", "must be an integer")
        n = int(text)
        if not schema.get("minimum", n) <= n <= schema.get("maximum", n):
            return None, ("invalid_value", f"must be {schema['minimum']}–{schema['maximum']}")
        return n, None
    if "enum" in schema and text not in schema["enum"]:
        return None, ("invalid_value", f"must be one of: {', '.join(schema['enum'])}")
    if schema.get("format") == "date":
        day = parse_date(text)
        return day, None if day is not None else ("invalid_value", "must be YYYY-MM-DD")
    if schema.get("format") == "date-time":
        at = parse_datetime(text) if len(text) <= schema.get("maxLength", 64) else None
        return at, None if at is not None else ("invalid_value", "must be RFC 3339 with an offset")
    if len(text) > schema.get("maxLength", len(text)):
        return None, ("invalid_value", f"allows ≤ {schema['maxLength']} chars")
    if "pattern" in schema and not re.search(schema["pattern"], text):
        return None, ("invalid_value", f"must match {schema['pattern']}")
    return text, None


def _parameter(p: Param) -> dict[str, Any]:
    schema = {"type": "array", "items": dict(p.schema)} if p.many else dict(p.schema)
    out: dict[str, Any] = {"name": p.name, "in": p.where, "description": p.description}
    out["required"] = p.where == "path"
    out["schema"] = schema
    return out


def _operation(op: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    codes = dict(op.responses)
    if op.roles is not None:
        codes.setdefault(401, (_ERRORS[401], "Error"))
        codes.setdefault(403, (_ERRORS[403], "Error"))
    if op.body is not None:
        codes.setdefault(400, ("malformed JSON", "Error"))
        codes.setdefault(413, (_ERRORS[413], "Error"))
        codes.setdefault(415, ("the body is not sent as application/json", "Error"))
    if op.body is not None or any(p.where == "query" for p in op.params):
        codes.setdefault(422, (_ERRORS[422], "Error"))
    for status, (description, schema) in sorted(codes.items()):
        entry: dict[str, Any] = {"description": description}
        if schema is not None:
            entry["content"] = {"application/json": {"schema": ref(schema)}}
        if status == 201:
            entry["headers"] = {
                "Location": {"description": "URL of the new resource", "schema": {"type": "string"}}
            }
        responses[str(status)] = entry
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "responses": responses,
    }
    if op.params:
        out["parameters"] = [_parameter(p) for p in op.params]
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": ref(op.body)},
                **{media: {"schema": dict(schema)} for media, schema in op.other_bodies.items()},
            },
        }
    if op.roles is None:
        out["security"] = []
    else:
        roles = "roles: " + ", ".join(sorted(op.roles))
        out["description"] = f"{op.description}\n\n{roles}" if op.description else roles
    return out


def document(operations: Sequence[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``operations``."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(PREFIX + op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Menara OMS API",
            "version": "1",
            "description": "Orders of the Menara order management core. Errors are always"
            ' {"error": {"code", "message", "details"}}.',
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
