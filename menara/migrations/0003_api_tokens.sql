-- Schema v3: API tokens for the OMS REST API (issue 5). Only the SHA-256 of a token's
-- secret is stored, so a database dump does not hand out access; a token is revoked by
-- setting revoked_at (rows stay for the audit trail's actor names).

CREATE TABLE api_tokens (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CHECK (name <> ''),
    role        text NOT NULL CHECK (role IN ('dispatcher', 'supervisor', 'driver', 'customer')),
    token_hash  text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    driver_id   bigint REFERENCES drivers (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CHECK ((role = 'driver') = (driver_id IS NOT NULL))  -- a driver token names its driver
);
