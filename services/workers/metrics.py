"""Counters and a latency histogram for one worker, rendered as Prometheus text."""

from __future__ import annotations

import enum
from bisect import bisect_left


class Outcome(enum.StrEnum):
    PROCESSED = "processed"
    SKIPPED = "skipped"
    RETRIED = "retried"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"


BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class WorkerMetrics:
    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.events = dict.fromkeys(Outcome, 0)
        self.bucket_counts = [0] * len(BUCKETS)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.num_pending: int | None = None
        self.in_flight = 0

    def observe(self, outcome: Outcome, seconds: float) -> None:
        self.events[outcome] += 1
        index = bisect_left(BUCKETS, seconds)
        if index < len(BUCKETS):
            self.bucket_counts[index] += 1
        self.latency_sum += seconds
        self.latency_count += 1

    def render(self) -> str:
        label = f'worker="{self.worker}"'
        lines = [
            "# HELP incidents_worker_events_total Events handled by the worker, by outcome.",
            "# TYPE incidents_worker_events_total counter",
        ]
        lines += [f'incidents_worker_events_total{{{label},outcome="{o.value}"}} {n}' for o, n in self.events.items()]
        lines += [
            "# HELP incidents_worker_processing_seconds Time from fetch to ack, nak or term.",
            "# TYPE incidents_worker_processing_seconds histogram",
        ]
        cumulative = 0
        for bound, count in zip(BUCKETS, self.bucket_counts, strict=True):
            cumulative += count
            lines.append(f'incidents_worker_processing_seconds_bucket{{{label},le="{bound}"}} {cumulative}')
        lines += [
            f'incidents_worker_processing_seconds_bucket{{{label},le="+Inf"}} {self.latency_count}',
            f"incidents_worker_processing_seconds_sum{{{label}}} {self.latency_sum:.6f}",
            f"incidents_worker_processing_seconds_count{{{label}}} {self.latency_count}",
            "# HELP incidents_worker_in_flight Messages fetched and not yet acked, nakked or terminated.",
            "# TYPE incidents_worker_in_flight gauge",
            f"incidents_worker_in_flight{{{label}}} {self.in_flight}",
        ]
        if self.num_pending is not None:
            lines += [
                "# HELP incidents_worker_consumer_pending Messages in the stream not yet delivered.",
                "# TYPE incidents_worker_consumer_pending gauge",
                f"incidents_worker_consumer_pending{{{label}}} {self.num_pending}",
            ]
        return "\n".join(lines) + "\n"
