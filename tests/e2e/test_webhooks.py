"""Webhooks out, end to end: the services as processes and receivers that verify with `standardwebhooks`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.e2e.webhooks_support import (
    WebhookSystem,
    first_accepted_versions,
    incident_story,
    start_system,
    wait_for_all,
)
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.support.polling import eventually
from tests.support.stack import Stack, wait_for_empty_outbox

ALL = [
    "incident.created",
    "incident.updated",
    "incident.acknowledged",
    "incident.unacknowledged",
    "incident.commented",
    "incident.resolved",
    "incident.reopened",
    "incident.deleted",
]


def receiver() -> Iterator[WebhookReceiver]:
    fake = WebhookReceiver()
    fake.start()
    yield fake
    fake.stop()


receiver_a = pytest.fixture(receiver)
receiver_b = pytest.fixture(receiver)


@pytest.fixture
async def system(stack: Stack) -> AsyncIterator[WebhookSystem]:
    async with httpx.AsyncClient(timeout=30) as http:
        started = await start_system(stack, http)
        try:
            yield started
        finally:
            started.stop()


async def test_every_event_is_delivered_signed_and_in_order(
    system: WebhookSystem, receiver_a: WebhookReceiver, receiver_b: WebhookReceiver
) -> None:
    everything = await system.register(receiver_a, ALL)
    some_types = ["incident.created", "incident.resolved"]
    some = await system.register(receiver_b, some_types)

    await incident_story(system.http, 4)
    await wait_for_empty_outbox(system.stack.database_url)
    expected_all = await system.expected()
    expected_some = await system.expected(some_types)
    await wait_for_all(receiver_a, expected_all)
    await wait_for_all(receiver_b, expected_some)

    for fake, expected in ((receiver_a, expected_all), (receiver_b, expected_some)):
        received = fake.snapshot()
        assert all(r.verified_by for r in received), "every request verifies with the endpoint's secret"
        assert all(r.webhook_id == r.event["id"] for r in received), "webhook-id is the event id"
        assert sorted(fake.accepted_ids()) == sorted(row["event_id"] for row in expected), "each exactly once"
        versions = first_accepted_versions(received)
        for row_incident, wanted in _versions(expected).items():
            assert versions[row_incident] == wanted, f"incident {row_incident} out of order at {fake.url}"
    assert {r.event["type"] for r in receiver_b.snapshot()} == set(some_types)

    log = await system.deliveries(everything)
    assert {entry["outcome"] for entry in log} == {"delivered"}
    assert {entry["event_id"] for entry in log} == {row["event_id"] for row in expected_all}
    assert all(entry["status_code"] == 200 and entry["attempt"] == 1 for entry in log)
    assert len(await system.deliveries(some)) == len(expected_some)

    # Secrets are never logged, by any service.
    secrets = receiver_a.secrets + receiver_b.secrets
    for process in [system.stack.api.process if system.stack.api else None, *system.workers]:
        assert process is not None
        assert not any(secret in process.output() for secret in secrets)


def _versions(expected: list[dict[str, object]]) -> dict[int, list[int]]:
    per_incident: dict[int, list[int]] = {}
    for row in expected:
        per_incident.setdefault(int(str(row["incident_id"])), []).append(int(str(row["version"])))
    return {k: sorted(v) for k, v in per_incident.items()}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_failing_endpoint_gets_everything_later_while_another_keeps_receiving(
    system: WebhookSystem, receiver_a: WebhookReceiver, receiver_b: WebhookReceiver
) -> None:
    failing = await system.register(receiver_a, ALL)
    await system.register(receiver_b, ALL)
    receiver_a.answer(500)

    await incident_story(system.http, 3)
    await wait_for_empty_outbox(system.stack.database_url)
    expected = await system.expected()
    # The healthy endpoint gets everything while the other one is down.
    await wait_for_all(receiver_b, expected)

    async def retried() -> bool:
        attempts = [r for r in receiver_a.snapshot() if r.webhook_id == expected[0]["event_id"]]
        assert len(attempts) >= 3, "the first event is retried"
        return True

    await eventually(retried, timeout=30, what="retries of the first event")
    assert receiver_a.accepted_ids() == []

    log = await system.deliveries(failing)
    failed = [entry for entry in log if entry["event_id"] == expected[0]["event_id"]]
    assert len(failed) >= 3
    assert all(entry["status_code"] == 500 and entry["outcome"] == "retrying" for entry in failed)
    assert sorted(entry["attempt"] for entry in failed)[:3] == [1, 2, 3]
    assert all(entry["error"] == "HTTP 500" and entry["duration_ms"] >= 0 and entry["time"] for entry in failed)
    assert all(entry["type"] == "incident.created" for entry in failed)

    receiver_a.answer(200)
    await wait_for_all(receiver_a, expected)
    accepted = receiver_a.accepted_ids()
    assert len(accepted) == len(set(accepted)) == len(expected), "exactly one 2xx-answered delivery per webhook-id"
    versions = first_accepted_versions(receiver_a.snapshot())
    for incident_id, wanted in _versions(expected).items():
        assert versions[incident_id] == wanted
    assert all(r.verified_by for r in receiver_a.snapshot())
