"""Dead letters are not lost while the event handler is down: the advisories wait in a stream for it."""

from __future__ import annotations

import sys
from pathlib import Path

from nats.aio.client import Client

from shared.events import STREAM, encode_event
from shared.jetstream import DEADLETTERS_LIST_SUBJECT, PUBLISH_SUBJECT
from tests.fakes.jira import FakeJira
from tests.integration.eventhandler.support import call, publish_body
from tests.integration.workers.vendors import jira_env, process_env
from tests.support.polling import eventually, eventually_sync
from tests.support.processes import NatsServer, Process, answers_ok_sync, free_port
from tests.support.services import module_process, service_env
from tests.unit.eventhandler.factory import make_event


def start_eventhandler(nats_url: str, tmp_path: Path) -> Process:
    port = free_port()
    env = service_env(NATS_URL=nats_url, HEALTH_PORT=str(port))
    process = module_process("eventhandler", ["services.eventhandler"], tmp_path, env).start()
    eventually_sync(
        lambda: answers_ok_sync(f"http://127.0.0.1:{port}/health/ready"),
        timeout=30,
        what="the event handler to be ready",
    )
    return process


async def test_a_permanent_failure_while_the_eventhandler_is_down_is_dead_lettered_once_it_is_back(
    nats_server: NatsServer, nc: Client, tmp_path: Path
) -> None:
    fake_jira = FakeJira()
    fake_jira.start()
    eventhandler = start_eventhandler(nats_server.url, tmp_path)
    worker: Process | None = None
    try:
        event = make_event(7)
        reply = await call(nc, PUBLISH_SUBJECT, publish_body([encode_event(event)]))
        assert reply["stored"] == [event.id]
        seq = (await nc.jetstream().stream_info(STREAM)).state.last_seq
        eventhandler.kill()  # SIGKILL: down, not draining

        # The real jira worker, as a process, meets a permanent failure and terminates the event.
        fake_jira.fail_next(1, 400, {"errorMessages": ["Field 'labels' cannot be set."]}, method="POST")
        env = process_env(nats_server.url, jira_env(fake_jira))
        argv = [sys.executable, "-m", "services.workers", "jira"]
        worker = Process("jira", argv, env, tmp_path / "worker-jira.log").start()

        async def terminated() -> bool:
            assert worker is not None and worker.alive(), worker.output()[-3000:] if worker else ""
            info = await nc.jetstream().consumer_info(STREAM, "jira")
            return bool(info.ack_floor and info.ack_floor.stream_seq >= seq and info.num_ack_pending == 0)

        await eventually(terminated, timeout=30, what="the worker to terminate the event")
        assert '"event failed permanently"' in worker.output()
        assert fake_jira.with_label("incident-7") == []

        eventhandler = start_eventhandler(nats_server.url, tmp_path)

        async def dead_lettered() -> list[dict[str, object]]:
            items: list[dict[str, object]] = (await call(nc, DEADLETTERS_LIST_SUBJECT, {"worker": "jira"}))["items"]
            assert items, "nothing dead-lettered yet"
            return items

        (item,) = await eventually(dead_lettered, timeout=30, what="the terminated event in DEADLETTERS")
        assert (item["stream_seq"], item["reason"]) == (seq, "terminated")
        assert "400" in str(item["error"]) and "cannot be set" in str(item["error"])
    finally:
        if worker is not None:
            worker.stop()
        eventhandler.stop()
        fake_jira.stop()
