"""Deviation errors: one root, so callers can catch every plan-vs-actual failure at once."""

__all__ = ["DeviationError", "RouteError"]


class DeviationError(Exception):
    """A plan-vs-actual rule could not be set up."""


class RouteError(DeviationError, ValueError):
    """A planned route cannot serve as a corridor (empty or not finite)."""
