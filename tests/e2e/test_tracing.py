"""One incident created through the API gives one trace across the processes: the API's request, the event
handler's store, each worker's sync and each vendor call, exported over OTLP/HTTP protobuf to a real receiver."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.fakes.zendesk import FakeZendesk
from tests.integration.workers.vendors import jira_env, slack_env, zendesk_env
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.polling import eventually
from tests.support.services import module_process, service_env
from tests.support.stack import Stack, wait_for_empty_outbox, wait_for_eventhandler

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5
WORKERS = ("jira", "slack", "zendesk", "webhooks")


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    started = OtlpReceiver().start()
    yield started
    started.stop()


@pytest.fixture
def vendors() -> Iterator[tuple[FakeJira, FakeSlack, FakeZendesk, WebhookReceiver]]:
    started = (FakeJira(), FakeSlack(), FakeZendesk(), WebhookReceiver())
    for fake in started:
        fake.start()
    yield started
    for fake in started:
        fake.stop()


def _one(spans: list[ReceivedSpan], what: str) -> ReceivedSpan:
    assert len(spans) == 1, f"{what}: {spans}"
    return spans[0]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # tracing does not depend on the database
async def test_one_trace_runs_from_the_request_through_every_service_to_each_vendor_call(
    stack: Stack,
    tmp_path: Path,
    receiver: OtlpReceiver,
    vendors: tuple[FakeJira, FakeSlack, FakeZendesk, WebhookReceiver],
) -> None:
    jira, slack, zendesk, hooks = vendors
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    stack.extra_env = otel | {"WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}
    stack.start_eventhandler()
    api = stack.start_api()
    vendor_env = {
        "jira": jira_env(jira),
        "slack": slack_env(slack),
        "zendesk": zendesk_env(zendesk),
        "webhooks": {"WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"},
    }
    workers = [
        module_process(
            f"worker-{name}", ["services.workers", name], tmp_path, service_env(NATS_URL=stack.nats.url, **env, **otel)
        ).start()
        for name, env in vendor_env.items()
    ]
    trace_id, caller_span = os.urandom(16).hex(), os.urandom(8).hex()
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
            await wait_for_eventhandler(http)
            hook = await http.post("/webhooks", json={"url": hooks.hook_url, "events": ["incident.created"]})
            assert hook.status_code == 201, hook.text
            hooks.trust(hook.json()["secret"])
            created = await http.post(
                "/incident/", json={"message": "traced"}, headers={"traceparent": f"00-{trace_id}-{caller_span}-01"}
            )
            assert created.status_code == 200, created.text
            incident_id = int(created.json()["ID"])
            await wait_for_empty_outbox(stack.database_url)

            def synced() -> bool:
                return bool(jira.issues and slack.messages and zendesk.tickets and hooks.accepted())

            async def everything_exported() -> list[ReceivedSpan]:
                spans = receiver.trace(trace_id)
                services = {span.service for span in spans if span.kind == CLIENT}
                return spans if synced() and services >= {f"incidents-worker-{w}" for w in WORKERS} else []

            spans = await eventually(everything_exported, timeout=60, interval=0.2, what="every service's spans")
    finally:
        for worker in workers:
            worker.stop()
        stack.stop()

    assert receiver.content_types == {"application/x-protobuf"}  # OTLP/HTTP protobuf, not gRPC or JSON
    request = _one([s for s in spans if s.service == "incidents-api" and s.kind == SERVER], "the API's server span")
    assert request.parent_span_id == caller_span  # the caller's traceparent is continued
    assert request.attributes["http.request.method"] == "POST"
    assert request.attributes["http.response.status_code"] == 200

    # Under load the relay may send an event again (its request timed out): JetStream drops the duplicate, and
    # the message the workers read carries the context of the publish that stored it.
    stored = _one(
        [
            s
            for s in spans
            if s.service == "incidents-eventhandler" and s.kind == PRODUCER and not s.attributes["incidents.duplicate"]
        ],
        "the event's store span",
    )
    assert stored.parent_span_id == request.span_id
    assert stored.attributes["messaging.destination.name"] == "incident.created"
    assert stored.attributes["incidents.incident_id"] == str(incident_id)
    # The relay's request carries many events: its span (another trace) is linked to each event's trace, and
    # the event handler's handling of that request is its child.
    relays = [s for s in receiver.all() if s.name == "outbox relay" and (trace_id, request.span_id) in s.links]
    assert relays, "no relay span linked to the request"
    assert all(relay.service == "incidents-api" and relay.kind == PRODUCER for relay in relays)
    handled = [s for s in receiver.all() if s.service == "incidents-eventhandler" and s.kind == SERVER]
    assert {s.parent_span_id for s in handled} & {relay.span_id for relay in relays}
    assert any(link[0] in {relay.trace_id for relay in relays} for link in stored.links)

    for name in WORKERS:
        service = f"incidents-worker-{name}"
        sync = _one([s for s in spans if s.service == service and s.kind == CONSUMER], f"{name}'s sync span")
        assert sync.parent_span_id == stored.span_id
        calls = [s for s in spans if s.service == service and s.kind == CLIENT]
        assert calls, f"{name} made no traced vendor call"
        for call in calls:
            assert call.parent_span_id == sync.span_id
            assert call.attributes["http.request.method"] in {"GET", "POST", "PUT"}
            assert 200 <= call.attributes["http.response.status_code"] < 300
            assert call.attributes["url.full"].startswith("http://127.0.0.1:")
