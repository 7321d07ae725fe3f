"""Delivery execution: what happens from the depot to the customer's door and back.

Drivers act from their phones (``actions``: each action applied once whatever the
network does), arrivals are kept per method (``arrival``), a delivery's outcome is
stored with its proof and checked (``epod``), judged as a perfect delivery or not
(``perfect``), and followed up when it fell short (``followup``). The schema is
``menara/migrations/0005_delivery.sql``.
"""
