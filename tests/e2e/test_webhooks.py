"""Webhooks out, end to end: the services as processes and receivers that verify with `standardwebhooks`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import nats
import nats.js.errors
import pytest
from nats.aio.client import Client

from shared.events import ALL_SUBJECTS
from tests.conftest import webhook_receiver
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

ALL = list(ALL_SUBJECTS)


receiver_a = pytest.fixture(webhook_receiver)
receiver_b = pytest.fixture(webhook_receiver)


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
    metrics = await system.metrics()
    delivered = (
        f'incidents_webhook_attempts_total{{endpoint="{everything}",outcome="delivered"}} {float(len(expected_all))}'
    )
    assert delivered in metrics
    assert f'incidents_webhook_lag_seconds{{endpoint="{some}"}}' in metrics

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


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_rotation_old_and_new_secret_both_verify_during_the_overlap(
    stack: Stack, receiver_a: WebhookReceiver
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        system = await start_system(stack, http, {"WEBHOOK_ROTATION_OVERLAP_SECONDS": "15"})
        try:
            webhook = await system.register(receiver_a, ["incident.created"])
            old = receiver_a.secrets[0]
            rotated = await http.post(f"/webhooks/{webhook}/rotate")
            assert rotated.status_code == 200, rotated.text
            new = rotated.json()["secret"]
            assert new.startswith("whsec_") and new != old
            assert rotated.json()["previous_expires_at"]
            receiver_a.trust(new)
            shown = (await http.get(f"/webhooks/{webhook}")).json()
            assert len(shown["secrets"]) == 2 and old not in str(shown) and new not in str(shown)

            await http.post("/incident/", json={"message": "during the overlap"})
            await eventually(lambda: _accepted(receiver_a, 1), timeout=30, what="the first delivery")
            first = receiver_a.accepted()[0]
            assert first.signatures == 2
            assert first.verified_by == [old, new], "both secrets verify during the overlap"

            async def old_expired() -> bool:
                view = (await http.get(f"/webhooks/{webhook}")).json()
                expiry = next(s["expires_at"] for s in view["secrets"] if s.get("expires_at"))
                return _past(expiry)

            await eventually(old_expired, timeout=30, interval=0.2, what="the overlap to end")
            await http.post("/incident/", json={"message": "after the overlap"})
            await eventually(lambda: _accepted(receiver_a, 2), timeout=30, what="the second delivery")
            second = receiver_a.accepted()[1]
            assert second.signatures == 1
            assert second.verified_by == [new], "after the overlap only the new secret signs"
        finally:
            system.stop()


async def _accepted(fake: WebhookReceiver, count: int) -> bool:
    return len(fake.accepted()) >= count


def _past(moment: str) -> bool:
    return datetime.fromisoformat(moment) < datetime.now(UTC)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_410_disables_the_endpoint_and_nothing_is_lost_when_it_is_enabled_again(
    system: WebhookSystem, receiver_a: WebhookReceiver, receiver_b: WebhookReceiver
) -> None:
    gone = await system.register(receiver_a, ["incident.created"])
    await system.register(receiver_b, ["incident.created"])
    receiver_a.answer(410)
    await system.http.post("/incident/", json={"message": "one"})

    async def disabled() -> bool:
        view = (await system.http.get(f"/webhooks/{gone}")).json()
        assert view["enabled"] is False, view
        assert "410" in view["disabled_reason"]
        return True

    await eventually(disabled, timeout=30, what="the endpoint to be disabled")
    await system.http.post("/incident/", json={"message": "two"})
    await eventually(lambda: _accepted(receiver_b, 2), timeout=30, what="the other endpoint to get both")
    assert len(receiver_a.snapshot()) == 1, "a disabled endpoint gets nothing more"
    log = await system.deliveries(gone)
    assert [(e["outcome"], e["status_code"]) for e in log] == [("disabled", 410)]

    receiver_a.answer(200)
    enabled = await system.http.patch(f"/webhooks/{gone}", json={"enabled": True})
    assert enabled.status_code == 200 and enabled.json()["enabled"] is True
    await eventually(lambda: _accepted(receiver_a, 2), timeout=60, what="the held events after enabling")
    assert [r.event["data"]["incident"]["message"] for r in receiver_a.accepted()] == ["one", "two"]


@pytest.mark.parametrize("database_url", ["sqlite", "mariadb"], indirect=True)
async def test_redeliver_sends_an_event_again_and_logs_it(system: WebhookSystem, receiver_a: WebhookReceiver) -> None:
    webhook = await system.register(receiver_a, ["incident.created"])
    await system.http.post("/incident/", json={"message": "again"})
    await eventually(lambda: _accepted(receiver_a, 1), timeout=30, what="the delivery")
    event_id = receiver_a.accepted()[0].webhook_id

    response = await system.http.post(f"/webhooks/{webhook}/deliveries/{event_id}/redeliver")
    assert response.status_code == 200, response.text
    attempt = response.json()
    assert attempt["manual"] is True and attempt["outcome"] == "delivered" and attempt["status_code"] == 200
    assert receiver_a.accepted_ids() == [event_id, event_id], "same webhook-id, so the receiver can dedup"
    assert all(r.verified_by for r in receiver_a.snapshot())
    log = await system.deliveries(webhook)
    assert [e.get("manual", False) for e in log] == [True, False], "newest first"

    missing = await system.http.post(f"/webhooks/{webhook}/deliveries/{'0' * 8}-0000-0000-0000-{'0' * 12}/redeliver")
    assert missing.status_code == 404 and missing.json() == {"status": "Not Found", "error": "event not found"}
    unknown = await system.http.post(f"/webhooks/{'f' * 16}/deliveries/{event_id}/redeliver")
    assert unknown.status_code == 404 and unknown.json()["error"] == "webhook not found"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_worker_sigkilled_mid_delivery_loses_nothing(
    system: WebhookSystem, receiver_a: WebhookReceiver
) -> None:
    await system.register(receiver_a, ALL)
    receiver_a.slow_next(1000, 1.0)  # every answer takes a second: the kill lands mid-delivery
    await incident_story(system.http, 2)
    await wait_for_empty_outbox(system.stack.database_url)
    expected = await system.expected()

    async def in_flight() -> bool:
        return len(receiver_a.snapshot()) >= 3 and not receiver_a.idle()

    await eventually(in_flight, timeout=30, interval=0.02, what="a delivery in flight")
    system.workers[0].kill()
    receiver_a.clear_faults()
    await system.start_worker()
    await wait_for_all(receiver_a, expected, timeout=120)
    versions = first_accepted_versions(receiver_a.snapshot())
    for incident_id, wanted in _versions(expected).items():
        assert versions[incident_id] == wanted
    assert all(r.verified_by for r in receiver_a.snapshot())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_delivery_time_guard_refuses_what_the_worker_may_not_reach(
    stack: Stack, receiver_a: WebhookReceiver
) -> None:
    """The API allows loopback here, the worker does not: the worker's own check after DNS refuses it."""
    async with httpx.AsyncClient(timeout=30) as http:
        system = await start_system(stack, http)
        try:
            system.workers[0].stop()
            await system.start_worker(WEBHOOK_ALLOW_PRIVATE_NETWORKS="false")
            url = f"http://localhost:{receiver_a.port}/hooks/in"
            webhook = await system.register(receiver_a, ["incident.created"], url=url)
            await http.post("/incident/", json={"message": "m"})

            async def refused() -> bool:
                log = await system.deliveries(webhook)
                assert log, "no attempt yet"
                return True

            await eventually(refused, timeout=30, what="a refused attempt")
            entry = (await system.deliveries(webhook))[-1]
            assert "status_code" not in entry, "no answer: the request was never sent"
            assert entry["error"] == "refused: localhost does not resolve to an address webhooks may call", entry
            assert entry["outcome"] == "retrying"
            assert receiver_a.snapshot() == [], "no request left the worker"
        finally:
            system.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_retry_budget_spent_dead_letters_the_delivery_and_shows_it(
    system: WebhookSystem, receiver_a: WebhookReceiver, receiver_b: WebhookReceiver
) -> None:
    system.workers[0].stop()
    await system.start_worker(WEBHOOK_RETRY_BUDGET_SECONDS="3")
    broken = await system.register(receiver_a, ["incident.created"])
    receiver_a.answer(500)
    await system.http.post("/incident/", json={"message": "never accepted"})

    async def dead_lettered() -> bool:
        log = await system.deliveries(broken)
        assert log and log[0]["outcome"] == "dead_lettered", [e["outcome"] for e in log]
        return True

    await eventually(dead_lettered, timeout=30, what="the delivery to be dead-lettered")
    log = await system.deliveries(broken)
    assert all(e["outcome"] == "retrying" for e in log[1:]) and len(log) >= 2
    event_id = log[0]["event_id"]

    nc = await _nats(system)
    js = nc.jetstream()

    async def in_deadletters() -> bool:
        info = await js.stream_info("DEADLETTERS")
        assert info.state.messages >= 1
        return True

    await eventually(in_deadletters, timeout=30, what="the dead letter")
    dead = await js.get_msg("DEADLETTERS", seq=1)
    headers = dead.headers or {}
    assert headers["Incidents-Worker"] == f"webhooks-{broken}"
    assert headers["Incidents-Error"] == "HTTP 500"
    assert event_id in (dead.data or b"").decode()
    await nc.close()

    # The next event goes out once the endpoint answers again: the dead one no longer holds it back.
    receiver_a.answer(200)
    await system.http.post("/incident/", json={"message": "accepted"})
    await eventually(lambda: _accepted(receiver_a, 1), timeout=30, what="the next event")
    assert receiver_a.accepted()[0].event["data"]["incident"]["message"] == "accepted"


async def _nats(system: WebhookSystem) -> Client:
    return await nats.connect(system.stack.nats.url)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_changing_and_deleting_an_endpoint_changes_what_it_receives(
    system: WebhookSystem, receiver_a: WebhookReceiver, receiver_b: WebhookReceiver
) -> None:
    webhook = await system.register(receiver_a, ["incident.created"])
    await system.register(receiver_b, ["incident.resolved"])
    first = (await system.http.post("/incident/", json={"message": "one"})).json()["ID"]
    await eventually(lambda: _accepted(receiver_a, 1), timeout=30, what="the created event")

    changed = await system.http.patch(f"/webhooks/{webhook}", json={"events": ["incident.resolved"]})
    assert changed.status_code == 200 and changed.json()["events"] == ["incident.resolved"]

    nc = await _nats(system)
    js = nc.jetstream()

    async def filter_updated() -> bool:
        info = await js.consumer_info("INCIDENTS", f"webhooks-{webhook}")
        assert info.config.filter_subjects == ["incident.resolved"], info.config.filter_subjects
        return True

    await eventually(filter_updated, timeout=30, what="the consumer's filter to follow the endpoint")
    await system.http.post("/incident/", json={"message": "two"})
    await system.http.post(f"/incident/{first}/resolve")
    await eventually(lambda: _accepted(receiver_a, 2), timeout=30, what="the resolved event")
    assert [r.event["type"] for r in receiver_a.accepted()] == ["incident.created", "incident.resolved"]

    deleted = await system.http.delete(f"/webhooks/{webhook}")
    assert deleted.status_code == 200

    async def consumer_gone() -> bool:
        try:
            await js.consumer_info("INCIDENTS", f"webhooks-{webhook}")
        except nats.js.errors.NotFoundError:
            return True
        return False

    await eventually(consumer_gone, timeout=30, what="the deleted endpoint's consumer to go")
    await nc.close()
    second = (await system.http.post("/incident/", json={"message": "three"})).json()["ID"]
    await system.http.post(f"/incident/{second}/resolve")
    await eventually(lambda: _accepted(receiver_b, 2), timeout=30, what="the other endpoint to get it")
    assert len(receiver_a.snapshot()) == 2, "a deleted endpoint gets nothing more"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_consumer_deleted_by_hand_is_created_again(system: WebhookSystem, receiver_a: WebhookReceiver) -> None:
    webhook = await system.register(receiver_a, ["incident.created"])
    await system.http.post("/incident/", json={"message": "before"})
    await eventually(lambda: _accepted(receiver_a, 1), timeout=30, what="the first event")
    nc = await _nats(system)
    await nc.jetstream().delete_consumer("INCIDENTS", f"webhooks-{webhook}")
    await nc.close()
    await system.http.post("/incident/", json={"message": "after"})

    async def after_delivered() -> bool:
        messages = [r.event["data"]["incident"]["message"] for r in receiver_a.accepted()]
        assert "after" in messages, messages
        return True

    await eventually(after_delivered, timeout=60, what="delivery to go on")
    # It starts again at the endpoint's creation time: earlier events come again, with their ids.
    ids = receiver_a.accepted_ids()
    assert len(set(ids)) == 2 and all(r.verified_by for r in receiver_a.snapshot())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_retry_after_is_honoured(system: WebhookSystem, receiver_a: WebhookReceiver) -> None:
    webhook = await system.register(receiver_a, ["incident.created"])
    receiver_a.fail_next(1, 503, headers={"Retry-After": "3"})
    await system.http.post("/incident/", json={"message": "later, please"})
    await eventually(lambda: _accepted(receiver_a, 1), timeout=30, what="the delivery after Retry-After")
    log = await system.deliveries(webhook)
    assert [(e["attempt"], e["outcome"]) for e in log] == [(2, "delivered"), (1, "retrying")]
    assert log[1]["status_code"] == 503 and log[1]["next_attempt_in_seconds"] == 3.0
    waited = datetime.fromisoformat(log[0]["time"]) - datetime.fromisoformat(log[1]["time"])
    assert waited.total_seconds() >= 2.9, "not before the receiver asked (the fast retry base is 0.2 s)"
