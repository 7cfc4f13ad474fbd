"""The shared health server answers probes and scrapes; the worker's metrics render as Prometheus text."""

from __future__ import annotations

import httpx
import pytest

from services.workers.metrics import Outcome, WorkerMetrics
from services.workers.processor import backoff
from shared.health import HealthServer
from tests.support.metrics import sample


async def test_live_ready_metrics_and_unknown_paths() -> None:
    state = {"ready": False}

    async def ready() -> bool:
        return state["ready"]

    server = HealthServer("127.0.0.1", 0, ready, lambda: "up 1\n")
    await server.start()
    try:
        assert server.port > 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert (await client.get("/health/live")).json() == {"status": "ok"}
            assert (await client.get("/health/ready")).status_code == 503
            state["ready"] = True
            assert (await client.get("/health/ready/")).status_code == 200
            metrics = await client.get("/metrics")
            assert metrics.text == "up 1\n" and metrics.headers["content-type"].startswith("text/plain")
            assert (await client.get("/nope")).status_code == 404
            assert (await client.post("/health/live")).status_code == 405
    finally:
        await server.stop()


async def test_a_failing_readiness_check_reads_as_not_ready() -> None:
    async def broken() -> bool:
        raise ConnectionError("nats gone")

    server = HealthServer("127.0.0.1", 0, broken)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert (await client.get("/health/ready")).status_code == 503
            assert (await client.get("/metrics")).status_code == 404  # no metrics callable given
    finally:
        await server.stop()


def test_metrics_render_counters_histogram_and_gauges() -> None:
    metrics = WorkerMetrics("jira")
    metrics.observe(Outcome.PROCESSED, 0.03)
    metrics.observe(Outcome.PROCESSED, 0.7)
    metrics.observe(Outcome.RETRIED, 100.0)
    metrics.num_pending = 5
    text = metrics.render()
    assert sample(text, "incidents_worker_events_total", worker="jira", outcome="processed") == 2
    assert sample(text, "incidents_worker_events_total", worker="jira", outcome="dead_lettered") == 0
    assert sample(text, "incidents_worker_processing_seconds_bucket", worker="jira", le="0.05") == 1
    assert sample(text, "incidents_worker_processing_seconds_bucket", worker="jira", le="1.0") == 2
    assert sample(text, "incidents_worker_processing_seconds_bucket", worker="jira", le="+Inf") == 3
    assert sample(text, "incidents_worker_processing_seconds_count", worker="jira") == 3
    assert sample(text, "incidents_worker_consumer_pending", worker="jira") == 5
    assert sample(text, "process_cpu_seconds_total") is not None
    assert text.endswith("\n")


@pytest.mark.parametrize(("deliveries", "expected"), [(1, 2.0), (2, 4.0), (5, 32.0), (10, 300.0), (5000, 300.0)])
def test_backoff_doubles_per_delivery_up_to_the_cap(deliveries: int, expected: float) -> None:
    assert backoff(deliveries, base=2.0, cap=300.0) == expected
