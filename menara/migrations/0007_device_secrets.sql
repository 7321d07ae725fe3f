-- Schema v7: an optional per-device secret (issue 14). Only its SHA-256 is stored (the
-- secrets are random, made by the API and shown once), so a database dump does not let
-- anyone send as the device. A device with one must present it: OsmAnd HTTP requests
-- carry it as the `key` query parameter (ingest/http.py). NULL: no secret.

ALTER TABLE devices
    ADD COLUMN secret_hash text CHECK (secret_hash ~ '^[0-9a-f]{64}$');
