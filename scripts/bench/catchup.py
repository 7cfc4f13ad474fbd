"""Is the pipeline caught up? Every incident's event stored, and every worker's consumer drained and acked."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass

import asyncmy
import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from shared.events import STREAM
from tests.support.mariadb import PASSWORD, USER, MariaDB

POLL_INTERVAL = 0.01


@dataclass
class Backlog:
    incidents: int
    """Incidents committed in the database."""
    outbox: int
    """Outbox rows not yet stored on JetStream."""
    stream_messages: int
    consumers: dict[str, dict[str, int]]
    """Per worker: num_pending (not yet delivered) and num_ack_pending (delivered, not acked)."""

    @property
    def drained(self) -> bool:
        return (
            self.outbox == 0
            and self.stream_messages >= self.incidents
            and all(c["num_pending"] == 0 and c["num_ack_pending"] == 0 for c in self.consumers.values())
        )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Probe:
    """Reads the backlog from MariaDB and JetStream (consumer_info), from the benchmark process."""

    def __init__(self, mariadb: MariaDB, database: str, nats_url: str, workers: tuple[str, ...]) -> None:
        self.mariadb = mariadb
        self.database = database
        self.nats_url = nats_url
        self.workers = workers
        self._conn: asyncmy.Connection | None = None
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None

    async def open(self) -> Probe:
        self._conn = await asyncmy.connect(
            host="127.0.0.1", port=self.mariadb.port, user=USER, password=PASSWORD, db=self.database, autocommit=True
        )
        self._nc = await nats.connect(self.nats_url)
        self._js = self._nc.jetstream()
        return self

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.ensure_closed()
        if self._nc is not None:
            await self._nc.close()

    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None
        return self._js

    async def backlog(self) -> Backlog:
        assert self._conn is not None
        async with self._conn.cursor() as cur:
            await cur.execute("SELECT (SELECT COUNT(*) FROM incidents), (SELECT COUNT(*) FROM outbox)")
            row = await cur.fetchone()
        stream = await self.js.stream_info(STREAM)
        infos = await asyncio.gather(*(self.js.consumer_info(STREAM, name) for name in self.workers))
        consumers = {
            name: {"num_pending": int(info.num_pending or 0), "num_ack_pending": int(info.num_ack_pending or 0)}
            for name, info in zip(self.workers, infos, strict=True)
        }
        return Backlog(int(row[0]), int(row[1]), int(stream.state.messages), consumers)

    async def incident_ids(self, message: str) -> tuple[int, int]:
        """The lowest and highest id of the incidents opened with `message`."""
        assert self._conn is not None
        async with self._conn.cursor() as cur:
            await cur.execute("SELECT MIN(id), MAX(id) FROM incidents WHERE message = %s", (message,))
            row = await cur.fetchone()
        return int(row[0]), int(row[1])

    async def rows(self, sql: str) -> list[tuple[object, ...]]:
        """Any read of the benchmark's database (a fixed statement of the benchmark's own)."""
        assert self._conn is not None
        async with self._conn.cursor() as cur:
            await cur.execute(sql)
            return list(await cur.fetchall())

    async def wait_drained(self, since: float, timeout: float) -> CatchUp:
        """Poll until drained; `since` is the load's end (time.time()). Returns the catch-up time."""
        first = await self.backlog()
        polls = 1
        current = first
        deadline = time.monotonic() + timeout
        while not current.drained:
            if time.monotonic() > deadline:
                return CatchUp(None, first, current, polls, timeout)
            await asyncio.sleep(POLL_INTERVAL)
            current = await self.backlog()
            polls += 1
        return CatchUp(round(time.time() - since, 3), first, current, polls, timeout)


@dataclass
class CatchUp:
    seconds: float | None
    """From the last response to drained; None when it did not drain within the timeout."""
    at_load_end: Backlog
    final: Backlog
    polls: int
    timeout_s: float

    def as_dict(self) -> dict[str, object]:
        return {
            "seconds": self.seconds,
            "at_load_end": self.at_load_end.as_dict(),
            "final": self.final.as_dict(),
            "polls": self.polls,
            "timeout_s": self.timeout_s,
            "method": "poll every 10 ms: outbox empty, stream holds every incident's event, and "
            "consumer_info num_pending == 0 and num_ack_pending == 0 for each worker",
        }
