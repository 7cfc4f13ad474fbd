"""The webhook pipeline as processes: nats-server, event handler, API, the `webhooks` worker, local receivers."""

from __future__ import annotations

import collections
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.fakes.webhook_receiver import Received, WebhookReceiver
from tests.support.polling import eventually
from tests.support.processes import Process, answers_ok, free_port
from tests.support.services import module_process, service_env
from tests.support.stack import Stack, event_log, wait_for_eventhandler

# Fast retries and a short ack wait, so that outages and crashes play out within a test.
FAST = {
    "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
    "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "WEBHOOK_RETRY_MAX_SECONDS": "1",
    "WEBHOOK_TIMEOUT_SECONDS": "5",
    "WEBHOOK_ACK_WAIT_SECONDS": "6",
}


@dataclass
class WebhookSystem:
    stack: Stack
    http: httpx.AsyncClient
    workers: list[Process] = field(default_factory=list)
    health_ports: list[int] = field(default_factory=list)

    async def start_worker(self, **overrides: str) -> Process:
        port = free_port()
        env = service_env(NATS_URL=self.stack.nats.url, HEALTH_PORT=str(port), **(FAST | overrides))
        name = f"webhooks-{len(self.workers)}"
        process = module_process(name, ["services.workers", "webhooks"], self.stack.workdir, env).start()
        self.workers.append(process)
        self.health_ports.append(port)

        async def ready() -> bool:
            assert process.alive(), process.output()[-3000:]
            return await answers_ok(f"http://127.0.0.1:{port}/health/ready")

        await eventually(ready, timeout=30, what="the webhooks worker to be ready")
        return process

    async def metrics(self) -> str:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"http://127.0.0.1:{self.health_ports[-1]}/metrics", timeout=5)).text

    def stop(self) -> None:
        for process in self.workers:
            process.stop()

    async def register(self, receiver: WebhookReceiver, events: list[str], url: str | None = None) -> str:
        response = await self.http.post("/webhooks", json={"url": url or receiver.hook_url, "events": events})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["secret"].startswith("whsec_")
        receiver.trust(body["secret"])
        return str(body["id"])

    async def deliveries(self, webhook_id: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"/webhooks/{webhook_id}/deliveries")
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    async def expected(self, types: list[str] | None = None) -> list[dict[str, Any]]:
        """Committed events (from the event log), optionally only those of the given types."""
        rows = await event_log(self.stack.database_url)
        return [r for r in rows if types is None or f"incident.{r['type']}" in types]


async def start_system(stack: Stack, http: httpx.AsyncClient, extra: Mapping[str, str] | None = None) -> WebhookSystem:
    stack.extra_env.update(FAST | dict(extra or {}))
    stack.start_eventhandler()
    stack.start_api()
    http.base_url = httpx.URL(stack.api.url if stack.api else "")
    await wait_for_eventhandler(http)
    system = WebhookSystem(stack, http)
    await system.start_worker()
    return system


async def incident_story(http: httpx.AsyncClient, n: int) -> list[str]:
    """n incidents with several changes each; returns their ids."""
    ids = []
    for i in range(n):
        created = await http.post("/incident/", json={"message": f"incident {i}"})
        assert created.status_code == 200, created.text
        ids.append(created.json()["ID"])
    for incident_id in ids:
        for step in (
            http.post(f"/incident/{incident_id}/acknowledge"),
            http.post(f"/incident/{incident_id}/comments", json={"comment": "looking"}),
            http.put(f"/incident/{incident_id}", json={"message": "still down", "comments": ["a", "b"]}),
            http.post(f"/incident/{incident_id}/resolve"),
        ):
            response = await step
            assert response.status_code == 200, response.text
    return ids


def first_accepted_versions(received: list[Received]) -> dict[int, list[int]]:
    """Per incident, the incidentversion of each event in the order it was first accepted."""
    seen: set[str] = set()
    per_incident: dict[int, list[int]] = collections.defaultdict(list)
    for r in received:
        if r.webhook_id in seen or not 200 <= r.status < 300:
            continue
        seen.add(r.webhook_id)
        per_incident[int(r.event["subject"])].append(int(r.event["incidentversion"]))
    return per_incident


async def wait_for_all(receiver: WebhookReceiver, expected: list[dict[str, Any]], timeout: float = 90) -> None:
    wanted = {row["event_id"] for row in expected}

    async def complete() -> bool:
        missing = wanted - set(receiver.accepted_ids())
        assert not missing, f"{len(missing)} of {len(wanted)} events not delivered yet"
        return True

    await eventually(complete, timeout=timeout, interval=0.2, what="every event to be delivered")
