-- Schema v6: reports (issue 13). Two plain views that every report, API answer and
-- Grafana panel reads, so a KPI is defined once, in SQL, the same on TimescaleDB and
-- plain PostgreSQL. The per-vehicle position summary (vehicle_position_5m) depends on the
-- engine (continuous aggregate or materialized view) and is made by menara.db after the
-- migrations; see menara/position_summary.py.

-- Great-circle distance in km between two WGS84 points (mean Earth radius); NULL when a
-- point is (STRICT: least() alone would turn a NULL into half the Earth).
CREATE FUNCTION menara_haversine_km(lat1 double precision, lon1 double precision,
                                    lat2 double precision, lon2 double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT 2 * 6371.0088 * asin(least(1, sqrt(
           sin(radians(lat2 - lat1) / 2) ^ 2
           + cos(radians(lat1)) * cos(radians(lat2)) * sin(radians(lon2 - lon1) / 2) ^ 2)))
$$;

-- One row per order with a delivery outcome (an ePOD). The day is the day of the trip
-- that carried it (the day it was planned for, so a day's report holds that day's trips
-- and their deliveries together), else the ePOD's date in the depot's time zone.
--
-- Stage boundaries, each taken as the earlier of its own time and the next boundary's
-- (so a stage never counts negative when clocks disagree) and, when missing, as the
-- next boundary (its stage counts zero):
--   entered    orders.created_at (the order was entered)
--   processed  first order_events row to 'reserved' (verified, stock reserved, paid state set)
--   dispatched first order_events row to 'dispatched' (its trip was released)
--   departed   trips.actual_departure (the van left the depot)
--   arrived    stops.actual_arrival (the earlier of the geofence and the driver's tap)
--   delivered  epods.at (the outcome was recorded)
-- processing = processed - entered, waiting_dispatch = dispatched - processed,
-- loading = departed - dispatched, transit = arrived - departed,
-- at_customer = delivered - arrived; lead_time = delivered - entered = their sum.
--
-- late_stage (only when the perfect-delivery row says 'late'): the stage whose overrun
-- of the plan is largest. Before departure the overrun is actual_departure -
-- planned_departure, blamed on processing when the order was processed after the planned
-- departure, else on waiting_dispatch when it was dispatched after it, else on loading;
-- transit's overrun is (arrived - departed) - (planned arrival - planned departure);
-- 'plan' when neither overran: the plan itself arrived after the window.
CREATE VIEW order_delivery_kpis AS
WITH base AS (
    SELECT o.id AS order_id, o.tracking_number AS order_number, o.customer_id,
           o.depot_id, e.trip_id, t.vehicle_id, coalesce(e.driver_id, t.driver_id) AS driver_id,
           coalesce(t.day, (e.at AT TIME ZONE coalesce(dp.time_zone, 'UTC'))::date) AS day,
           o.created_at AS entered_at, e.at AS delivered_at, e.outcome,
           pd.on_time, pd.in_full, pd.damage_free, pd.documents_accurate, pd.perfect,
           pd.on_time_reason, pd.in_full_reason, pd.damage_reason, pd.documents_reason,
           s.arrival_method, s.actual_arrival AS raw_arrived, t.actual_departure AS raw_departed,
           ev.processed AS raw_processed, ev.dispatched AS raw_dispatched,
           t.planned_departure, s.planned_arrival
    FROM epods e
    JOIN orders o ON o.id = e.order_id
    LEFT JOIN depots dp ON dp.id = o.depot_id
    LEFT JOIN trips t ON t.id = e.trip_id
    LEFT JOIN stops s ON s.id = e.stop_id
    LEFT JOIN perfect_deliveries pd ON pd.order_id = e.order_id
    LEFT JOIN LATERAL (
        SELECT min(oe.at) FILTER (WHERE oe.to_state = 'reserved') AS processed,
               min(oe.at) FILTER (WHERE oe.to_state = 'dispatched') AS dispatched
        FROM order_events oe WHERE oe.order_id = o.id AND oe.kind = 'state'
    ) ev ON true
), b4 AS (
    SELECT base.*, least(coalesce(raw_arrived, delivered_at), delivered_at) AS arrived_at
    FROM base
), b3 AS (
    SELECT b4.*, least(coalesce(raw_departed, arrived_at), arrived_at) AS departed_at FROM b4
), b2 AS (
    SELECT b3.*, least(coalesce(raw_dispatched, departed_at), departed_at) AS dispatched_at
    FROM b3
), b1 AS (
    SELECT b2.*, least(coalesce(raw_processed, dispatched_at), dispatched_at) AS processed_at
    FROM b2
), b0 AS (
    SELECT b1.*, least(entered_at, processed_at) AS start_at FROM b1
)
SELECT order_id, order_number, customer_id, depot_id, trip_id, vehicle_id, driver_id, day,
       entered_at, delivered_at, outcome, on_time, in_full, damage_free, documents_accurate,
       perfect, on_time_reason, in_full_reason, damage_reason, documents_reason,
       extract(epoch FROM processed_at - start_at)::double precision AS processing_s,
       extract(epoch FROM dispatched_at - processed_at)::double precision AS waiting_dispatch_s,
       extract(epoch FROM departed_at - dispatched_at)::double precision AS loading_s,
       extract(epoch FROM arrived_at - departed_at)::double precision AS transit_s,
       extract(epoch FROM delivered_at - arrived_at)::double precision AS at_customer_s,
       extract(epoch FROM delivered_at - start_at)::double precision AS lead_time_s,
       CASE WHEN on_time_reason IS DISTINCT FROM 'late' THEN NULL
            WHEN coalesce(pre_overrun_s, 0) <= 0 AND coalesce(transit_overrun_s, 0) <= 0
              THEN 'plan'
            WHEN coalesce(pre_overrun_s, 0) >= coalesce(transit_overrun_s, 0)
              THEN CASE WHEN processed_at > planned_departure THEN 'processing'
                        WHEN dispatched_at > planned_departure THEN 'waiting_dispatch'
                        ELSE 'loading' END
            ELSE 'transit' END AS late_stage,
       arrival_method,
       processed_at, dispatched_at, departed_at, arrived_at
FROM b0
CROSS JOIN LATERAL (
    SELECT extract(epoch FROM raw_departed - planned_departure)::double precision
             AS pre_overrun_s,
           extract(epoch FROM (raw_arrived - raw_departed)
                              - (planned_arrival - planned_departure))::double precision
             AS transit_overrun_s
) overrun;

-- One row per trip: plan against what happened. planned_distance_km follows the stored
-- route geometry when it has two points or more, else straight legs depot → stops (in
-- sequence) → depot; actual_distance_km sums the great-circle legs between consecutive
-- valid fixes of the vehicle's tracker from actual departure to actual return (to the
-- latest fix while the trip is still out). Durations are departure to return.
CREATE VIEW trip_kpis AS
SELECT t.id AS trip_id, t.day, t.depot_id, t.vehicle_id, t.driver_id, t.state,
       t.planned_departure, t.actual_departure, t.planned_return, t.actual_return,
       coalesce(geom.km, legs.km) AS planned_distance_km,
       driven.km AS actual_distance_km,
       extract(epoch FROM t.planned_return - t.planned_departure)::double precision
         AS planned_duration_s,
       extract(epoch FROM t.actual_return - t.actual_departure)::double precision
         AS actual_duration_s,
       st.stops, st.arrivals_geofence, st.arrivals_tap, st.arrivals_dispatcher,
       st.stops_arrived
FROM trips t
LEFT JOIN depots dp ON dp.id = t.depot_id
LEFT JOIN vehicles v ON v.id = t.vehicle_id
LEFT JOIN LATERAL (
    SELECT sum(menara_haversine_km(lat, lon, next_lat, next_lon)) AS km
    FROM (
        SELECT (p ->> 1)::double precision AS lat, (p ->> 0)::double precision AS lon,
               lead((p ->> 1)::double precision) OVER (ORDER BY i) AS next_lat,
               lead((p ->> 0)::double precision) OVER (ORDER BY i) AS next_lon
        FROM jsonb_array_elements(t.route_geometry) WITH ORDINALITY AS g (p, i)
    ) pts
    HAVING count(*) >= 2
) geom ON true
LEFT JOIN LATERAL (
    SELECT sum(menara_haversine_km(lat, lon, next_lat, next_lon)) AS km
    FROM (
        SELECT lat, lon, lead(lat) OVER w AS next_lat, lead(lon) OVER w AS next_lon
        FROM (
            SELECT 0 AS seq, dp.lat, dp.lon
            UNION ALL SELECT s.seq, s.lat, s.lon FROM stops s WHERE s.trip_id = t.id
            UNION ALL SELECT 2147483647, dp.lat, dp.lon
        ) route
        WINDOW w AS (ORDER BY seq)
    ) pts
) legs ON true
LEFT JOIN LATERAL (
    SELECT sum(menara_haversine_km(lat, lon, prev_lat, prev_lon)) AS km
    FROM (
        SELECT p.lat, p.lon, lag(p.lat) OVER w AS prev_lat, lag(p.lon) OVER w AS prev_lon
        FROM positions p
        WHERE p.device_id = v.tracker_device_id AND p.valid
          AND p.fix_time >= t.actual_departure
          AND (t.actual_return IS NULL OR p.fix_time <= t.actual_return)
        WINDOW w AS (ORDER BY p.fix_time)
    ) fixes
    HAVING t.actual_departure IS NOT NULL
) driven ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS stops,
           count(*) FILTER (WHERE s.arrival_method = 'geofence') AS arrivals_geofence,
           count(*) FILTER (WHERE s.arrival_method = 'driver') AS arrivals_tap,
           count(*) FILTER (WHERE s.arrival_method = 'dispatcher') AS arrivals_dispatcher,
           count(s.actual_arrival) AS stops_arrived
    FROM stops s WHERE s.trip_id = t.id
) st ON true;

-- One row per alert, placed like the deliveries: on its trip's day (else its local
-- opening date), at its depot (else its trip's). ack_s is acknowledged_at - created_at:
-- from the moment the control room could see it to the moment someone took it.
CREATE VIEW alert_kpis AS
SELECT a.id AS alert_id, a.type, a.severity, a.state,
       coalesce(t.day, (a.opened_at AT TIME ZONE coalesce(dp.time_zone, 'UTC'))::date) AS day,
       coalesce(a.depot_id, t.depot_id) AS depot_id, a.trip_id, a.vehicle_id, t.driver_id,
       a.order_ids, a.opened_at, a.created_at, a.acknowledged_at, a.resolved_at,
       extract(epoch FROM a.acknowledged_at - a.created_at)::double precision AS ack_s
FROM alerts a
LEFT JOIN trips t ON t.id = a.trip_id
LEFT JOIN depots dp ON dp.id = coalesce(a.depot_id, t.depot_id);
