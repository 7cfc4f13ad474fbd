"""The API's Prometheus metrics: HTTP through Litestar's Prometheus plugin, the outbox and relay through ours."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from litestar import Response, get
from litestar.middleware import DefineMiddleware
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import REGISTRY, generate_latest

from services.api.storage.db import UNAVAILABLE_ERRORS
from services.api.storage.outbox import OutboxStore
from shared.metrics import CONTENT_TYPE, Registry

HTTP_PREFIX = "incidents_api"
"""incidents_api_requests_total, _request_duration_seconds, _requests_in_progress, _requests_error_total."""


def http_metrics_config() -> PrometheusConfig:
    """Litestar's plugin: per route template (not per incident id), /metrics and /health left out."""
    return PrometheusConfig(
        app_name="incidents-api",
        prefix=HTTP_PREFIX,
        group_path=True,
        exclude=["^/metrics", "^/health"],
    )


def http_metrics() -> DefineMiddleware:
    return http_metrics_config().middleware


class RelayState(Protocol):
    @property
    def running(self) -> bool: ...
    @property
    def stalled_seconds(self) -> float: ...


class ApiMetrics:
    def __init__(self) -> None:
        # The process metrics and the plugin's HTTP metrics are in prometheus_client's global registry.
        self.registry = Registry(process=False)
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
        self.background_errors = self.registry.counter(
            "incidents_api_background_errors_total",
            "Errors of the background tasks (housekeeping, auto-resolve), each logged and gone past.",
            ("task",),
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

    def watch_relay(self, health: Callable[[], RelayState]) -> None:
        """The relay's state on scrape: running or not, and how long since its last normal round."""
        self.registry.gauge(
            "incidents_api_relay_running",
            "1 while the outbox relay task runs, else 0.",
            lambda: float(health().running),
        )
        self.registry.gauge(
            "incidents_api_relay_stalled_seconds",
            "Seconds since the relay's last round that ended normally (0 when it is not running).",
            lambda: health().stalled_seconds,
        )

    def render(self) -> bytes:
        return generate_latest(REGISTRY) + self.registry.render().encode()


@get("/metrics", tags=["health"], summary="Prometheus metrics", include_in_schema=False)
async def metrics_endpoint(api_metrics: ApiMetrics, outbox_store: OutboxStore) -> Response[bytes]:
    try:
        backlog = await outbox_store.backlog()
        api_metrics.backlog, api_metrics.oldest_age = backlog.size, backlog.oldest_age_seconds
    except UNAVAILABLE_ERRORS:
        api_metrics.backlog = api_metrics.oldest_age = None
    return Response(api_metrics.render(), media_type=CONTENT_TYPE)
