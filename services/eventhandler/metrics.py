"""The event handler's counters, on prometheus_client (`incidents_eventhandler_*`), served by the health server."""

from __future__ import annotations

from shared.events import CloudEvent, EventType
from shared.metrics import Counter, Registry

# From minutes to days: an incident is acknowledged in minutes and may stay open for a week.
RESPONSE_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0, 259200.0, 604800.0)
RESPONSE_TIMES = {
    EventType.ACKNOWLEDGED.cloud_type: "acknowledge",
    EventType.RESOLVED.cloud_type: "resolve",
}

PREFIX = "incidents_"
_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "eventhandler_events_published_total": ("Events JetStream stored (duplicates included), by type.", ("type",)),
    "eventhandler_events_duplicate_total": ("Events JetStream had already stored (Nats-Msg-Id), by type.", ("type",)),
    "eventhandler_publish_failures_total": ("Events not stored (failed or not attempted), by type.", ("type",)),
    "eventhandler_events_rejected_total": ("Invalid events rejected by the publish endpoint.", ()),
    "eventhandler_requests_total": ("Micro service requests, by endpoint and reply code.", ("endpoint", "code")),
    "eventhandler_deadletters_total": ("Messages dead-lettered, by worker and reason.", ("worker", "reason")),
    "eventhandler_deadletter_failures_total": ("Advisories that could not be dead-lettered (lost).", ()),
    "eventhandler_redriven_total": ("Dead letters put back on INCIDENTS, by worker.", ("worker",)),
    "eventhandler_background_errors_total": ("Background tasks that died and were restarted, by task.", ("task",)),
}


class Metrics:
    """Counters by their short name (`eventhandler_..._total`); exposed as `incidents_eventhandler_..._total`."""

    def __init__(self) -> None:
        self.registry = Registry()
        self._counters: dict[str, Counter] = {
            name: self.registry.counter(PREFIX + name, help_text, labels)
            for name, (help_text, labels) in _COUNTERS.items()
        }
        self._response = {
            kind: self.registry.histogram(
                f"incidents_time_to_{kind}_seconds",
                f"Seconds from an incident's creation to each {kind} (MTTA/MTTR), by severity.",
                ("severity",),
                RESPONSE_BUCKETS,
            )
            for kind in RESPONSE_TIMES.values()
        }

    def observe_response_time(self, event: CloudEvent) -> None:
        """Counted once per stored event (a duplicate is not): MTTA from acknowledges, MTTR from resolves."""
        kind = RESPONSE_TIMES.get(event.type)
        if kind is not None:
            incident = event.data.incident
            seconds = max(0.0, (event.time - incident.created_at).total_seconds())
            self._response[kind].observe(seconds, severity=incident.severity or "none")

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        self._counters[name].inc(amount, **labels)

    def value(self, name: str, **labels: str) -> int:
        return int(self._counters[name].value(**labels))

    def render(self) -> str:
        return self.registry.render()
