"""Outages of the database: the API answers 503 fast with the contract's shape and recovers by itself."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.support.mariadb import MariaDB
from tests.support.polling import eventually
from tests.support.processes import NatsServer
from tests.support.services import ApiProcess


async def test_mariadb_down_gives_fast_503_and_recovery(
    tmp_path: Path, own_mariadb: MariaDB, own_database_url: str, nats_server: NatsServer
) -> None:
    url = own_database_url
    api = ApiProcess(tmp_path, url, nats_server.url).start()
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=15) as http:
            first = (await http.post("/incident/", json={"message": "before the outage"})).json()["ID"]
            own_mariadb.stop()

            started = time.monotonic()
            down = await http.post("/incident/", json={"message": "during the outage"})
            assert time.monotonic() - started < 6
            assert down.status_code == 503
            assert down.json() == {"status": "Service Unavailable", "error": "database unavailable, try again later"}
            read = await http.get(f"/incident/{first}")
            assert read.status_code == 503
            ready = await http.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"] == "unavailable"

            own_mariadb.restart()

            async def recovered() -> bool:
                response = await http.post("/incident/", json={"message": "after the outage"})
                return response.status_code == 200

            await eventually(recovered, timeout=60, interval=0.5, what="writes to work again")
            assert (await http.get(f"/incident/{first}")).json()["message"] == "before the outage"

            async def ready_again() -> bool:
                return (await http.get("/health/ready")).status_code == 200

            await eventually(ready_again, timeout=30, what="readiness")
    finally:
        api.stop()
