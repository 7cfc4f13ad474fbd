"""The services started exactly as the manifests say, against NATS with the deployed permissions and MariaDB.

Each container's command and env come from the rendered manifests (launch_spec); what differs is
only what one machine forces: service hostnames and ports map to loopback, STREAM_REPLICAS is 1 on
a single NATS server, the vendors are the fake servers, and the Secret is the example one with the
test MariaDB's password.
"""

from __future__ import annotations

import copy
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.deploy.manifests import LaunchSpec, Obj, example_secrets, launch_spec, render
from tests.deploy.natsconf import start_deployed_nats
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.fakes.zendesk import FakeZendesk
from tests.support import mariadb as mariadb_support
from tests.support.mariadb import MariaDB
from tests.support.polling import eventually
from tests.support.processes import ROOT, Process, answers_ok, free_port

WORKERS = ("jira", "slack", "zendesk")


@dataclass
class Fakes:
    jira: FakeJira
    slack: FakeSlack
    zendesk: FakeZendesk


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    started = Fakes(FakeJira(), FakeSlack(), FakeZendesk())
    for fake in (started.jira, started.slack, started.zendesk):
        fake.start()
    try:
        yield started
    finally:
        for fake in (started.jira, started.slack, started.zendesk):
            fake.stop()


def vendor_settings(fakes: Fakes) -> tuple[dict[str, str], dict[str, str]]:
    """(ConfigMap values, Secret values) that point the workers at the fakes."""
    config = {
        "JIRA_BASE_URL": fakes.jira.url,
        "JIRA_EMAIL": fakes.jira.email,
        "JIRA_PROJECT_KEY": fakes.jira.project,
        "SLACK_API_URL": fakes.slack.url,
        "SLACK_CHANNEL": fakes.slack.channel,
        "ZENDESK_BASE_URL": fakes.zendesk.url,
        "ZENDESK_EMAIL": fakes.zendesk.email,
    }
    secrets = {
        "jira-api-token": fakes.jira.token,
        "slack-bot-token": fakes.slack.token,
        "zendesk-api-token": fakes.zendesk.token,
    }
    return config, secrets


def api_token(secrets: dict[str, dict[str, str]]) -> str:
    first = secrets["incidents-secrets"]["api-tokens"].split(",")[0]
    return first.split(":", 1)[-1]


async def ready(spec: LaunchSpec, process: Process) -> None:
    async def answers() -> bool:
        assert process.alive(), f"{spec.name} exited:\n{process.output()[-3000:]}"
        return await answers_ok(spec.url("readiness"))

    await eventually(answers, timeout=45, interval=0.2, what=f"{spec.name} to be ready")


async def test_services_run_from_the_manifests(
    tmp_path: Path, mariadb: MariaDB, fakes: Fakes, receiver: WebhookReceiver
) -> None:
    objects: list[Obj] = render()
    secrets = copy.deepcopy(example_secrets())
    config, vendor_secrets = vendor_settings(fakes)
    secrets["incidents-secrets"].update(vendor_secrets, **{"mariadb-password": mariadb_support.PASSWORD})
    nats = start_deployed_nats(objects, tmp_path / "nats", secrets)
    processes: list[Process] = []
    try:
        hosts = {f"nats-{i}.nats-headless:4222": f"127.0.0.1:{nats.port}" for i in range(3)}
        hosts["mysql:3306"] = f"127.0.0.1:{mariadb.port}"
        mariadb.sql(
            "DROP DATABASE IF EXISTS incidents; CREATE DATABASE incidents CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;"
        )

        def spec(name: str, **overrides: str) -> LaunchSpec:
            launched = launch_spec(
                objects,
                name,
                secrets,
                hosts=hosts,
                ports={8000: free_port(), 8080: free_port()},
                config_overrides={"incidents-config": config},
                env_overrides=overrides,
            )
            assert launched.cwd == ROOT
            return launched

        migrate = spec("incidents-migrate")
        assert migrate.env["DATABASE_URL"].startswith(f"mysql+asyncmy://{mariadb_support.USER}:")
        result = subprocess.run(
            migrate.argv, env=migrate.env, cwd=migrate.cwd, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr

        # One NATS server: the streams can't be R3 here.
        specs = [spec("incidents-eventhandler", STREAM_REPLICAS="1")]
        specs += [spec(f"incidents-worker-{worker}") for worker in WORKERS]
        # The receiver listens on loopback, which the manifests (rightly) refuse.
        loopback = {"WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}
        specs.append(spec("incidents-worker-webhooks", **loopback))
        specs.append(spec("incidents-api", **loopback))
        for launched in specs:
            processes.append(Process(launched.name, launched.argv, launched.env, tmp_path / f"{launched.name}.log"))
            processes[-1].start()
        for launched, process in zip(specs, processes, strict=True):
            await ready(launched, process)

        api = specs[-1]
        base = f"http://127.0.0.1:{api.ports['http']}"
        headers = {"Authorization": f"Bearer {api_token(secrets)}"}
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.post(f"{base}/incident/", json={"message": "disk full"})).status_code == 401
            hook = {"url": receiver.hook_url, "events": ["incident.created"]}
            registered = await client.post(f"{base}/webhooks", json=hook, headers=headers)
            assert registered.status_code == 201, registered.text
            receiver.trust(registered.json()["secret"])
            created = await client.post(f"{base}/incident/", json={"message": "disk full"}, headers=headers)
            assert created.status_code == 200, created.text
            incident_id = int(created.json()["ID"])

            async def synced() -> bool:
                fakes.jira.only(incident_id)
                fakes.slack.only(incident_id)
                fakes.zendesk.only(incident_id)
                assert [r.event["subject"] for r in receiver.accepted()] == [str(incident_id)]
                assert receiver.accepted()[0].verified_by
                return True

            await eventually(synced, timeout=30, interval=0.2, what="every vendor to get the incident")
            for launched in specs:
                port = launched.ports["http" if launched is api else "health"]
                metrics = await client.get(f"http://127.0.0.1:{port}/metrics")
                assert metrics.status_code == 200 and metrics.text, launched.name
    finally:
        codes = {process.name: process.stop(timeout=30) for process in reversed(processes)}
        nats.stop()
    logs = {p.name: p.output() for p in processes}
    assert not [name for name, log in logs.items() if "Permissions Violation" in log], logs
    # Every service ends on SIGTERM well within its grace period (Process.stop would SIGKILL: -9).
    # uvicorn re-raises SIGTERM once its graceful shutdown is done: exit code 143 in Kubernetes.
    assert codes.pop("incidents-api") in (0, -signal.SIGTERM)
    assert all(code == 0 for code in codes.values()), f"graceful shutdown on SIGTERM: {codes}"
