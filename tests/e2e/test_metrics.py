"""Every service's `GET /metrics`, scraped from the real processes and parsed as Prometheus does."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.polling import eventually
from tests.support.processes import Process, free_port
from tests.support.services import module_process, service_env
from tests.support.stack import Stack


def _families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


def _service(stack: Stack, name: str, args: list[str]) -> tuple[Process, int]:
    port = free_port()
    env = service_env(NATS_URL=stack.nats.url, HEALTH_HOST="127.0.0.1", HEALTH_PORT=str(port))
    return module_process(name, args, stack.workdir, env).start(), port


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the metrics do not depend on the database
async def test_every_service_serves_prometheus_client_metrics(stack: Stack) -> None:
    eventhandler_port = free_port()
    stack.extra_env = {"HEALTH_HOST": "127.0.0.1", "HEALTH_PORT": str(eventhandler_port)}
    stack.start_eventhandler()
    stack.extra_env = {}
    api = stack.start_api()
    jira, jira_port = _service(stack, "worker-jira", ["services.workers", "jira"])  # no credentials: dry run
    webhooks, webhooks_port = _service(stack, "worker-webhooks", ["services.workers", "webhooks"])
    expected = {
        "api": (f"{api.url}/metrics", {"incidents_api_requests", "incidents_api_events_relayed"}),
        "eventhandler": (
            f"http://127.0.0.1:{eventhandler_port}/metrics",
            {"incidents_eventhandler_events_published", "incidents_eventhandler_requests"},
        ),
        "jira": (f"http://127.0.0.1:{jira_port}/metrics", {"incidents_worker_events", "incidents_worker_in_flight"}),
        "webhooks": (f"http://127.0.0.1:{webhooks_port}/metrics", {"incidents_webhook_attempts"}),
    }
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            created = await http.post(f"{api.url}/incident/", json={"message": "scrape me"})
            assert created.status_code == 200, created.text
            for name, (url, families) in expected.items():

                async def scraped(url: str = url) -> str:
                    try:
                        response = await http.get(url)
                    except httpx.HTTPError:
                        return ""
                    return response.text if response.status_code == 200 else ""

                text = await eventually(scraped, timeout=60, what=f"{name} to serve /metrics")
                found = _families(text)
                # process_* come with prometheus_client: proof it rendered the page, not a hand-written renderer.
                assert {"process_cpu_seconds", "process_resident_memory_bytes"} <= found, (name, sorted(found))
                assert families <= found, (name, sorted(found))
                assert all(f.startswith(("incidents_", "process_", "python_")) for f in found), (name, sorted(found))
    finally:
        for process in (webhooks, jira):
            process.stop()
