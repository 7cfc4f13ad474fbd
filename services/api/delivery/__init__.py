"""Handing each change to the event handler: the outbox relay, the NATS request-reply client, subscriptions."""
