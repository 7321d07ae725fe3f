"""Virtual delivery vehicles that drive Jakarta routes and speak real tracker bytes.

``run_fleet(FleetConfig(...))`` drives vehicles over MQTT and TCP (T55 NMEA) with optional
fault injection; ``routes`` holds the sample routes, ``nmea_out`` the sentence encoders.
This package imports no project package except ``ingest.backoff``.
"""
