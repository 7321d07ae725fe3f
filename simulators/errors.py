"""One error root for the simulators, so callers can catch everything we raise on purpose."""

from __future__ import annotations


class SimulatorError(Exception):
    """Root of every error the simulators raise on purpose."""


class RouteError(SimulatorError, ValueError):
    """A route or route file is unusable (bad JSON, no lines, coordinates out of range)."""


class EncodeError(SimulatorError, ValueError):
    """A value cannot be written as the requested sentence (out of range, illegal character)."""


class ConfigError(SimulatorError, ValueError):
    """A fleet configuration value is outside its allowed range or set."""
