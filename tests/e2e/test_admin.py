"""The admin CLI against a real stack: tail, subscriptions, lag, dead letters, replay."""

from __future__ import annotations

import subprocess
import sys

import pytest
from nats.aio.client import Client

from shared.events import REDRIVE_HEADER, STREAM, decode_event
from tests.support.stack import Stack, wait_for_empty_outbox


def admin(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"NATS_URL": stack.nats.url, "DATABASE_URL": stack.database_url, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "services.admin", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_admin_commands(stack: Stack, js_client: Client) -> None:
    async with stack.client() as http:
        incident_id = (await http.post("/incident/", json={"message": "cache cold"})).json()["ID"]
        await http.post(f"/incident/{incident_id}/comments", json={"comment": "warming"})
        await http.post(f"/incident/{incident_id}/resolve")
    await wait_for_empty_outbox(stack.database_url)

    tail = admin(stack, "tail", "--all", "--limit", "3", "--idle-exit", "5")
    assert tail.returncode == 0, tail.stderr
    lines = tail.stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["incident.created", "incident.commented", "incident.resolved"]
    assert "comment='warming'" in lines[1]

    subs = admin(stack, "subscriptions")
    assert subs.returncode == 0, subs.stderr
    assert any(line.startswith("jira") and "incident.created" in line for line in subs.stdout.splitlines())

    lag = admin(stack, "lag")
    assert lag.returncode == 0, lag.stderr
    jira_row = next(line.split() for line in lag.stdout.splitlines() if line.startswith("jira"))
    assert jira_row[1] == "3"  # no jira worker runs here: all three events are pending for it

    dead = admin(stack, "deadletters")
    assert dead.returncode == 0 and "no dead letters" in dead.stdout

    js = js_client.jetstream()
    before = (await js.stream_info(STREAM)).state.last_seq
    replay = admin(stack, "replay", str(incident_id), "zendesk")
    assert replay.returncode == 0, replay.stderr
    assert "replayed 3 events to zendesk" in replay.stdout
    replayed = [await js.get_msg(STREAM, seq) for seq in range(before + 1, before + 4)]
    assert [decode_event(m.data or b"").incidentversion for m in replayed] == [1, 2, 3]
    assert all((m.headers or {}).get(REDRIVE_HEADER) == "zendesk" for m in replayed)
