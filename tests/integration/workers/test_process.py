"""The worker as a process: SIGKILL at the worst moments, SIGTERM mid-request, dry run with health and metrics."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError

from shared.jetstream import refs_bucket
from tests.fakes.incidents import IncidentFeed, publish
from tests.fakes.jira import FakeJira, Issue
from tests.integration.workers.helpers import StartProcess, load_record, settled
from tests.integration.workers.vendors import jira_env, make_vendor, process_env
from tests.support.metrics import sample
from tests.support.polling import eventually
from tests.support.processes import NatsServer, Process, answers_ok, free_port


def log_events(process: Process) -> list[dict[str, object]]:
    events = []
    for line in process.output().splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


async def written(process: Process, *names: str) -> list[dict[str, object]]:
    """The process's log lines once a line of each name is there: a running service writes its info lines
    a batch at a time, within a fraction of a second."""

    async def probe() -> list[dict[str, object]]:
        events = log_events(process)
        assert set(names) <= {e.get("event") for e in events}, f"not yet written: {names}"
        return events

    return await eventually(probe, what=f"log lines {names}")


def killer(process_holder: list[Process]) -> object:
    """A fake hook that SIGKILLs the worker once, after the fake stored the change and before it answers."""

    def kill(*_: object) -> None:
        if process_holder:
            os.kill(process_holder.pop().pid, signal.SIGKILL)

    return kill


async def dead(process: Process) -> bool:
    return not process.alive()


async def test_killed_after_jira_created_the_issue_and_before_recording_it(
    js: JetStreamContext, nats_server: NatsServer, fake_jira: FakeJira, start_process: StartProcess
) -> None:
    fake_jira.search_lag = 3.0  # the new issue stays out of search results for a while
    env = process_env(nats_server.url, jira_env(fake_jira, lag=6), WORKER_CREATE_GRACE_SECONDS="1")
    first = await start_process("jira", env)
    victims = [first]
    fake_jira.on_create = killer(victims)  # type: ignore[assignment]
    feed = IncidentFeed()
    await publish(js, feed.create("kernel panic on db-3"))
    await publish(js, feed.comment(1, "rebooting"))

    await eventually(lambda: dead(first), what="the worker to be killed")
    fake_jira.on_create = None
    assert len(fake_jira.with_label("incident-1")) == 1
    record = await load_record(js, "jira", 1)
    assert record is not None and record.ref is None
    assert record.pending is not None and record.pending.op == "create"

    second = await start_process("jira", env)
    await settled(js, "jira", timeout=30)
    issue = fake_jira.only(1)
    assert sum("[incident-1 #1]" in t for t in issue.comment_texts()) == 1
    assert fake_jira.count("POST", r"^/rest/api/3/issue$") == 1
    logged = await written(second, "found existing outside object")
    assert any(e.get("reason") == "an earlier create may not be visible yet; waiting" for e in logged)
    record = await load_record(js, "jira", 1)
    assert record is not None and record.ref is not None and record.ref.key == issue.key
    assert record.pending is None and record.version == 2


@pytest.mark.parametrize("name", ["slack", "zendesk"])
async def test_killed_after_slack_or_zendesk_created_the_object_and_before_recording_it(
    name: str,
    js: JetStreamContext,
    nats_server: NatsServer,
    request: pytest.FixtureRequest,
    start_process: StartProcess,
) -> None:
    vendor = make_vendor(name, request.getfixturevalue(f"fake_{name}"))
    env = process_env(nats_server.url, vendor.env, WORKER_CREATE_GRACE_SECONDS="1")
    first = await start_process(name, env)
    vendor.fake.on_create = killer([first])
    feed = IncidentFeed()
    await publish(js, feed.create("lost the answer"))
    await publish(js, feed.comment(1, "still here"))

    await eventually(lambda: dead(first), what="the worker to be killed")
    vendor.fake.on_create = None
    assert vendor.objects(1) == 1
    second = await start_process(name, env)
    await settled(js, name, timeout=30)
    assert vendor.objects(1) == 1 and vendor.creates() == 1
    assert sum("[incident-1 #1]" in p for p in vendor.posts(1)) == 1
    await written(second, "found existing outside object")


async def test_killed_after_a_comment_was_posted_and_before_recording_it(
    js: JetStreamContext, nats_server: NatsServer, fake_jira: FakeJira, start_process: StartProcess
) -> None:
    # The next owner waits the grace out from the lapse (a state call may have been in flight): keep it short.
    env = process_env(nats_server.url, jira_env(fake_jira) | {"WORKER_CREATE_GRACE_SECONDS": "3"})
    first = await start_process("jira", env)
    feed = IncidentFeed()
    await publish(js, feed.create("cert expired"))
    await settled(js, "jira")
    victims = [first]

    def on_comment(issue: Issue, text: str) -> None:
        killer(victims)()  # type: ignore[operator]

    fake_jira.on_comment = on_comment
    await publish(js, feed.comment(1, "renewing"))
    await eventually(lambda: dead(first), what="the worker to be killed")
    fake_jira.on_comment = None
    record = await load_record(js, "jira", 1)
    assert record is not None and record.pending is not None and record.pending.tag == "[incident-1 #1]"

    second = await start_process("jira", env)
    await publish(js, feed.comment(1, "renewed"))
    await settled(js, "jira", timeout=30)
    texts = fake_jira.only(1).comment_texts()
    assert [t.splitlines()[0] for t in texts] == ["renewing", "renewed"]
    await written(second, "pending post found outside")
    record = await load_record(js, "jira", 1)
    assert record is not None and record.comments_synced == 2 and record.pending is None


async def test_sigterm_finishes_the_request_in_flight_then_exits(
    js: JetStreamContext, nats_server: NatsServer, fake_jira: FakeJira, start_process: StartProcess
) -> None:
    process = await start_process("jira", process_env(nats_server.url, jira_env(fake_jira)))
    fake_jira.slow_next(1, 1.5, method="POST", path=r"^/rest/api/3/issue$")
    await publish(js, IncidentFeed().create("slow vendor"))

    async def create_in_flight() -> bool:
        return fake_jira.count("POST", r"^/rest/api/3/issue$") == 1

    await eventually(create_in_flight, what="the create request to reach Jira")
    assert process.stop() == 0
    # Acked before exiting: nothing is left for a redelivery.
    await settled(js, "jira", timeout=1.5)
    assert len(fake_jira.with_label("incident-1")) == 1
    events = [e.get("event") for e in log_events(process)]
    assert events.index("finishing in-flight events") < events.index("event applied") < events.index("worker stopped")


async def test_dry_run_logs_requests_serves_health_and_metrics(
    js: JetStreamContext, nats_server: NatsServer, start_process: StartProcess
) -> None:
    env = process_env(nats_server.url, {"JIRA_PROJECT_KEY": "OPS"})
    process = await start_process("jira", env)
    base = f"http://127.0.0.1:{env['HEALTH_PORT']}"
    feed = IncidentFeed()
    await publish(js, feed.create("dry run please"))
    await publish(js, feed.comment(1, "still dry"))

    async def processed_two() -> bool:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"{base}/metrics")).text
        return sample(text, "incidents_worker_events_total", worker="jira", outcome="processed") == 2

    await eventually(processed_two, what="two events processed")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{base}/health/live")).status_code == 200
        assert (await client.get(f"{base}/health/ready")).status_code == 200
        metrics = (await client.get(f"{base}/metrics")).text
    assert "incidents_worker_processing_seconds_count" in metrics
    assert sample(metrics, "process_cpu_seconds_total") is not None  # rendered by prometheus_client
    # At info, each event's one line names the requests it would have sent; the bodies only at debug.
    logged = await written(process, "event applied", "dry run: request body")
    applied = [e for e in logged if e.get("event") == "event applied"]
    assert applied and all(e["level"] == "info" for e in applied)
    would_send = [str(r) for e in applied for r in e["would_send"]]  # type: ignore[attr-defined]
    create = "https://your-site.atlassian.net/rest/api/3/issue"
    assert f"POST {create}" in would_send
    assert any(r.startswith("POST ") and r.endswith("/rest/api/3/issue/OPS-0/comment") for r in would_send)
    assert not [e for e in log_events(process) if e.get("event") == "dry run: request not sent"]  # no line per request
    pretended = [e["level"] for e in log_events(process) if e.get("event") == "created outside"]
    assert pretended == ["debug"]  # nothing was created outside: not an info line
    body = next(e for e in log_events(process) if e.get("event") == "dry run: request body" and e["url"] == create)
    assert body["level"] == "debug"
    assert body["json"]["fields"]["labels"] == ["incident-1"]  # type: ignore[index]
    assert "authorization" not in process.output().lower()
    with pytest.raises(BucketNotFoundError):
        await js.key_value(refs_bucket("jira"))


async def test_without_nats_it_is_live_not_ready_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = process_env(f"nats://127.0.0.1:{free_port()}", {})
    process = Process("jira", [sys.executable, "-m", "services.workers", "jira"], env, tmp_path / "w.log").start()
    base = f"http://127.0.0.1:{env['HEALTH_PORT']}"
    try:

        async def live() -> bool:
            assert process.alive(), process.output()[-2000:]
            return await answers_ok(f"{base}/health/live")

        await eventually(live, timeout=20, what="liveness while NATS is unreachable")
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{base}/health/ready")).status_code == 503
    finally:
        assert process.stop(timeout=10) == 0
