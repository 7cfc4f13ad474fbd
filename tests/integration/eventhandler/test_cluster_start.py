"""The event handler and a worker started while their NATS cluster has no JetStream leader wait for one instead
of exiting (which only makes a restart loop)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.fakes.jira import FakeJira
from tests.integration.workers.vendors import jira_env
from tests.support.cluster import NatsCluster
from tests.support.polling import eventually
from tests.support.processes import Process, answers_ok, free_port
from tests.support.services import module_process, service_env


async def started_without_a_leader(cluster: NatsCluster, process: Process, what: str) -> None:
    """Starts `process` while one node of three runs (no quorum: JetStream answers nothing), sees it wait for a
    leader alive, then brings the other two nodes back."""
    await cluster.wait_formed()
    for node in cluster.nodes[1:]:
        await asyncio.to_thread(node.stop)
    process.start()

    async def waiting_or_gone() -> bool:
        return "jetstream not available yet" in process.output() or not process.alive()

    await eventually(waiting_or_gone, timeout=60, interval=0.2, what=f"{what} to meet no leader")
    assert process.alive(), process.output()[-3000:]
    for node in cluster.nodes[1:]:
        await asyncio.to_thread(node.start)


async def test_the_event_handler_waits_for_a_jetstream_leader_at_start(tmp_path: Path) -> None:
    cluster = await asyncio.to_thread(NatsCluster(tmp_path / "nats").start)
    port = free_port()
    env = service_env(NATS_URL=cluster.urls[0], STREAM_REPLICAS="3")
    env.update(HEALTH_HOST="127.0.0.1", HEALTH_PORT=str(port))
    eventhandler = module_process("eventhandler", ["services.eventhandler"], tmp_path, env)
    try:
        await started_without_a_leader(cluster, eventhandler, "the event handler")

        async def ready() -> bool:
            assert eventhandler.alive(), eventhandler.output()[-3000:]
            return await answers_ok(f"http://127.0.0.1:{port}/health/ready", timeout=2)

        await eventually(ready, timeout=90, interval=0.5, what="the event handler to start once a leader exists")
    finally:
        eventhandler.stop()
        await asyncio.to_thread(cluster.stop)


async def test_a_worker_waits_for_a_jetstream_leader_before_it_opens_its_bucket(tmp_path: Path) -> None:
    cluster = await asyncio.to_thread(NatsCluster(tmp_path / "nats").start)
    jira = FakeJira()
    jira.start()
    worker = module_process(
        "worker-jira", ["services.workers", "jira"], tmp_path, service_env(NATS_URL=cluster.urls[0], **jira_env(jira))
    )
    try:
        await started_without_a_leader(cluster, worker, "the worker")

        async def past_its_bucket() -> bool:
            assert worker.alive(), worker.output()[-3000:]
            return "consumer not found yet" in worker.output()  # its bucket is open; it waits for the event handler

        await eventually(past_its_bucket, timeout=90, interval=0.5, what="the worker to open its bucket")
    finally:
        worker.stop()
        jira.stop()
        await asyncio.to_thread(cluster.stop)
