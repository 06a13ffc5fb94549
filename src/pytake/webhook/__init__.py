"""Outgoing webhooks: endpoints (URL, events, secret), signed deliveries with retries."""
