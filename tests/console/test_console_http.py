"""The console over plain HTTP: public page with a strict policy, an authenticated stream that resumes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import nats
import pytest

from services.api.console.routes import CONTENT_TYPES
from shared.events import STREAM
from tests.console.support import TOKEN, ConsoleStack, create
from tests.support.polling import eventually
from tests.support.processes import ROOT, free_port
from tests.support.services import ApiProcess
from tests.support.stack import wait_for_empty_outbox

pytestmark = pytest.mark.slow  # end to end: real processes

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Sse:
    id: str | None
    event: str
    data: Any


async def sse(lines: AsyncIterator[str]) -> AsyncIterator[Sse]:
    fields: dict[str, list[str]] = {}
    async for line in lines:
        if line == "":
            if "data" in fields or "id" in fields:
                data = "\n".join(fields.get("data", []))
                yield Sse(fields.get("id", [None])[-1], fields.get("event", ["message"])[-1], json.loads(data))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))


@contextlib.asynccontextmanager
async def open_stream(api_url: str, last_event_id: str | None = None) -> AsyncIterator[AsyncIterator[Sse]]:
    headers = dict(AUTH, **({"Last-Event-ID": last_event_id} if last_event_id else {}))
    async with (
        httpx.AsyncClient(base_url=api_url, timeout=20) as client,
        client.stream("GET", "/incident/stream", headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield sse(response.aiter_lines())


async def read_events(api_url: str, count: int, last_event_id: str | None = None) -> list[Sse]:
    """Open the stream, return its first `count` messages (the `ready` one included), and hang up."""
    found: list[Sse] = []
    async with asyncio.timeout(20), open_stream(api_url, last_event_id) as messages:
        async for message in messages:
            found.append(message)
            if len(found) == count:
                break
    return found


async def test_the_console_is_public_and_sent_with_a_strict_policy(stack: ConsoleStack) -> None:
    static = ROOT / "services" / "api" / "console" / "static"
    assert set(CONTENT_TYPES) == {p.name for p in static.iterdir()}, "every file of the console is served"
    async with httpx.AsyncClient(base_url=stack.api.url) as client:
        for path in ("/ui", "/ui/", "/ui/config.json", *(f"/ui/{name}" for name in CONTENT_TYPES)):
            response = await client.get(path)
            assert response.status_code == 200, path
            policy = response.headers["content-security-policy"]
            directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
            assert directives["script-src"] == "'self'", path
            assert directives["frame-ancestors"] == "'none'", path
            assert directives["default-src"] == "'none'", path
            assert "unsafe" not in policy, path
            assert response.headers["x-frame-options"] == "DENY", path
            assert response.headers["x-content-type-options"] == "nosniff", path
        assert (await client.get("/ui/config.json")).json() == {"auth": True}
        missing = await client.get("/ui/secrets.txt")
        assert missing.status_code == 404
        assert missing.headers["x-frame-options"] == "DENY"
        page = (await client.get("/ui/")).text
        assert (await client.get("/ui/app.js")).headers["content-type"].startswith("text/javascript")
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert scripts and all(re.search(r'\bsrc="/ui/[a-z]+\.js"', tag) for tag in scripts), "no inline scripts"
    assert not re.search(r"\son[a-z]+=", page), "no inline event handlers"
    assert " style=" not in page and "<style" not in page, "no inline styles"
    assert "http://" not in page and "https://" not in page, "nothing fetched from another origin"


async def test_the_api_and_the_stream_still_need_a_token(stack: ConsoleStack) -> None:
    async with httpx.AsyncClient(base_url=stack.api.url, timeout=10) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            stream = await client.get("/incident/stream", headers=headers)
            assert stream.status_code == 401
            assert stream.json() == {"status": "Unauthorized", "error": "missing or invalid bearer token"}
            assert (await client.get("/incident/", headers=headers)).status_code == 401


async def test_the_stream_sends_each_change_and_resumes_after_last_event_id(stack: ConsoleStack) -> None:
    async with asyncio.timeout(20), open_stream(stack.api.url) as messages, stack.client() as client:
        ready = await anext(messages)
        assert ready.event == "ready" and ready.data == {"reset": False}
        first = await create(client, "first, seen live")
        created = await anext(messages)
        assert created.event == "incident"
        assert created.data["type"] == "incident.created"
        assert created.data["data"]["incident"]["id"] == first
        assert int(created.id or 0) > int(ready.id or 0)

    async with stack.client() as client:
        missed = [await create(client, "missed one"), await create(client, "missed two")]
        assert (await client.post(f"/incident/{missed[0]}/acknowledge")).status_code == 200

    resumed = await read_events(stack.api.url, 4, last_event_id=created.id)
    assert resumed[0].event == "ready" and resumed[0].data == {"reset": False}
    assert resumed[0].id == created.id
    caught_up = [(m.data["type"], m.data["data"]["incident"]["id"]) for m in resumed[1:]]
    assert caught_up == [
        ("incident.created", missed[0]),
        ("incident.created", missed[1]),
        ("incident.acknowledged", missed[0]),
    ]
    sequences = [int(m.id or 0) for m in resumed[1:]]
    assert sequences == sorted(sequences) and sequences[0] == int(created.id or 0) + 1


async def test_a_stream_resumed_too_far_behind_asks_for_a_reload(stack: ConsoleStack) -> None:
    limited = ApiProcess(
        stack.workdir, stack.database_url, stack.nats.url, {**stack.env, "STREAM_CATCHUP_MAX_EVENTS": "1"}
    )
    limited.start()
    try:
        async with stack.client() as client:
            for message in ("behind one", "behind two", "behind three"):
                await create(client, message)
        await wait_for_empty_outbox(stack.database_url)  # every event is in the stream: its last sequence holds
        (latest,) = await read_events(limited.url, 1)
        last_seq = int(latest.id or 0)
        (far,) = await read_events(limited.url, 1, last_event_id=str(last_seq - 2))
        assert far.data == {"reset": True} and far.id == str(last_seq)
        (near,) = await read_events(limited.url, 1, last_event_id=str(last_seq - 1))
        assert near.data == {"reset": False} and near.id == str(last_seq - 1)
        (ahead,) = await read_events(limited.url, 1, last_event_id=str(last_seq + 100))
        assert ahead.data == {"reset": True}
    finally:
        limited.stop()


async def test_a_stopping_api_ends_its_streams_at_once(stack: ConsoleStack) -> None:
    """uvicorn waits for open responses when it stops; an open console must not hold a rollout up for 20 s."""
    api = stack.new_api()
    try:
        async with asyncio.timeout(30), open_stream(api.url) as messages:
            ready = await anext(messages)
            assert ready.event == "ready"
            started = time.monotonic()
            stopping = asyncio.create_task(asyncio.to_thread(api.process.stop))
            rest = [message async for message in messages]  # until the API closes the stream
            code = await stopping
        assert rest == []
        # uvicorn re-raises the SIGTERM it handled once it is done: -15 is its clean exit, -9 our kill.
        assert code in (0, -signal.SIGTERM), f"stopped cleanly, not killed after the grace period: {code}"
        assert time.monotonic() - started < 10
    finally:
        api.stop()


async def test_without_nats_the_stream_is_a_503_to_retry(stack: ConsoleStack) -> None:
    unreachable = f"nats://127.0.0.1:{free_port()}"
    api = ApiProcess(stack.workdir, stack.database_url, unreachable, stack.env).start()
    try:
        async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=10) as client:
            response = await client.get("/incident/stream")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["status"] == "Service Unavailable"
    finally:
        api.stop()


async def test_a_closed_stream_leaves_no_consumer_behind(stack: ConsoleStack) -> None:
    nc = await nats.connect(stack.nats.url)
    try:
        js = nc.jetstream()

        async def consumers() -> set[str]:
            return {info.name for info in await js.consumers_info(STREAM)}

        before = await consumers()  # may still hold the last test's streams, which are going away
        async with open_stream(stack.api.url) as first, open_stream(stack.api.url) as second:
            assert (await anext(first)).event == (await anext(second)).event == "ready"
            assert len(await consumers() - before) == 2
        for _ in range(3):  # hung up right after `ready`, and before reading anything
            async with open_stream(stack.api.url):
                pass

        async def released() -> bool:
            return await consumers() <= before

        # The API asks the event handler to delete each stream's consumer as the stream closes.
        await eventually(released, timeout=30, interval=0.5, what="the console's consumers to go away")
    finally:
        await nc.close()
