"""Fencing with real processes: a replica frozen (SIGSTOP) longer than its lease and AckWait, while another
replica takes the incident over, sends nothing more outside when it is thawed (SIGCONT)."""

from __future__ import annotations

import os
import signal

import pytest
from nats.js import JetStreamContext

from services.workers.fence import fenced
from services.workers.http import Request, VendorHttp
from services.workers.httpclient import HttpClient
from services.workers.lease import LeaseLost
from tests.fakes.incidents import IncidentFeed, publish
from tests.fakes.jira import FakeJira
from tests.integration.workers.helpers import StartProcess, load_record, settled
from tests.integration.workers.vendors import jira_env, process_env
from tests.support.polling import eventually
from tests.support.processes import NatsServer

TRANSITIONS = r"/transitions$"
# Long enough for the second replica to start, take the incident over and apply two events.
HELD_ANSWER_SECONDS = 15.0


async def test_a_replica_thawed_after_its_lease_expired_does_not_write_an_old_state_over_a_newer_one(
    js: JetStreamContext, nats_server: NatsServer, fake_jira: FakeJira, start_process: StartProcess
) -> None:
    """The paused-replica duplicate, reduced: the first replica lists the issue's transitions to resolve it,
    is frozen before it can take the "Done" transition, and meanwhile the second replica resolves and
    reopens the issue. Thawed, the first replica must not resolve it again (it no longer owns it)."""
    patient = {"WORKER_HTTP_TIMEOUT_SECONDS": "120", "WORKER_SYNC_TIMEOUT_SECONDS": "120"}
    first = await start_process("jira", process_env(nats_server.url, jira_env(fake_jira), **patient))
    feed = IncidentFeed()
    await publish(js, feed.create("disk full on db-2"))
    await settled(js, "jira")
    issue = fake_jira.only(1)

    fake_jira.slow_next(1, HELD_ANSWER_SECONDS, method="GET", path=TRANSITIONS)
    await publish(js, feed.resolve(1))

    async def listing_transitions() -> bool:
        return fake_jira.count("GET", TRANSITIONS) == 1

    await eventually(listing_transitions, what="the first replica to ask for the transitions")
    os.kill(first.pid, signal.SIGSTOP)
    try:
        await start_process("jira", process_env(nats_server.url, jira_env(fake_jira), **patient))
        await publish(js, feed.reopen(1))
        await settled(js, "jira", timeout=60)
        record = await load_record(js, "jira", 1)
        assert record is not None and record.version == 3 and record.status == "unresolved"
        assert issue.status == "To Do"
        taken = fake_jira.count("POST", TRANSITIONS)

        async def answered() -> bool:
            return fake_jira.idle()  # the held answer is in the frozen replica's socket now

        await eventually(answered, timeout=HELD_ANSWER_SECONDS + 30, what="the held answer to be sent")
    finally:
        os.kill(first.pid, signal.SIGCONT)

    async def acted() -> bool:
        return "not calling out" in first.output() or fake_jira.count("POST", TRANSITIONS) > taken

    await eventually(acted, timeout=30, what="the thawed replica to find its lease gone (or to call out)")
    await settled(js, "jira")
    assert issue.status == "To Do", "the thawed replica resolved the reopened issue again"
    assert fake_jira.count("POST", TRANSITIONS) == taken
    assert fake_jira.count("POST", r"^/rest/api/3/issue$") == 1


async def test_the_fence_is_checked_again_as_the_request_leaves_the_socket(fake_jira: FakeJira) -> None:
    """A replica frozen between the check in VendorHttp.send and the socket write must not send on thaw:
    the client checks the fence once more right before the write, with no await in between."""
    checks: list[str] = []

    def lease_lapses_after_the_first_check() -> None:
        checks.append("checked")
        if len(checks) > 1:
            raise LeaseLost("the incident's lease may have expired (was this process paused?): not calling out")

    async with HttpClient(timeout=5) as client:
        http = VendorHttp("jira", client, fake_jira.url)
        with fenced(lease_lapses_after_the_first_check), pytest.raises(LeaseLost):
            await http.send(Request("GET", "/rest/api/3/issue/OPS-1/transitions"))
    assert len(checks) == 2
    assert fake_jira.requests == []  # nothing reached the vendor
