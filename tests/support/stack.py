"""The pipeline as real processes (nats-server, event handler, API) plus checks against the stream."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import sqlalchemy as sa
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from services.api.storage.db import Db
from services.api.storage.tables import incident_events, outbox
from shared.events import MSG_ID_HEADER, STREAM, CloudEvent, decode_event
from tests.support.polling import eventually
from tests.support.processes import NatsServer, Process
from tests.support.services import ApiProcess, module_process, service_env


@dataclass
class StoredEvent:
    seq: int
    subject: str
    msg_id: str | None
    headers: dict[str, str]
    event: CloudEvent


@dataclass
class Stack:
    workdir: Path
    nats: NatsServer
    database_url: str
    api: ApiProcess | None = None
    eventhandler: Process | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def start_eventhandler(self) -> Process:
        env = service_env(NATS_URL=self.nats.url, **self.extra_env)
        self.eventhandler = module_process("eventhandler", ["services.eventhandler"], self.workdir, env).start()
        return self.eventhandler

    def start_api(self, nats_url: str | None = None) -> ApiProcess:
        self.api = ApiProcess(self.workdir, self.database_url, nats_url or self.nats.url, self.extra_env).start()
        return self.api

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        """The event handler and the API started, and a client of the API once the event handler answers."""
        self.start_eventhandler()
        api = self.start_api()
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
            await wait_for_eventhandler(http)
            yield http

    def stop(self) -> None:
        for process in (self.api, self.eventhandler):
            if process is not None:
                process.stop()


async def stream_events(js: JetStreamContext, stream: str = STREAM) -> list[StoredEvent]:
    info = await js.stream_info(stream)
    found: list[StoredEvent] = []
    if info.state.messages == 0:
        return found
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except NotFoundError:
            continue
        headers = dict(msg.headers or {})
        found.append(
            StoredEvent(seq, msg.subject or "", headers.get(MSG_ID_HEADER), headers, decode_event(msg.data or b""))
        )
    return found


async def event_log(database_url: str) -> list[dict[str, Any]]:
    db = Db(database_url)
    await db.connect()
    try:
        rows = await db.database.fetch_all(
            sa.select(
                incident_events.c.event_id,
                incident_events.c.incident_id,
                incident_events.c.version,
                incident_events.c.type,
            ).order_by(incident_events.c.id)
        )
        return [dict(r._mapping) for r in rows]
    finally:
        await db.disconnect()


async def row_count(database_url: str, table: sa.Table) -> int:
    db = Db(database_url)
    await db.connect()
    try:
        return int(await db.database.fetch_val(sa.select(sa.func.count()).select_from(table)) or 0)
    finally:
        await db.disconnect()


async def outbox_size(database_url: str) -> int:
    return await row_count(database_url, outbox)


async def wait_for_empty_outbox(database_url: str, timeout: float = 60) -> None:
    async def empty() -> bool:
        return await outbox_size(database_url) == 0

    await eventually(empty, timeout=timeout, interval=0.2, what="the outbox to drain")


async def wait_for_eventhandler(http: Any, timeout: float = 20) -> None:
    """Until the API reaches the event handler (it answers `GET /subscriptions` through it)."""

    async def answers() -> bool:
        return bool((await http.get("/subscriptions")).status_code == 200)

    await eventually(answers, timeout=timeout, what="the event handler to answer")


async def assert_stream_matches_event_log(js: JetStreamContext, database_url: str) -> dict[str, int]:
    """Nothing lost, nothing published twice, per-incident order kept. Returns the counts."""
    logged = await event_log(database_url)
    stored = await stream_events(js)
    counts = collections.Counter(s.event.id for s in stored)
    duplicates = {k: v for k, v in counts.items() if v > 1}
    assert not duplicates, f"published twice: {list(duplicates)[:5]}"
    assert all(s.msg_id == s.event.id for s in stored), "Nats-Msg-Id must equal the event id"
    lost = {row["event_id"] for row in logged} - set(counts)
    assert not lost, f"{len(lost)} committed events never reached the stream"
    unknown = set(counts) - {row["event_id"] for row in logged}
    assert not unknown, f"stream holds events the database never committed: {list(unknown)[:5]}"
    per_incident: dict[int, list[int]] = collections.defaultdict(list)
    for s in stored:
        per_incident[s.event.incident_id].append(s.event.incidentversion)
    for incident_id, versions in per_incident.items():
        assert versions == list(range(1, len(versions) + 1)), f"incident {incident_id} out of order: {versions}"
    return {"events": len(stored), "incidents": len(per_incident)}


def envelope(raw: bytes) -> dict[str, Any]:
    return dict(msgspec.json.decode(raw))
