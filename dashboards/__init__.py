"""Grafana provisioning; reads SQL only.

Empty until the dashboards work; present so the package layout and import rules
are fixed from the start.
"""
