"""Counters and a latency histogram for one worker, exposed through prometheus_client (`incidents_worker_*`)."""

from __future__ import annotations

import enum
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.metrics import Registry


class Outcome(enum.StrEnum):
    PROCESSED = "processed"
    SKIPPED = "skipped"
    RETRIED = "retried"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"


BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Event stored → outside system written: seconds when healthy, hours through a vendor outage.
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)


class WorkerMetrics:
    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.events = dict.fromkeys(Outcome, 0)
        self.bucket_counts = [0] * len(BUCKETS)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.num_pending: int | None = None
        self.num_ack_pending: int | None = None
        self.num_redelivered: int | None = None
        self.redeliveries = 0
        self.in_flight = 0
        self.background_errors: dict[str, int] = {}
        self.lag_counts = [0] * len(LAG_BUCKETS)
        self.lag_sum = 0.0
        self.lag_count = 0

    def observe_sync_lag(self, seconds: float) -> None:
        index = bisect_left(LAG_BUCKETS, seconds)
        if index < len(LAG_BUCKETS):
            self.lag_counts[index] += 1
        self.lag_sum += seconds
        self.lag_count += 1

    def observe(self, outcome: Outcome, seconds: float) -> None:
        self.events[outcome] += 1
        index = bisect_left(BUCKETS, seconds)
        if index < len(BUCKETS):
            self.bucket_counts[index] += 1
        self.latency_sum += seconds
        self.latency_count += 1

    def background_error(self, task: str) -> None:
        self.background_errors[task] = self.background_errors.get(task, 0) + 1

    def render(self) -> str:
        registry = Registry()
        registry.registry.register(_WorkerCollector(self))
        return registry.render()


class _WorkerCollector(Collector):
    """Reads the worker's plain counters on scrape: the hot path only adds to ints."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        events = CounterMetricFamily(
            "incidents_worker_events", "Events handled by the worker, by outcome.", labels=["worker", "outcome"]
        )
        for outcome, count in m.events.items():
            events.add_metric([m.worker, outcome.value], count)
        yield events
        latency = HistogramMetricFamily(
            "incidents_worker_processing_seconds", "Time from fetch to ack, nak or term.", labels=["worker"]
        )
        latency.add_metric([m.worker], _buckets(BUCKETS, m.bucket_counts, m.latency_count), m.latency_sum)
        yield latency
        lag = HistogramMetricFamily(
            "incidents_worker_sync_lag_seconds",
            "Seconds from JetStream storing an event to the worker having written it to its outside system.",
            labels=["worker"],
        )
        lag.add_metric([m.worker], _buckets(LAG_BUCKETS, m.lag_counts, m.lag_count), m.lag_sum)
        yield lag
        redeliveries = CounterMetricFamily(
            "incidents_worker_redeliveries", "Messages fetched that JetStream had delivered before.", labels=["worker"]
        )
        redeliveries.add_metric([m.worker], m.redeliveries)
        yield redeliveries
        in_flight = GaugeMetricFamily(
            "incidents_worker_in_flight",
            "Messages fetched and not yet acked, nakked or terminated.",
            labels=["worker"],
        )
        in_flight.add_metric([m.worker], m.in_flight)
        yield in_flight
        background = CounterMetricFamily(
            "incidents_worker_background_errors",
            "Background tasks (heartbeat, pending watch) that died and were restarted, by task.",
            labels=["worker", "task"],
        )
        for task, count in sorted(m.background_errors.items()):
            background.add_metric([m.worker, task], count)
        yield background
        if m.num_pending is not None:
            pending = GaugeMetricFamily(
                "incidents_worker_consumer_pending", "Messages in the stream not yet delivered.", labels=["worker"]
            )
            pending.add_metric([m.worker], m.num_pending)
            yield pending
        for name, value, help_text in (
            ("ack_pending", m.num_ack_pending, "Messages delivered and not yet acknowledged."),
            ("redelivered", m.num_redelivered, "Messages delivered more than once and not yet acknowledged."),
        ):
            if value is not None:
                gauge = GaugeMetricFamily(f"incidents_worker_consumer_{name}", help_text, labels=["worker"])
                gauge.add_metric([m.worker], value)
                yield gauge


def _buckets(bounds: tuple[float, ...], counts: list[int], total: int) -> list[tuple[str, float]]:
    cumulative, buckets = 0, []
    for bound, count in zip(bounds, counts, strict=True):
        cumulative += count
        buckets.append((str(bound), float(cumulative)))
    buckets.append(("+Inf", float(total)))
    return buckets
