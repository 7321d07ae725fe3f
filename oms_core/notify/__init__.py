"""Customer notifications: the order's milestones told to the customer by email and by
SMS / WhatsApp through a gateway webhook, in the customer's language.

Two halves on either side of the outbox (the ``deliveries`` table, shared with alerts):
``enqueue`` writes one row per (event, medium, target) in the transaction of the change
that caused it, its dedupe key making "never twice for the same event" a constraint;
``facts``, ``texts`` and ``render`` write the message when the alert ``Deliverer`` sends
the row, from the order as it is then (the ePOD and any re-delivery order commit in the
same transaction as the outcome, so they are there to be told).
"""

from __future__ import annotations

__all__ = ["EVENTS", "MEDIA"]

# In the order a customer meets them.
EVENTS = ("confirmed", "out_for_delivery", "delayed", "delivered", "failed")
# notify_prefs keys; email goes to customers.email, the others to customers.phone
# through every active webhook whose purpose is 'customer_messages'.
MEDIA = ("email", "sms", "whatsapp")
