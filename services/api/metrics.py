"""The API's Prometheus metrics: requests per route, latency, the outbox backlog and relay throughput."""

from __future__ import annotations

from litestar import Response, get

from services.api.db import UNAVAILABLE_ERRORS
from services.api.outbox import OutboxStore
from shared.metrics import Registry

PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = Registry()
        self.requests = self.registry.counter("incidents_api_requests_total", "HTTP requests by method, route, status.")
        self.latency = self.registry.histogram(
            "incidents_api_request_duration_seconds", "HTTP request latency by method and route."
        )
        self.relayed = self.registry.counter(
            "incidents_api_events_relayed_total", "Outbox events JetStream confirmed as stored."
        )
        self.rejected = self.registry.counter(
            "incidents_api_events_rejected_total", "Outbox events the event handler refused as invalid (see logs)."
        )
        self.relay_failures = self.registry.counter(
            "incidents_api_relay_failures_total", "Relay rounds that failed and will be retried."
        )
        self.relay_errors = self.registry.counter(
            "incidents_api_relay_errors_total", "Relay rounds that failed unexpectedly (see logs) and will be retried."
        )
        self.parked = 0
        self.registry.gauge(
            "incidents_api_outbox_parked_incidents",
            "Incidents whose next event was rejected or can't be sent; their events wait (see readiness).",
            lambda: self.parked,
        )
        self.backlog: float | None = None
        self.oldest_age: float | None = None
        self.registry.gauge(
            "incidents_api_outbox_backlog", "Events committed but not yet stored in JetStream.", lambda: self.backlog
        )
        self.registry.gauge(
            "incidents_api_outbox_oldest_age_seconds", "Age of the oldest undelivered event.", lambda: self.oldest_age
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.inc(method=method, route=route, status=str(status))
        self.latency.observe(seconds, method=method, route=route)


@get("/metrics", tags=["health"], summary="Prometheus metrics", include_in_schema=False)
async def metrics_endpoint(api_metrics: ApiMetrics, outbox_store: OutboxStore) -> Response[str]:
    try:
        backlog = await outbox_store.backlog()
        api_metrics.backlog, api_metrics.oldest_age = backlog.size, backlog.oldest_age_seconds
    except UNAVAILABLE_ERRORS:
        api_metrics.backlog = api_metrics.oldest_age = None
    return Response(api_metrics.registry.render(), media_type=PROMETHEUS)
