"""A Jira issue follows an incident through its whole life."""

from __future__ import annotations

from nats.js import JetStreamContext

from services.workers.jira.adf import plain_text
from services.workers.jira.worker import JiraWorker
from tests.fakes.incidents import IncidentFeed, publish
from tests.fakes.jira import FakeJira
from tests.integration.workers.helpers import StartWorker, load_record, settled
from tests.integration.workers.vendors import jira_env
from tests.support.polling import eventually


async def test_issue_follows_create_ack_comment_resolve_reopen_edit_delete(
    js: JetStreamContext, fake_jira: FakeJira, start_worker: StartWorker
) -> None:
    await start_worker(JiraWorker, jira_env(fake_jira))
    feed = IncidentFeed()

    await publish(js, feed.create("Database down\nreplica lag 30s"))

    async def created() -> bool:
        return len(fake_jira.with_label("incident-1")) == 1

    await eventually(created, what="issue created")
    issue = fake_jira.only(1)
    assert issue.summary == "Incident 1: Database down replica lag 30s"
    assert plain_text(issue.description).startswith("Database down\nreplica lag 30s")
    assert issue.issuetype == "Task"

    await publish(js, feed.acknowledge(1))
    await publish(js, feed.comment(1, "looking at it"))
    await publish(js, feed.comment(1, "failover started"))
    await settled(js, "jira")
    texts = fake_jira.only(1).comment_texts()
    assert [t.splitlines()[0] for t in texts] == ["Incident acknowledged.", "looking at it", "failover started"]
    assert texts[1].endswith("[incident-1 #1]") and texts[2].endswith("[incident-1 #2]")

    await publish(js, feed.resolve(1))
    await settled(js, "jira")
    assert fake_jira.only(1).status == "Done"

    await publish(js, feed.reopen(1))
    await settled(js, "jira")
    assert fake_jira.only(1).status == "To Do"

    await publish(js, feed.edit(1, "Database down in eu-west-1"))
    await settled(js, "jira")
    assert fake_jira.only(1).summary == "Incident 1: Database down in eu-west-1"

    await publish(js, feed.delete(1))
    await settled(js, "jira")
    issue = fake_jira.only(1)
    assert issue.status == "Done"
    assert issue.comment_texts()[-1].splitlines()[0] == "Incident deleted."
    record = await load_record(js, "jira", 1)
    assert record is not None
    assert record.ref is not None and record.ref.key == issue.key
    assert (record.version, record.deleted, record.comments_synced) == (8, True, 2)
    assert record.pending is None and record.lease is None
