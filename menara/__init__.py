"""Menara: GPS telematics ingestion and live control tower for delivery fleets.

This package is the wiring: settings, the ``menara`` command line and the demo.
"""

__version__ = "0.1.0"
