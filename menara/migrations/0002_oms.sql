-- Schema v2: the order management core (issue 5): customers, products, depots, stock,
-- orders with lines and an append-only audit trail, fleet (vehicles, drivers, daily
-- assignments) and trips with their stops. Money is numeric(12,2); coordinates are WGS84
-- degrees; times are timestamptz except depot opening hours (local time + zone).
-- Business rules (state machine, verification, reservation) live in oms_core; the
-- constraints here are the ones no code path may ever break.

CREATE TABLE customers (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text        NOT NULL CHECK (name <> ''),
    email         text,
    phone         text,
    notify_prefs  jsonb       NOT NULL DEFAULT '{}'::jsonb
                  CHECK (jsonb_typeof(notify_prefs) = 'object'),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE addresses (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    text         text   NOT NULL CHECK (text <> ''),
    lat          double precision CHECK (lat BETWEEN -90 AND 90),
    lon          double precision CHECK (lon BETWEEN -180 AND 180),
    CHECK ((lat IS NULL) = (lon IS NULL))
);
CREATE INDEX addresses_customer_idx ON addresses (customer_id);

CREATE TABLE products (
    sku            text PRIMARY KEY CHECK (sku <> ''),
    name           text    NOT NULL DEFAULT '',
    unit_weight_kg numeric(10,3) NOT NULL CHECK (unit_weight_kg >= 0),
    unit_volume_m3 numeric(10,4) NOT NULL CHECK (unit_volume_m3 >= 0),
    active         boolean NOT NULL DEFAULT true   -- discontinued SKUs stay for history
);

CREATE TABLE depots (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name <> ''),
    lat        double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon        double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    open_time  time NOT NULL DEFAULT '06:00',
    close_time time NOT NULL DEFAULT '22:00',
    time_zone  text NOT NULL DEFAULT 'UTC',
    CHECK (close_time > open_time)
);

CREATE TABLE stock (
    depot_id bigint NOT NULL REFERENCES depots (id) ON DELETE CASCADE,
    sku      text   NOT NULL REFERENCES products (sku) ON DELETE RESTRICT,
    on_hand  integer NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reserved integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    CHECK (reserved <= on_hand),
    PRIMARY KEY (depot_id, sku)
);

CREATE TABLE orders (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id      bigint NOT NULL REFERENCES customers (id) ON DELETE RESTRICT,
    address_id       bigint REFERENCES addresses (id) ON DELETE SET NULL,
    -- the address as it was when ordered: later edits to addresses do not move orders
    address_text     text   NOT NULL,
    lat              double precision CHECK (lat BETWEEN -90 AND 90),
    lon              double precision CHECK (lon BETWEEN -180 AND 180),
    depot_id         bigint NOT NULL REFERENCES depots (id) ON DELETE RESTRICT,
    window_start     timestamptz NOT NULL,
    window_end       timestamptz NOT NULL,
    instructions     text   NOT NULL DEFAULT '',
    payment_method   text   NOT NULL CHECK (payment_method IN ('prepaid', 'cod')),
    payment_state    text   NOT NULL CHECK (payment_state IN
                       ('unpaid', 'authorised', 'paid', 'cod_pending', 'cod_collected',
                        'refunded')),
    invoice_number   text UNIQUE,
    total_amount     numeric(12,2) NOT NULL CHECK (total_amount >= 0),
    total_weight_kg  numeric(12,3) NOT NULL CHECK (total_weight_kg >= 0),
    total_volume_m3  numeric(12,4) NOT NULL CHECK (total_volume_m3 >= 0),
    state            text   NOT NULL DEFAULT 'draft' CHECK (state IN
                       ('draft', 'verified', 'reserved', 'scheduled', 'dispatched',
                        'out_for_delivery', 'arrived', 'delivered', 'partially_delivered',
                        'failed', 'completed', 'cancelled')),
    tracking_number  text   NOT NULL UNIQUE,
    public_token     text   NOT NULL UNIQUE CHECK (length(public_token) >= 22),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((lat IS NULL) = (lon IS NULL)),
    CHECK (window_end > window_start)
);
CREATE INDEX orders_customer_idx ON orders (customer_id, id);
CREATE INDEX orders_state_idx ON orders (state, id);
CREATE INDEX orders_depot_window_idx ON orders (depot_id, window_start);

CREATE TABLE order_lines (
    order_id      bigint  NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no       integer NOT NULL CHECK (line_no >= 1),
    sku           text    NOT NULL REFERENCES products (sku) ON DELETE RESTRICT,
    qty           integer NOT NULL CHECK (qty > 0),
    unit_price    numeric(12,2) NOT NULL CHECK (unit_price >= 0),
    delivered_qty integer CHECK (delivered_qty BETWEEN 0 AND qty),  -- set on delivery
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_lines_sku_idx ON order_lines (sku);

-- Append-only: who moved an order (or its payment) from what to what, when and why.
CREATE TABLE order_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id   bigint NOT NULL REFERENCES orders (id) ON DELETE RESTRICT,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL CHECK (actor <> ''),
    kind       text NOT NULL DEFAULT 'state' CHECK (kind IN ('state', 'payment')),
    from_state text,                       -- NULL for the creation event
    to_state   text NOT NULL,
    reason     text NOT NULL DEFAULT ''
);
CREATE INDEX order_events_order_idx ON order_events (order_id, id);

CREATE FUNCTION order_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'order_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER order_events_append_only BEFORE UPDATE OR DELETE ON order_events
    FOR EACH ROW EXECUTE FUNCTION order_events_append_only();

-- Tracker and phone device ids are plain text, not foreign keys to devices: a vehicle
-- may be set up before its tracker first reports, and devices is truncated and
-- re-registered independently of the fleet.
CREATE TABLE vehicles (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plate             text NOT NULL UNIQUE CHECK (plate <> ''),
    type              text NOT NULL DEFAULT 'van',
    capacity_kg       numeric(10,2) NOT NULL CHECK (capacity_kg > 0),
    capacity_m3       numeric(10,3) NOT NULL CHECK (capacity_m3 > 0),
    tracker_device_id text UNIQUE,
    max_speed_kmh     real CHECK (max_speed_kmh > 0),
    depot_id          bigint REFERENCES depots (id) ON DELETE SET NULL
);

CREATE TABLE drivers (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL CHECK (name <> ''),
    phone           text,
    shift_start     time NOT NULL DEFAULT '08:00',
    shift_end       time NOT NULL DEFAULT '17:00',
    phone_device_id text UNIQUE,
    CHECK (shift_end > shift_start)
);

CREATE TABLE driver_assignments (
    driver_id  bigint NOT NULL REFERENCES drivers (id) ON DELETE CASCADE,
    vehicle_id bigint NOT NULL REFERENCES vehicles (id) ON DELETE CASCADE,
    day        date   NOT NULL,
    PRIMARY KEY (driver_id, day),          -- a driver drives one vehicle a day
    UNIQUE (vehicle_id, day)               -- and a vehicle has one driver a day
);

CREATE TABLE trips (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vehicle_id         bigint NOT NULL REFERENCES vehicles (id) ON DELETE RESTRICT,
    driver_id          bigint REFERENCES drivers (id) ON DELETE SET NULL,
    depot_id           bigint NOT NULL REFERENCES depots (id) ON DELETE RESTRICT,
    day                date   NOT NULL,
    planned_departure  timestamptz NOT NULL,
    planned_return     timestamptz NOT NULL,
    state              text NOT NULL DEFAULT 'planned' CHECK (state IN
                         ('planned', 'dispatched', 'in_progress', 'completed', 'cancelled')),
    route_geometry     jsonb NOT NULL DEFAULT '[]'::jsonb   -- [[lon, lat], ...] for deviation
                         CHECK (jsonb_typeof(route_geometry) = 'array'),
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (planned_return >= planned_departure)
);
CREATE INDEX trips_day_idx ON trips (day, vehicle_id);
CREATE INDEX trips_driver_day_idx ON trips (driver_id, day);

CREATE TABLE stops (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trip_id           bigint  NOT NULL REFERENCES trips (id) ON DELETE CASCADE,
    seq               integer NOT NULL CHECK (seq >= 1),
    lat               double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon               double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    planned_arrival   timestamptz NOT NULL,
    planned_departure timestamptz NOT NULL,
    service_time_s    integer NOT NULL DEFAULT 0 CHECK (service_time_s >= 0),
    window_start      timestamptz,
    window_end        timestamptz,
    actual_arrival    timestamptz,
    actual_departure  timestamptz,
    arrival_method    text CHECK (arrival_method IN ('geofence', 'driver', 'dispatcher')),
    UNIQUE (trip_id, seq),
    CHECK (planned_departure >= planned_arrival),
    CHECK (window_end > window_start),
    CHECK (actual_departure >= actual_arrival)
);

CREATE TABLE stop_orders (
    stop_id  bigint NOT NULL REFERENCES stops (id) ON DELETE CASCADE,
    order_id bigint NOT NULL REFERENCES orders (id) ON DELETE RESTRICT,
    PRIMARY KEY (stop_id, order_id)
);
CREATE INDEX stop_orders_order_idx ON stop_orders (order_id);
