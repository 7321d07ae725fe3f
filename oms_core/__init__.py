"""Order management core (orders, stock, trips, API).

Empty until the OMS issue; present so the package layout and import rules are
fixed from the start.
"""
