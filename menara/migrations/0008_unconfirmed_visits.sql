-- Schema v8: a stop the vehicle passed while its tracker was silent (issue 15). The
-- control tower sees from the vehicle's progress along its route that it drove past the
-- stop during a gap, but no fix shows the visit: it records the gap (the last fix before
-- and the first after) instead of an arrival, for the driver's ePOD or a dispatcher to
-- confirm. The stop stays without actual_arrival and its orders where they were.

ALTER TABLE stops
    ADD COLUMN unconfirmed_from timestamptz,
    ADD COLUMN unconfirmed_to timestamptz,
    ADD CONSTRAINT stops_unconfirmed_gap CHECK (
        (unconfirmed_from IS NULL) = (unconfirmed_to IS NULL) AND unconfirmed_from <= unconfirmed_to
    );
