"""The control tower at run time: every committed fix of every vehicle is compared with
the plan it is driving (``geofence`` and ``deviation`` rules), and what the rules find
becomes alerts, stop arrivals, order moves and ETAs in the database."""
