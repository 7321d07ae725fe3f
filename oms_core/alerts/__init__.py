"""Alerts: the store the rule worker raises incidents into, the action log people add
to, and the outbox that delivers them (webhooks, email)."""
