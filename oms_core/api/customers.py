"""Placeholder filled in this session (issue 5)."""

from __future__ import annotations

from oms_core.api.spec import Operation

OPERATIONS: tuple[Operation, ...] = ()
