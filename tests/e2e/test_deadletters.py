"""Dead letters end to end: a worker's permanent failure lands in DEADLETTERS, and a re-drive delivers it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client

from tests.e2e.test_admin import admin
from tests.fakes.zendesk import FakeZendesk
from tests.integration.workers.vendors import zendesk_env
from tests.support.polling import eventually
from tests.support.services import module_process, service_env
from tests.support.stack import Stack, wait_for_empty_outbox


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_permanent_failure_is_dead_lettered_and_redriven(stack: Stack, tmp_path: Path, js_client: Client) -> None:
    zendesk = FakeZendesk()
    zendesk.start()
    # Every ticket create is refused as invalid (a permanent 4xx) until the test stops it.
    zendesk.fail_next(1000, 422, {"error": "RecordInvalid"}, method="POST", path=r"^/api/v2/tickets\.json$")
    stack.start_eventhandler()
    api = stack.start_api()
    worker = module_process(
        "worker-zendesk",
        ["services.workers", "zendesk"],
        tmp_path,
        service_env(NATS_URL=stack.nats.url, WORKER_CREATE_GRACE_SECONDS="0", **zendesk_env(zendesk)),
    ).start()
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
            incident_id = int((await http.post("/incident/", json={"message": "disk full"})).json()["ID"])
        await wait_for_empty_outbox(stack.database_url)

        async def dead_lettered() -> bool:
            listing = admin(stack, "deadletters", "--worker", "zendesk")
            return "terminated" in listing.stdout and "incident.created" in listing.stdout

        await eventually(dead_lettered, timeout=60, interval=0.5, what="the failed event in DEADLETTERS")
        listing = admin(stack, "deadletters").stdout
        assert f"incident={incident_id}" in listing
        assert "RecordInvalid" in listing or "422" in listing
        assert zendesk.for_incident(incident_id) == []

        zendesk.clear_faults()  # the outside system is fixed
        redrive = admin(stack, "redrive", "--worker", "zendesk")
        assert redrive.returncode == 0, redrive.stderr
        assert "re-drove 1 dead letters" in redrive.stdout

        async def delivered() -> bool:
            return len(zendesk.for_incident(incident_id)) == 1

        await eventually(delivered, timeout=60, interval=0.5, what="the re-driven event to create the ticket")
        assert "no dead letters" in admin(stack, "deadletters").stdout
    finally:
        worker.stop()
        zendesk.stop()
