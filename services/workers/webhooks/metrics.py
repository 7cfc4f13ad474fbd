"""Per-endpoint metrics of the webhooks worker: attempts, failures, and lag (age of the oldest undelivered event)."""

from __future__ import annotations

import time

from shared.metrics import Registry


class WebhookMetrics:
    def __init__(self) -> None:
        self.registry = Registry()
        self.attempts = self.registry.counter(
            "incidents_webhook_attempts_total", "Delivery attempts per endpoint, by outcome.", ("endpoint", "outcome")
        )
        self.failures = self.registry.counter(
            "incidents_webhook_failures_total", "Delivery attempts per endpoint that got no 2xx answer.", ("endpoint",)
        )
        self.loop_errors = self.registry.counter(
            "incidents_webhook_loop_errors_total",
            "Unexpected errors of an endpoint's delivery loop (see logs); the event is retried, the loop goes on.",
            ("endpoint",),
        )
        self.duration = self.registry.histogram(
            "incidents_webhook_attempt_seconds", "Time of one delivery attempt, DNS to answer.", ("endpoint",)
        )
        self._head: dict[str, float] = {}
        self._pending: dict[str, int] = {}
        self.registry.labelled_gauge(
            "incidents_webhook_lag_seconds",
            "Age of the oldest event not yet delivered to the endpoint.",
            "endpoint",
            self._lags,
        )
        self.registry.labelled_gauge(
            "incidents_webhook_pending",
            "Events waiting behind the one being delivered, per endpoint.",
            "endpoint",
            lambda: [(endpoint, float(n)) for endpoint, n in sorted(self._pending.items())],
        )

    def attempted(self, endpoint_id: str, outcome: str, ok: bool, seconds: float) -> None:
        self.attempts.inc(endpoint=endpoint_id, outcome=outcome)
        if not ok:
            self.failures.inc(endpoint=endpoint_id)
        self.duration.observe(seconds, endpoint=endpoint_id)

    def at_head(self, endpoint_id: str, stored_at: float, pending: int) -> None:
        """The event now being delivered was stored at `stored_at`; `pending` more wait behind it."""
        self._head[endpoint_id] = stored_at
        self._pending[endpoint_id] = pending

    def caught_up(self, endpoint_id: str) -> None:
        self._head.pop(endpoint_id, None)
        self._pending[endpoint_id] = 0

    def forget(self, endpoint_id: str) -> None:
        self._head.pop(endpoint_id, None)
        self._pending.pop(endpoint_id, None)

    def _lags(self) -> list[tuple[str, float]]:
        now = time.time()
        lags = []
        for endpoint_id in sorted(self._pending):
            stored = self._head.get(endpoint_id)
            lags.append((endpoint_id, max(0.0, now - stored) if stored is not None else 0.0))
        return lags

    def render(self) -> str:
        return self.registry.render()
