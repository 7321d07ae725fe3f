"""Zones and zone-membership events (depots, customer sites, restricted areas).

Empty until the control-tower issue; present so the package layout and import
rules are fixed from the start.
"""
