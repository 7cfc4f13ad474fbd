"""The consumers the event handler makes on request: the requester picks a few values, never the rest."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from nats.js.api import AckPolicy, DeliverPolicy

from services.eventhandler.consumers import ENDPOINTS_STREAM, feed_config, webhook_config
from services.eventhandler.errors import RequestError
from shared.consumers import FeedRequest, WebhookConsumerRequest
from shared.events import STREAM


@pytest.mark.parametrize(
    ("user", "deliver"),
    [
        ("api", "$KV.refs-jira.incident.1"),
        ("api", "deadletter.jira"),
        ("api", "_INBOX_webhooks.abc"),
        ("api", "_INBOX_api.>"),
        ("api", "_INBOX_api.*"),
        ("api", "_INBOX_api.a.b"),
        ("api", "_INBOX_api."),
        ("api", "_INBOX_apix.abc"),
        ("webhooks", "_INBOX_api.abc"),
        ("webhooks", "$KV.webhook-endpoints.endpoint.0000000000000000"),
        ("jira", "_INBOX_jira.abc"),
    ],
)
def test_a_feed_delivers_only_into_one_literal_subject_of_the_requesters_own_inbox(user: str, deliver: str) -> None:
    with pytest.raises(RequestError):
        feed_config(user, "feed-x-00000000", FeedRequest(deliver_subject=deliver, start_seq=1))


def test_the_console_feed_is_fixed_but_for_its_inbox_and_start() -> None:
    stream, config = feed_config(
        "api", "feed-api-abcdefgh", FeedRequest(deliver_subject="_INBOX_api.Xy1", start_seq=42)
    )
    assert stream == STREAM
    assert (config.deliver_subject, config.filter_subject, config.opt_start_seq) == ("_INBOX_api.Xy1", "incident.>", 42)
    assert config.deliver_policy == DeliverPolicy.BY_START_SEQUENCE and config.ack_policy == AckPolicy.NONE
    assert config.mem_storage and config.flow_control and config.durable_name is None
    assert config.inactive_threshold and config.inactive_threshold > 0
    with pytest.raises(RequestError, match="start_seq"):
        feed_config("api", "feed-api-abcdefgh", FeedRequest(deliver_subject="_INBOX_api.Xy1", start_seq=0))


def test_the_endpoints_watch_reads_only_the_endpoints_bucket() -> None:
    stream, config = feed_config("webhooks", "feed-webhooks-abcdefgh", FeedRequest(deliver_subject="_INBOX_webhooks.a"))
    assert stream == ENDPOINTS_STREAM
    assert config.filter_subject == "$KV.webhook-endpoints.endpoint.*"
    assert config.deliver_policy == DeliverPolicy.LAST_PER_SUBJECT


@pytest.mark.parametrize(
    ("endpoint_id", "events", "ack_wait"),
    [
        ("jira", ["incident.created"], 30.0),
        ("0123456789abcdef.>", ["incident.created"], 30.0),
        ("0123456789abcdef", [], 30.0),
        ("0123456789abcdef", ["incident.>"], 30.0),
        ("0123456789abcdef", ["deadletter.jira"], 30.0),
        ("0123456789abcdef", ["incident.created"], 0.0),
        ("0123456789abcdef", ["incident.created"], 86400.0),
    ],
)
def test_a_webhook_consumer_request_is_checked(endpoint_id: str, events: list[str], ack_wait: float) -> None:
    request = WebhookConsumerRequest(
        endpoint_id=endpoint_id, events=events, created_at=datetime.now(UTC), ack_wait=ack_wait
    )
    with pytest.raises(RequestError):
        webhook_config(request)


def test_a_webhook_consumer_is_a_pull_consumer_named_after_its_endpoint() -> None:
    created = datetime(2026, 1, 2, tzinfo=UTC)
    request = WebhookConsumerRequest(
        endpoint_id="0123456789abcdef",
        events=["incident.resolved", "incident.created"],
        created_at=created,
        ack_wait=30,
    )
    config = webhook_config(request)
    assert config.durable_name == "webhooks-0123456789abcdef" and config.deliver_subject is None
    assert config.filter_subjects == ["incident.created", "incident.resolved"]
    assert config.opt_start_time == created and config.max_ack_pending == 1
