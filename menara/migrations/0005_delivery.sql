-- Schema v5: the end of the order lifecycle (issue 12). Drivers act from their phones
-- (idempotent actions), deliveries carry an ePOD (files stored content-addressed, the
-- metadata here), every outcome gets a perfect-delivery row, a trip closes with its COD
-- cash reconciled, customers are notified through the same outbox as alerts, follow
-- their order on a public page and can complain there.

-- The language customer messages and the tracking page use.
ALTER TABLE customers
    ADD COLUMN language text NOT NULL DEFAULT 'id' CHECK (language IN ('id', 'en'));

-- A re-delivery order points at the order whose attempt failed or fell short.
ALTER TABLE orders ADD COLUMN follow_up_of bigint REFERENCES orders (id) ON DELETE RESTRICT;
CREATE INDEX orders_follow_up_idx ON orders (follow_up_of) WHERE follow_up_of IS NOT NULL;

-- What the driver counted onto the van at the depot (NULL: not checked).
ALTER TABLE order_lines ADD COLUMN loaded_qty integer CHECK (loaded_qty >= 0);

-- Both arrivals are kept: the tower's geofence and the driver's tap. actual_arrival is
-- the earlier of the two and arrival_method says which one that was.
ALTER TABLE stops
    ADD COLUMN geofence_arrival timestamptz,
    ADD COLUMN driver_arrival   timestamptz;
UPDATE stops SET geofence_arrival = actual_arrival WHERE arrival_method = 'geofence';
UPDATE stops SET driver_arrival = actual_arrival WHERE arrival_method = 'driver';

ALTER TABLE trips
    ADD COLUMN loaded_at        timestamptz,
    ADD COLUMN actual_departure timestamptz,
    ADD COLUMN actual_return    timestamptz;

-- One-time sign-in links for drivers: only the code's SHA-256 is stored.
CREATE TABLE driver_sign_in_links (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    driver_id  bigint NOT NULL REFERENCES drivers (id) ON DELETE CASCADE,
    code_hash  text NOT NULL UNIQUE CHECK (code_hash ~ '^[0-9a-f]{64}$'),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Every driver action as the phone sent it, keyed by the phone's idempotency key: a
-- retry finds its row and gets the same answer, so it never acts twice.
CREATE TABLE driver_actions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    driver_id       bigint NOT NULL REFERENCES drivers (id) ON DELETE CASCADE,
    idempotency_key text NOT NULL CHECK (idempotency_key ~ '^[A-Za-z0-9_-]{8,64}$'),
    kind            text NOT NULL CHECK (kind IN ('loaded', 'departed', 'arrived',
                      'delivered', 'partially_delivered', 'failed', 'returned')),
    trip_id         bigint REFERENCES trips (id) ON DELETE CASCADE,
    stop_id         bigint REFERENCES stops (id) ON DELETE CASCADE,
    order_id        bigint REFERENCES orders (id) ON DELETE RESTRICT,
    phone_time      timestamptz NOT NULL,          -- the tap, by the phone's clock
    clock_skew_s    double precision,              -- phone clock minus server clock
    at              timestamptz NOT NULL,          -- the tap, by the server's clock
    received_at     timestamptz NOT NULL DEFAULT now(),
    lat             double precision CHECK (lat BETWEEN -90 AND 90),
    lon             double precision CHECK (lon BETWEEN -180 AND 180),
    accuracy_m      real CHECK (accuracy_m >= 0),
    request_sha256  text NOT NULL,
    response        jsonb NOT NULL DEFAULT '{}'::jsonb,
    UNIQUE (driver_id, idempotency_key),
    CHECK ((lat IS NULL) = (lon IS NULL))
);
CREATE INDEX driver_actions_trip_idx ON driver_actions (trip_id, id);

-- Uploaded images by content: the bytes live in the file store under their SHA-256.
CREATE TABLE files (
    sha256      text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    media_type  text NOT NULL CHECK (media_type IN ('image/png', 'image/jpeg', 'image/webp')),
    size_bytes  integer NOT NULL CHECK (size_bytes > 0),
    width       integer NOT NULL CHECK (width > 0),
    height      integer NOT NULL CHECK (height > 0),
    uploaded_by text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The proof of one delivery attempt; one per order (a re-delivery is a new order).
CREATE TABLE epods (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id         bigint NOT NULL UNIQUE REFERENCES orders (id) ON DELETE RESTRICT,
    action_id        bigint NOT NULL REFERENCES driver_actions (id) ON DELETE RESTRICT,
    trip_id          bigint REFERENCES trips (id) ON DELETE SET NULL,
    stop_id          bigint REFERENCES stops (id) ON DELETE SET NULL,
    driver_id        bigint REFERENCES drivers (id) ON DELETE SET NULL,
    outcome          text NOT NULL
                       CHECK (outcome IN ('delivered', 'partially_delivered', 'failed')),
    reason_code      text,
    recipient_name   text NOT NULL DEFAULT '',
    notes            text NOT NULL DEFAULT '',
    signature_sha256 text REFERENCES files (sha256) ON DELETE RESTRICT,
    cod_collected    numeric(12,2) CHECK (cod_collected >= 0),
    at               timestamptz NOT NULL,    -- when it happened (server clock)
    lat              double precision,
    lon              double precision,
    accuracy_m       real,
    checks           jsonb NOT NULL,          -- the automatic verification, see oms_core.epod
    needs_review     boolean NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((outcome = 'delivered') = (reason_code IS NULL))
);
CREATE INDEX epods_review_idx ON epods (needs_review, at DESC);
CREATE INDEX epods_trip_idx ON epods (trip_id);

CREATE TABLE epod_lines (
    epod_id       bigint  NOT NULL REFERENCES epods (id) ON DELETE CASCADE,
    line_no       integer NOT NULL,
    delivered_qty integer NOT NULL CHECK (delivered_qty >= 0),
    damaged_qty   integer NOT NULL DEFAULT 0 CHECK (damaged_qty >= 0),
    PRIMARY KEY (epod_id, line_no)
);

CREATE TABLE epod_photos (
    epod_id bigint  NOT NULL REFERENCES epods (id) ON DELETE CASCADE,
    seq     integer NOT NULL CHECK (seq >= 1),
    sha256  text    NOT NULL REFERENCES files (sha256) ON DELETE RESTRICT,
    PRIMARY KEY (epod_id, seq)
);

-- Perfect delivery, per order and per criterion (never an average): each failed
-- criterion carries its reason code.
CREATE TABLE perfect_deliveries (
    order_id           bigint PRIMARY KEY REFERENCES orders (id) ON DELETE RESTRICT,
    epod_id            bigint NOT NULL REFERENCES epods (id) ON DELETE RESTRICT,
    on_time            boolean NOT NULL,
    on_time_reason     text,
    in_full            boolean NOT NULL,
    in_full_reason     text,
    damage_free        boolean NOT NULL,
    damage_reason      text,
    documents_accurate boolean NOT NULL,
    documents_reason   text,
    perfect            boolean GENERATED ALWAYS AS
                         (on_time AND in_full AND damage_free AND documents_accurate) STORED,
    arrival            timestamptz,
    window_start       timestamptz NOT NULL,
    window_end         timestamptz NOT NULL,
    computed_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (on_time = (on_time_reason IS NULL)),
    CHECK (in_full = (in_full_reason IS NULL)),
    CHECK (damage_free = (damage_reason IS NULL)),
    CHECK (documents_accurate = (documents_reason IS NULL))
);

-- Cash on delivery per trip (and so per driver and day): what the delivered COD units
-- cost, what the ePODs say was collected, and what the driver handed in at the depot.
CREATE TABLE cod_settlements (
    trip_id    bigint PRIMARY KEY REFERENCES trips (id) ON DELETE RESTRICT,
    driver_id  bigint REFERENCES drivers (id) ON DELETE SET NULL,
    orders     integer NOT NULL CHECK (orders >= 0),
    expected   numeric(12,2) NOT NULL CHECK (expected >= 0),
    collected  numeric(12,2) NOT NULL CHECK (collected >= 0),
    handed_in  numeric(12,2) NOT NULL CHECK (handed_in >= 0),
    difference numeric(12,2) GENERATED ALWAYS AS (handed_in - expected) STORED,
    settled_at timestamptz NOT NULL DEFAULT now()
);

-- What customers tell us from the tracking page.
CREATE TABLE complaints (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id     bigint NOT NULL REFERENCES orders (id) ON DELETE RESTRICT,
    category     text NOT NULL CHECK (category IN ('late', 'damaged', 'missing_items',
                   'wrong_items', 'driver_conduct', 'billing', 'other')),
    text         text NOT NULL CHECK (length(text) BETWEEN 1 AND 2000),
    photo_sha256 text REFERENCES files (sha256) ON DELETE RESTRICT,
    state        text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX complaints_order_idx ON complaints (order_id);
CREATE INDEX complaints_created_idx ON complaints (created_at DESC);

-- The outbox now also carries customer notifications (email, and SMS/WhatsApp through
-- a gateway webhook): one table, one sender. A customer row names its order instead of
-- an alert, and its dedupe key makes "never twice for the same event" a constraint.
ALTER TABLE alert_deliveries RENAME TO deliveries;
ALTER INDEX alert_deliveries_due_idx RENAME TO deliveries_due_idx;
ALTER TABLE deliveries
    ALTER COLUMN alert_id DROP NOT NULL,
    ADD COLUMN order_id bigint REFERENCES orders (id) ON DELETE CASCADE,
    ADD COLUMN dedupe_key text,
    ADD CONSTRAINT deliveries_one_subject CHECK ((alert_id IS NULL) <> (order_id IS NULL));
CREATE UNIQUE INDEX deliveries_dedupe_idx ON deliveries (dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX deliveries_order_idx ON deliveries (order_id) WHERE order_id IS NOT NULL;

-- A webhook receives alerts (the control room's systems) or customer messages (an SMS
-- or WhatsApp gateway), never both.
ALTER TABLE webhooks ADD COLUMN purpose text NOT NULL DEFAULT 'alerts'
    CHECK (purpose IN ('alerts', 'customer_messages'));
