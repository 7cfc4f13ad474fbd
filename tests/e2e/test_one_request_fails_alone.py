"""One request's too-large value never fails the requests committed beside it: the API as a process on MariaDB,
an Events v2 trigger with about 130 KB of labels sent at once with 40 ordinary creates."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.database import migrated_database
from tests.support.mariadb import MariaDB
from tests.support.processes import NatsServer
from tests.support.services import ApiProcess

ROUTING_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


@pytest.fixture
def api(tmp_path: Path, mariadb: MariaDB, nats_server: NatsServer) -> Iterator[ApiProcess]:
    url = migrated_database(mariadb)
    process = ApiProcess(tmp_path, url, nats_server.url, {"INTEGRATION_KEYS": f"monitoring:{ROUTING_KEY}"}).start()
    yield process
    process.stop()


async def test_a_trigger_with_130_kb_of_labels_beside_40_creates(api: ApiProcess) -> None:
    details = {f"k{i}": "é" * 1024 for i in range(64)}  # 64 labels of 2,048 bytes: twice what a TEXT column holds
    big = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "wide",
        "payload": {"summary": "wide", "source": "monitor", "severity": "error", "custom_details": details},
    }
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=api.url, timeout=30, limits=limits) as http:
        sends: list[Any] = [http.post("/incident/", json={"message": f"ordinary-{n}"}) for n in range(40)]
        sends.insert(20, http.post("/v2/enqueue", json=big))
        answers = await asyncio.gather(*sends)
        wide, ordinary = answers.pop(20), answers
        assert [a.status_code for a in ordinary] == [200] * 40, [a.text for a in ordinary if a.status_code != 200]
        assert wide.status_code == 202, wide.text  # stored whole (MEDIUMTEXT); a 4xx would do, never a 5xx
        listed = (await http.get("/incident/", params={"limit": 200})).json()["items"]
        counts = Counter(item["message"] for item in listed)
        assert all(counts[f"ordinary-{n}"] == 1 for n in range(40)), counts
        [stored] = [item for item in listed if item["message"] == "wide"]
        assert stored["labels"] == {f"details.{key}": value for key, value in details.items()}
