"""Counters of what came in from the vendors, by outcome; bad signatures have their own counter."""

from __future__ import annotations

from shared.metrics import Registry


class IntegrationMetrics:
    def __init__(self, registry: Registry) -> None:
        self.requests = registry.counter(
            "incidents_api_integration_requests_total",
            "Requests from Slack, Jira and Zendesk by outcome (applied, unchanged, stale, echo, unknown, ...).",
            ("vendor", "outcome"),
        )
        self.bad_signatures = registry.counter(
            "incidents_api_integration_bad_signatures_total",
            "Requests from outside refused with 401: signature missing, wrong, or its timestamp out of window.",
            ("vendor",),
        )
