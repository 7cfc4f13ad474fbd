"""A flood of console streams against real processes: capped per token and in total, and nothing else suffers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats
import pytest

from shared.events import STREAM
from tests.console.support import ACTOR, TOKEN, ConsoleStack
from tests.support.database import migrate, sqlite_url
from tests.support.polling import eventually
from tests.support.processes import NatsServer, free_port
from tests.support.services import ApiProcess, module_process, service_env
from tests.support.stack import wait_for_empty_outbox

pytestmark = pytest.mark.slow  # end to end: real processes

PER_TOKEN = 25
TOTAL = 30
FLOOD = 300
OTHER_TOKEN = "secondT0kenForStreamCaps"


async def open_streams(client: httpx.AsyncClient, token: str, count: int) -> list[httpx.Response]:
    """`count` streams opened at once; each answer is kept open (its body unread) until closed."""

    async def one() -> httpx.Response:
        request = client.build_request("GET", "/incident/stream", headers={"Authorization": f"Bearer {token}"})
        return await client.send(request, stream=True)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def feed_consumers(nats_url: str) -> list[str]:
    nc = await nats.connect(nats_url)
    try:
        return [c.name for c in await nc.jetstream().consumers_info(STREAM) if c.name.startswith("feed-api-")]
    finally:
        await nc.close()


async def events(response: httpx.Response) -> AsyncIterator[dict[str, object]]:
    async for line in response.aiter_lines():
        if line.startswith("data: ") and line != 'data: {"reset":false}':
            yield json.loads(line.removeprefix("data: "))


async def test_300_streams_from_one_token_get_429_past_the_cap_while_writes_and_the_relay_go_on(
    stack: ConsoleStack,
) -> None:
    env = {
        "API_TOKENS": f"{ACTOR}:{TOKEN},other:{OTHER_TOKEN}",
        "STREAM_MAX_PER_TOKEN": str(PER_TOKEN),
        "STREAM_MAX": str(TOTAL),
    }
    api = ApiProcess(stack.workdir, stack.database_url, stack.nats.url, env).start()
    limits = httpx.Limits(max_connections=FLOOD + 50, max_keepalive_connections=0)
    writer = httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=60, limits=limits) as client:
            flood = await open_streams(client, TOKEN, FLOOD)
            accepted = [r for r in flood if r.status_code == 200]
            refused = [r for r in flood if r.status_code == 429]
            assert (len(accepted), len(refused)) == (PER_TOKEN, FLOOD - PER_TOKEN), [r.status_code for r in flood]
            for response in refused:
                assert int(response.headers["retry-after"]) >= 1
                body = json.loads(await response.aread())
                assert body["status"] == "Too Many Requests" and "STREAM_MAX_PER_TOKEN" in body["error"], body

            # Another token still gets streams, up to the total.
            others = await open_streams(client, OTHER_TOKEN, 10)
            assert [r.status_code for r in others].count(200) == TOTAL - PER_TOKEN
            over = [r for r in others if r.status_code == 429]
            assert len(over) == 10 - (TOTAL - PER_TOKEN) and "STREAM_MAX" in json.loads(await over[0].aread())["error"]

            async def one_consumer_per_open_stream() -> bool:  # each is made as its stream starts
                return len(await feed_consumers(stack.nats.url)) == TOTAL

            await eventually(one_consumer_per_open_stream, timeout=15, what="a consumer for each open stream")

            # Writes and the relay go on while the streams are open: each create reaches JetStream and a stream.
            watched = events(accepted[0])
            created = []
            for i in range(20):
                answer = await writer.post("/incident/", json={"message": f"during the flood {i}"})
                assert answer.status_code == 200, answer.text
                created.append(int(answer.json()["ID"]))
            await wait_for_empty_outbox(stack.database_url, timeout=30)
            seen: set[int] = set()
            async with asyncio.timeout(30):
                async for event in watched:
                    incident = event["data"]["incident"]  # type: ignore[index]
                    seen.add(int(incident["id"]))
                    if seen >= set(created):
                        break

            for response in flood + others:
                await response.aclose()

        async def no_feed_left() -> bool:
            return await feed_consumers(stack.nats.url) == []

        await eventually(no_feed_left, timeout=30, interval=0.5, what="every closed stream's consumer to go away")
        again = await open_streams(writer, TOKEN, 1)  # the slots are given back
        assert again[0].status_code == 200
        await again[0].aclose()
    finally:
        await writer.aclose()
        api.stop()


async def test_past_api_max_concurrency_uvicorn_answers_503(stack: ConsoleStack) -> None:
    env = {"API_TOKENS": f"{ACTOR}:{TOKEN}", "API_MAX_CONCURRENCY": "4", "STREAM_MAX_PER_TOKEN": "100"}
    api = ApiProcess(stack.workdir, stack.database_url, stack.nats.url, env).start()
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=0)
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=30, limits=limits) as client:
            # uvicorn counts the connection asking too: three held open leave no room under a limit of four.
            held = await open_streams(client, TOKEN, 3)
            assert [r.status_code for r in held] == [200] * 3
            assert (await client.get("/health/live")).status_code == 503
            await held[0].aclose()

            async def served_again() -> bool:
                return (await client.get("/health/live")).status_code == 200

            await eventually(served_again, timeout=10, what="a freed connection to be served")
            for response in held[1:]:
                await response.aclose()
    finally:
        api.stop()


async def test_console_streams_use_a_nats_connection_of_their_own(tmp_path: Path) -> None:
    """NATS may drop a connection whose reader lags (a replay of large events to slow browsers): never the relay's."""
    monitor = free_port()
    (tmp_path / "nats").mkdir()
    server = NatsServer(tmp_path / "nats", config=f"http: 127.0.0.1:{monitor}").start()
    url = sqlite_url(tmp_path)
    await asyncio.to_thread(migrate, url)
    eventhandler = module_process("eventhandler", ["services.eventhandler"], tmp_path, service_env(NATS_URL=server.url))
    eventhandler.start()
    api = ApiProcess(tmp_path, url, server.url, {"API_TOKENS": f"{ACTOR}:{TOKEN}"}).start()
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
            streams = await open_streams(client, TOKEN, 5)
            assert [r.status_code for r in streams] == [200] * 5
            connz = httpx.get(f"http://127.0.0.1:{monitor}/connz", params={"subs": "1"}, timeout=5).json()
            subjects = {c.get("name"): c.get("subscriptions_list", []) for c in connz["connections"]}
            feed_inboxes = [s for s in subjects["api-live"] if s.startswith("_INBOX_api.")]
            assert len(feed_inboxes) >= 5, subjects  # one per stream (plus its request inbox)
            assert len([s for s in subjects["api"] if s.startswith("_INBOX_api.")]) <= 1, subjects
            for response in streams:
                await response.aclose()
    finally:
        api.stop()
        eventhandler.stop()
        server.stop()
