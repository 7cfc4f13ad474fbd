"""Per-endpoint metrics of the webhooks worker: attempts, failures, and lag (age of the oldest undelivered event)."""

from __future__ import annotations

import time

from shared.metrics import Registry, _escape


class WebhookMetrics:
    def __init__(self) -> None:
        self.registry = Registry()
        self.attempts = self.registry.counter(
            "incidents_webhook_attempts_total", "Delivery attempts per endpoint, by outcome."
        )
        self.failures = self.registry.counter(
            "incidents_webhook_failures_total", "Delivery attempts per endpoint that got no 2xx answer."
        )
        self.duration = self.registry.histogram(
            "incidents_webhook_attempt_seconds", "Time of one delivery attempt, DNS to answer."
        )
        self._head: dict[str, float] = {}
        self._pending: dict[str, int] = {}

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

    def render(self) -> str:
        now = time.time()
        lines = [
            "# HELP incidents_webhook_lag_seconds Age of the oldest event not yet delivered to the endpoint.",
            "# TYPE incidents_webhook_lag_seconds gauge",
        ]
        for endpoint_id in sorted(self._pending):
            stored = self._head.get(endpoint_id)
            lag = max(0.0, now - stored) if stored is not None else 0.0
            lines.append(f'incidents_webhook_lag_seconds{{endpoint="{_escape(endpoint_id)}"}} {lag:.3f}')
        lines += [
            "# HELP incidents_webhook_pending Events waiting behind the one being delivered, per endpoint.",
            "# TYPE incidents_webhook_pending gauge",
        ]
        for endpoint_id, pending in sorted(self._pending.items()):
            lines.append(f'incidents_webhook_pending{{endpoint="{_escape(endpoint_id)}"}} {pending}')
        return self.registry.render() + "\n".join(lines) + "\n"
