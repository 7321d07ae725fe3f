-- Schema v4: the control tower. Zones, per-vehicle rule state, ETAs, alerts with an
-- append-only action log, alert deliveries (webhooks, email) as an outbox, and the
-- telemetry-quality counters per device.

-- Zones drawn by people (restricted areas, speed zones, named areas). Depot and stop
-- zones are derived from depots/stops and the radius settings, not stored here.
CREATE TABLE zones (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL CHECK (name <> ''),
    kind            text NOT NULL CHECK (kind IN ('restricted', 'speed', 'area')),
    geometry        jsonb NOT NULL,       -- GeoJSON Polygon or MultiPolygon, lon/lat
    speed_limit_kmh real CHECK (speed_limit_kmh > 0),
    depot_id        bigint REFERENCES depots (id) ON DELETE CASCADE,
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'speed' OR speed_limit_kmh IS NOT NULL)
);

-- A stop's own zone radius (NULL: the stop_radius_m setting), its live ETA, and whether
-- it was visited out of the planned sequence.
ALTER TABLE stops
    ADD COLUMN radius_m         real CHECK (radius_m > 0),
    ADD COLUMN eta              timestamptz,
    ADD COLUMN eta_updated_at   timestamptz,
    ADD COLUMN out_of_sequence  boolean NOT NULL DEFAULT false;

-- The rule worker's memory per vehicle, so a restart does not forget an open incident.
CREATE TABLE rule_state (
    vehicle_id  bigint PRIMARY KEY REFERENCES vehicles (id) ON DELETE CASCADE,
    trip_id     bigint REFERENCES trips (id) ON DELETE SET NULL,
    state       jsonb NOT NULL,
    last_fix_at timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One incident is one alert: the dedupe key is unique among alerts whose condition is
-- still on (cleared_at IS NULL) and which nobody has resolved.
CREATE TABLE alerts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type            text NOT NULL,
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state           text NOT NULL DEFAULT 'open'
                      CHECK (state IN ('open', 'acknowledged', 'escalated', 'resolved')),
    dedupe_key      text NOT NULL,
    vehicle_id      bigint REFERENCES vehicles (id) ON DELETE SET NULL,
    device_id       text,
    trip_id         bigint REFERENCES trips (id) ON DELETE SET NULL,
    stop_id         bigint REFERENCES stops (id) ON DELETE SET NULL,
    depot_id        bigint REFERENCES depots (id) ON DELETE SET NULL,
    order_ids       bigint[] NOT NULL DEFAULT '{}',
    message         text NOT NULL,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    evidence        jsonb NOT NULL DEFAULT '[]'::jsonb,   -- the fixes that triggered it
    opened_at       timestamptz NOT NULL,                 -- fix time the incident began
    last_seen_at    timestamptz NOT NULL,
    cleared_at      timestamptz,                          -- the condition ended
    acknowledged_at timestamptz,
    escalated_at    timestamptz,
    resolved_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),   -- server time it was raised
    CHECK (jsonb_typeof(evidence) = 'array')
);
CREATE UNIQUE INDEX alerts_live_dedupe_idx ON alerts (dedupe_key)
    WHERE cleared_at IS NULL AND state <> 'resolved';
CREATE INDEX alerts_state_idx ON alerts (state, opened_at DESC);
CREATE INDEX alerts_trip_idx ON alerts (trip_id);
CREATE INDEX alerts_depot_idx ON alerts (depot_id, opened_at DESC);

-- Who did what to an alert, and what the rules said about it: append-only.
CREATE TABLE alert_actions (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    action   text NOT NULL CHECK (action IN
               ('open', 'update', 'clear', 'acknowledge', 'escalate', 'resolve', 'comment')),
    actor    text NOT NULL,              -- 'rules', 'system' or the API token's name
    at       timestamptz NOT NULL DEFAULT now(),
    comment  text NOT NULL DEFAULT ''
);
CREATE INDEX alert_actions_alert_idx ON alert_actions (alert_id, id);

CREATE FUNCTION alert_actions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'alert_actions is append-only';
END $$;
CREATE TRIGGER alert_actions_no_update BEFORE UPDATE OR DELETE ON alert_actions
    FOR EACH ROW EXECUTE FUNCTION alert_actions_append_only();

-- Webhook subscriptions (HMAC-SHA256 signed with secret) and depot supervisors (email).
CREATE TABLE webhooks (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url        text NOT NULL CHECK (url ~ '^https?://'),
    secret     text NOT NULL CHECK (length(secret) >= 16),
    depot_id   bigint REFERENCES depots (id) ON DELETE CASCADE,   -- NULL: every depot
    types      text[],                                           -- NULL: every type
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE depot_contacts (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    depot_id bigint NOT NULL REFERENCES depots (id) ON DELETE CASCADE,
    name     text NOT NULL DEFAULT '',
    email    text NOT NULL CHECK (email LIKE '%_@_%'),
    role     text NOT NULL DEFAULT 'supervisor' CHECK (role IN ('supervisor', 'dispatcher')),
    UNIQUE (depot_id, email)
);

-- The outbox: one row per (alert event, target); retried with backoff, failures kept.
CREATE TABLE alert_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id        bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    event           text NOT NULL,       -- open, update, clear, acknowledge, escalate, resolve
    channel         text NOT NULL CHECK (channel IN ('webhook', 'email')),
    webhook_id      bigint REFERENCES webhooks (id) ON DELETE CASCADE,
    email           text,
    payload         jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text NOT NULL DEFAULT '',
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((channel = 'webhook') = (webhook_id IS NOT NULL)),
    CHECK ((channel = 'email') = (email IS NOT NULL))
);
CREATE INDEX alert_deliveries_due_idx ON alert_deliveries (next_attempt_at)
    WHERE state = 'pending';

-- Telemetry quality per device and reason (impossible_jump, stale, future, out_of_order).
CREATE TABLE telemetry_issues (
    device_id text NOT NULL,
    reason    text NOT NULL,
    count     bigint NOT NULL DEFAULT 0,
    last_at   timestamptz NOT NULL,
    PRIMARY KEY (device_id, reason)
);
