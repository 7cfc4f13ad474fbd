"""The `webhooks` worker: signed Standard Webhooks deliveries of incident events to registered endpoints."""
