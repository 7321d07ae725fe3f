"""Grafana dashboards as code; they only read SQL.

``live_map``, ``alerts``, ``delivery`` and ``fleet`` build one dashboard each with the
grafana-foundation-sdk builders (``query.Sql`` is the PostgreSQL query the SDK lacks);
``provisioning`` turns them into Grafana provisioning files and ``publish`` pushes them to a
running Grafana. Nothing here imports the rest of Menara.
"""
