"""Run the event handler in-process against a real nats-server, and call its endpoints."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client

from services.eventhandler import Settings, run
from shared.natsconn import NatsSettings
from tests.support.processes import ROOT


class ServiceErrorReply(Exception):
    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


def settings_for(nats_url: str, subscriptions_file: Path | None = None) -> Settings:
    return Settings(
        nats=NatsSettings(servers=[nats_url]),
        subscriptions_file=subscriptions_file or ROOT / "config/subscriptions.toml",
    )


class InProcessEventHandler:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> InProcessEventHandler:
        self._stop = asyncio.Event()
        started = asyncio.Event()
        self._task = asyncio.create_task(run(self.settings, self._stop, started))
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({self._task, waiter}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            waiter.cancel()
            self._task.result()  # raises what stopped it
        assert started.is_set(), "the event handler did not start within 15 s"
        return self

    async def __aenter__(self) -> InProcessEventHandler:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 15)
            self._task = None


async def call_raw(nc: Client, subject: str, body: Any) -> bytes:
    payload = body if isinstance(body, bytes) else msgspec.json.encode(body)
    # Under a loaded CI machine the service's endpoints were seen to answer "no responders" right after it
    # had started (its subscriptions flushed): ask again until they answer, within a deadline.
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        try:
            reply = await nc.request(subject, payload, timeout=10)
            break
        except nats.errors.NoRespondersError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)
    headers = reply.headers or {}
    if "Nats-Service-Error-Code" in headers:
        raise ServiceErrorReply(headers["Nats-Service-Error-Code"], headers.get("Nats-Service-Error", ""))
    return reply.data


async def call(nc: Client, subject: str, body: Any) -> Any:
    return msgspec.json.decode(await call_raw(nc, subject, body))


def publish_body(events: list[bytes]) -> bytes:
    return b'{"events":[' + b",".join(events) + b"]}"
