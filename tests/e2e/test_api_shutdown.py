"""SIGTERM on the API process: requests in flight are answered, new connections are refused, exit code 0."""

from __future__ import annotations

import asyncio
import os
import signal

import httpx

from services.api.storage.tables import incidents
from tests.support.polling import eventually
from tests.support.stack import Stack, row_count

CLIENTS = 32


async def test_sigterm_drains_in_flight_requests_refuses_new_ones_and_exits_0(stack: Stack) -> None:
    stack.start_eventhandler()
    api = stack.start_api()
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        answered: list[int] = []
        busy = asyncio.Event()

        async def client(n: int) -> None:
            """Creates one after another until the server goes away."""
            while True:
                try:
                    response = await http.post(f"{api.url}/incident/", json={"message": f"client {n}"})
                except httpx.TransportError:
                    return  # refused, or closed while idle after the signal: nothing of it was written
                answered.append(response.status_code)
                if len(answered) >= CLIENTS * 3:
                    busy.set()

        clients = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
        await asyncio.wait_for(busy.wait(), timeout=60)
        os.kill(api.process.pid, signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*clients), timeout=60)

        async def refused() -> bool:
            try:
                await http.get(f"{api.url}/health/live", timeout=2)
            except httpx.TransportError:
                return True
            return False

        await eventually(refused, timeout=30, what="new connections to be refused after SIGTERM")

    assert api.process.proc is not None
    assert await asyncio.to_thread(api.process.proc.wait, 30) == 0, api.process.output()[-3000:]
    assert set(answered) == {200}, answered  # an accepted request is answered, never cut off with a 5xx
    assert await row_count(stack.database_url, incidents) == len(answered)  # and each answer was a commit
