"""Links to each incident's outside objects, read from the workers' key-value buckets."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
import structlog
from nats.errors import Error as NatsError
from nats.js.kv import KeyValue

from services.api.delivery.eventhandler_client import NatsLink
from services.api.incidents.schemas import Link
from shared.jetstream import ref_key, refs_bucket
from shared.records import decode_record

log = structlog.get_logger(__name__)
LOOKUP_TIMEOUT = 0.5


class LinkReader:
    def __init__(self, link: NatsLink, workers: tuple[str, ...]) -> None:
        self.link = link
        self.workers = workers
        self._buckets: dict[str, KeyValue] = {}

    async def links(self, incident_id: int) -> list[Link]:
        """Best effort: a link that can't be read now (NATS down, no bucket yet) is left out, not an error."""
        if not self.link.connected:
            return []
        found = await asyncio.gather(*(self._one(worker, incident_id) for worker in self.workers))
        return [link for link in found if link is not None]

    async def _one(self, worker: str, incident_id: int) -> Link | None:
        with contextlib.suppress(TimeoutError, NatsError, msgspec.DecodeError, msgspec.ValidationError):
            async with asyncio.timeout(LOOKUP_TIMEOUT):
                bucket = await self._bucket(worker)
                entry = await bucket.get(ref_key(incident_id))
                record = decode_record(entry.value or b"")
                if record.ref is None:
                    return None
                shown = record.ref.key or record.ref.id
                return Link(system=worker, id=shown, url=record.ref.url)
        return None

    async def _bucket(self, worker: str) -> KeyValue:
        bucket = self._buckets.get(worker)
        if bucket is None:
            assert self.link.nc is not None
            bucket = await self.link.nc.jetstream().key_value(refs_bucket(worker))
            self._buckets[worker] = bucket
        return bucket
