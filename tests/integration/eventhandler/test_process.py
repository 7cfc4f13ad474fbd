"""`python -m services.eventhandler` as a process: readiness, metrics, SIGTERM, bad settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from nats.aio.client import Client

from shared.events import encode_event
from shared.jetstream import PUBLISH_SUBJECT
from tests.integration.eventhandler.support import call, publish_body
from tests.support.metrics import sample
from tests.support.polling import eventually_sync
from tests.support.processes import ROOT, NatsServer, free_port
from tests.support.services import module_process, service_env
from tests.unit.eventhandler.factory import make_event


def status(url: str) -> int:
    try:
        return httpx.get(url, timeout=1).status_code
    except httpx.HTTPError:
        return 0


async def test_the_process_serves_reports_and_stops_on_sigterm(
    nats_server: NatsServer, nc: Client, tmp_path: Path
) -> None:
    port = free_port()
    env = service_env(NATS_URL=nats_server.url, HEALTH_PORT=str(port), LOG_LEVEL="debug")
    process = module_process("eventhandler", ["services.eventhandler"], tmp_path, env).start()
    base = f"http://127.0.0.1:{port}"
    try:
        eventually_sync(lambda: status(f"{base}/health/ready") == 200, timeout=20, what="readiness")
        event = make_event(1)
        reply = await call(nc, PUBLISH_SUBJECT, publish_body([encode_event(event)]))
        assert reply["stored"] == [event.id]
        metrics = httpx.get(f"{base}/metrics", timeout=2).text
        assert sample(metrics, "incidents_eventhandler_events_published_total", type="incident.created") == 1
        assert sample(metrics, "incidents_eventhandler_requests_total", endpoint="publish", code="200") == 1
    finally:
        code = process.stop(timeout=10)
    assert code == 0, process.output()[-3000:]
    assert '"eventhandler stopping"' in process.output()


async def test_sigterm_while_nats_is_down_still_exits(nats_server: NatsServer, tmp_path: Path) -> None:
    port = free_port()
    env = service_env(NATS_URL=nats_server.url, HEALTH_PORT=str(port))
    process = module_process("eventhandler", ["services.eventhandler"], tmp_path, env).start()
    base = f"http://127.0.0.1:{port}"
    eventually_sync(lambda: status(f"{base}/health/ready") == 200, timeout=20, what="readiness")

    nats_server.stop()

    eventually_sync(lambda: status(f"{base}/health/ready") == 503, timeout=10, what="not ready")
    assert status(f"{base}/health/live") == 200
    assert process.stop(timeout=10) == 0, process.output()[-3000:]


def test_bad_settings_stop_it_at_boot() -> None:
    env = service_env(NATS_URL="nats://127.0.0.1:1", STREAM_REPLICAS="zero")
    done = subprocess.run(
        [sys.executable, "-m", "services.eventhandler"], env=env, cwd=ROOT, capture_output=True, timeout=30
    )
    assert done.returncode == 1
    assert b"STREAM_REPLICAS must be an integer" in done.stderr


def test_sigterm_while_waiting_for_nats_exits(tmp_path: Path) -> None:
    env = service_env(NATS_URL=f"nats://127.0.0.1:{free_port()}")
    process = module_process("eventhandler", ["services.eventhandler"], tmp_path, env).start()
    eventually_sync(lambda: "nats error" in process.output(), timeout=20, what="a connect attempt")
    assert process.stop(timeout=10) == 0, process.output()[-3000:]
    assert "stopped before it had started" in process.output()


def test_a_bad_subscriptions_file_stops_it_at_boot(tmp_path: Path) -> None:
    subscriptions = tmp_path / "subscriptions.toml"
    subscriptions.write_text("[workers.jira]\nevents = ['created', 'exploded']\n")
    env = service_env(NATS_URL=f"nats://127.0.0.1:{free_port()}", SUBSCRIPTIONS_FILE=str(subscriptions))
    done = subprocess.run(
        [sys.executable, "-m", "services.eventhandler"], env=env, cwd=ROOT, capture_output=True, timeout=30
    )
    assert done.returncode == 1
    assert b"unknown event type: exploded" in done.stderr
