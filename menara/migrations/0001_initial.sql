-- Schema v1: devices, positions (one row a fix), dead letters, engine metadata.
-- Unknown readings are NULL. TimescaleDB specifics (hypertable, compression) and the
-- time_bucket shim are applied by menara.db after the migrations, per engine.

CREATE TABLE devices (
    device_id  text PRIMARY KEY,          -- the IMEI / id the device sends
    protocol   text,
    label      text,
    enabled    boolean NOT NULL DEFAULT true,
    vehicle_id bigint,                    -- link to a vehicle, set later
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE positions (
    device_id     text             NOT NULL,
    fix_time      timestamptz      NOT NULL,
    received_time timestamptz      NOT NULL,
    lat           double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon           double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    speed_kmh     real,
    course_deg    real,
    altitude_m    real,
    satellites    smallint,
    hdop          real,
    valid         boolean          NOT NULL,
    ignition      boolean,
    odometer_m    double precision,
    attributes    jsonb,
    transport     text             NOT NULL,
    protocol      text             NOT NULL,
    PRIMARY KEY (device_id, fix_time)     -- a resent fix is stored once
);
CREATE INDEX positions_fix_time_idx ON positions (fix_time DESC);

CREATE TABLE dead_letters (
    id            bigserial PRIMARY KEY,
    received_time timestamptz NOT NULL,
    transport     text        NOT NULL,
    protocol      text        NOT NULL,
    peer          text        NOT NULL DEFAULT '',
    device_id     text,
    reason        text        NOT NULL,   -- the stable reject code
    detail        text        NOT NULL DEFAULT '',
    raw           bytea       NOT NULL
);
CREATE INDEX dead_letters_received_time_idx ON dead_letters (received_time);
CREATE INDEX dead_letters_protocol_reason_idx ON dead_letters (protocol, reason, received_time);

CREATE TABLE menara_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
