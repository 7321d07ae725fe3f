"""One codec for every rule state: a frozen dataclass to JSON-ready values and back,
read from its type hints, so a new state field is saved and restored without code.

Field names are the keys; tuples and frozensets are lists (frozensets sorted, so a save
is deterministic); ``X | None`` may be null; a NaN float is saved as null (PostgreSQL's
jsonb has no NaN) and a null in a plain ``float`` field reads back as NaN (in a
``float | None`` field it reads back as None: no state keeps NaN there). Decoding
checks every value against its type and raises ``ValueError`` on anything else. A key
missing from a save takes the field's default (states saved before the field existed).
"""

from __future__ import annotations

import dataclasses
import math
import types
from functools import cache
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

__all__ = ["decode", "encode"]

T = TypeVar("T")


def encode(value: Any) -> Any:
    """``value`` (a dataclass instance, or any value a state field holds) as JSON-ready data."""
    t: Any = type(value)
    if t is float:
        return None if math.isnan(value) else value
    if value is None or t is int or t is str or t is bool:
        return value
    if t is tuple:
        return [encode(v) for v in value]
    names = _fields(t)
    if names:  # a state: the common case, read by exact type (``is_dataclass`` is slow)
        return {name: encode(getattr(value, name)) for name in names}
    if isinstance(value, tuple):
        return [encode(v) for v in value]
    if isinstance(value, frozenset):
        return sorted(encode(v) for v in value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


@cache
def _fields(cls: Any) -> tuple[str, ...]:
    """A dataclass's field names (empty for any other type)."""
    if not dataclasses.is_dataclass(cls):
        return ()
    return tuple(f.name for f in dataclasses.fields(cls))


def decode(cls: type[T], data: Any) -> T:
    """The ``cls`` instance ``encode`` saved as ``data``; ``ValueError`` if it is not one."""
    out: T = _value(cls, data)
    return out


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _value(tp: Any, data: Any) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if data is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _value(inner, data)
    if origin is Literal:
        if data not in get_args(tp):
            raise ValueError(f"{data!r} is not one of {get_args(tp)}")
        return data
    if origin is tuple:
        args = get_args(tp)
        items = _list(data)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], v) for v in items)
        if len(items) != len(args):
            raise ValueError(f"expected {len(args)} items, got {len(items)}")
        return tuple(_value(a, v) for a, v in zip(args, items, strict=True))
    if origin is frozenset:
        (inner,) = get_args(tp)
        return frozenset(_value(inner, v) for v in _list(data))
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, data)
    return _scalar(tp, data)


def _dataclass(cls: Any, data: Any) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} must be saved as an object, not {data!r}")
    hints = _hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {sorted(unknown)}")
    return cls(**{name: _value(hints[name], data[name]) for name in known if name in data})


def _list(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise ValueError(f"expected a list, got {data!r}")
    return data


def _scalar(tp: Any, data: Any) -> Any:
    if tp is float:
        if data is None:
            return math.nan
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise ValueError(f"expected a number, got {data!r}")
        try:
            return float(data)
        except OverflowError as exc:  # an integer of hundreds of digits
            raise ValueError(f"number out of range: {data!r}") from exc
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise ValueError(f"expected an integer, got {data!r}")
        return data
    if tp is bool or tp is str:
        if not isinstance(data, tp):
            raise ValueError(f"expected {tp.__name__}, got {data!r}")
        return data
    raise TypeError(f"the state codec cannot read {tp!r}: add it to tower/codec.py")
