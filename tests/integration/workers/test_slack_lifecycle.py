"""A Slack root message and its thread follow an incident through its whole life."""

from __future__ import annotations

from nats.js import JetStreamContext

from services.workers.slack.worker import SlackWorker
from tests.fakes.incidents import IncidentFeed, publish
from tests.fakes.slack import FakeSlack
from tests.integration.workers.helpers import StartWorker, load_record, settled
from tests.integration.workers.vendors import slack_env
from tests.support.polling import eventually


def state(fake: FakeSlack, incident_id: int) -> str:
    return str(fake.only(incident_id).blocks[-1]["elements"][0]["text"])


async def test_message_and_thread_follow_the_incident(
    js: JetStreamContext, fake_slack: FakeSlack, start_worker: StartWorker
) -> None:
    await start_worker(SlackWorker, slack_env(fake_slack))
    feed = IncidentFeed()

    await publish(js, feed.create("API 5xx > 2% <eu-west>"))

    async def posted() -> bool:
        return len(fake_slack.roots_for(1)) == 1

    await eventually(posted, what="root message")
    root = fake_slack.only(1)
    assert root.metadata == {"event_type": "incident", "event_payload": {"incident_id": "1"}}
    assert "API 5xx &gt; 2% &lt;eu-west&gt;" in root.blocks[0]["text"]["text"]

    await publish(js, feed.acknowledge(1))
    await publish(js, feed.comment(1, "rolling back"))
    await settled(js, "slack")
    assert state(fake_slack, 1) == "Status: *unresolved* · Acknowledged: *yes*"

    await publish(js, feed.resolve(1))
    await settled(js, "slack")
    assert state(fake_slack, 1) == "Status: *resolved* · Acknowledged: *yes*"

    await publish(js, feed.reopen(1))
    await publish(js, feed.edit(1, "API 5xx in eu-west"))
    await settled(js, "slack")
    root = fake_slack.only(1)
    assert "API 5xx in eu-west" in root.blocks[0]["text"]["text"]
    assert state(fake_slack, 1) == "Status: *unresolved* · Acknowledged: *yes*"

    await publish(js, feed.delete(1))
    await settled(js, "slack")
    assert state(fake_slack, 1) == "Status: *deleted*"
    replies = [r.splitlines() for r in fake_slack.replies(root.ts)]
    assert replies == [
        ["Incident acknowledged.", "[incident-1 v2 acknowledged]"],
        ["rolling back", "[incident-1 #1]"],
        ["Incident resolved.", "[incident-1 v4 resolved]"],
        ["Incident reopened.", "[incident-1 v5 reopened]"],
        ["Incident message changed: API 5xx in eu-west", "[incident-1 v6 updated]"],
        ["Incident deleted.", "[incident-1 v7 deleted]"],
    ]
    assert len(fake_slack.roots_for(1)) == 1
    record = await load_record(js, "slack", 1)
    assert record is not None and record.ref is not None
    assert (record.ref.id, record.ref.channel) == (root.ts, fake_slack.channel)
    assert record.deleted and record.version == 7


async def test_a_first_create_reads_no_history_and_a_comment_alone_updates_no_root(
    js: JetStreamContext, fake_slack: FakeSlack, start_worker: StartWorker
) -> None:
    """Calls per event stay bounded: no conversations.history before a create that was never attempted,
    and no chat.update when the root message would show the same thing."""
    await start_worker(SlackWorker, slack_env(fake_slack))
    feed = IncidentFeed()
    await publish(js, feed.create("queue backlog"))
    await settled(js, "slack")
    updates = fake_slack.count("POST", r"^/chat\.update$")
    await publish(js, feed.comment(1, "draining"))
    await settled(js, "slack")
    assert fake_slack.count("GET", r"^/conversations\.history$") == 0
    assert fake_slack.count("POST", r"^/chat\.update$") == updates
    assert [r.splitlines()[-1] for r in fake_slack.replies(fake_slack.only(1).ts)] == ["[incident-1 #1]"]
    await publish(js, feed.acknowledge(1))
    await settled(js, "slack")
    assert fake_slack.count("POST", r"^/chat\.update$") == updates + 1
    assert state(fake_slack, 1) == "Status: *unresolved* · Acknowledged: *yes*"
