"""Where records and last errors live: the worker's JetStream KV bucket, or memory for a dry run."""

from __future__ import annotations

from typing import Protocol

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from shared.jetstream import error_key, ref_key, refs_bucket, refs_bucket_config
from shared.records import ErrorRecord, IncidentRecord, decode_record, encode_error, encode_record


class Conflict(Exception):
    """A compare-and-set write lost: someone wrote the key since we read it."""


class RecordStore(Protocol):
    async def load(self, incident_id: int) -> tuple[IncidentRecord | None, int]:
        """The record and its revision; (None, 0) when there is none."""
        ...

    async def save(self, record: IncidentRecord, revision: int) -> int:
        """Write if the key is still at `revision` (0: absent); the new revision, or Conflict."""
        ...

    async def put_error(self, stream_seq: int, error: ErrorRecord) -> None: ...

    async def clear_error(self, stream_seq: int) -> None: ...


class KvRecordStore:
    """Records under `ref_key(id)` and last errors under `error_key(seq)` in `refs-<worker>`."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def load(self, incident_id: int) -> tuple[IncidentRecord | None, int]:
        try:
            entry = await self.kv.get(ref_key(incident_id))
        except nats.js.errors.KeyNotFoundError:
            return None, 0
        if entry.value is None or entry.revision is None:
            return None, 0
        return decode_record(entry.value), entry.revision

    async def save(self, record: IncidentRecord, revision: int) -> int:
        key, value = ref_key(record.incident_id), encode_record(record)
        try:
            if revision == 0:
                return await self.kv.create(key, value)
            return await self.kv.update(key, value, last=revision)
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            raise Conflict(key) from exc

    async def put_error(self, stream_seq: int, error: ErrorRecord) -> None:
        await self.kv.put(error_key(stream_seq), encode_error(error))

    async def clear_error(self, stream_seq: int) -> None:
        await self.kv.purge(error_key(stream_seq))


async def open_bucket(js: JetStreamContext, worker: str) -> KeyValue:
    """Bind the worker's bucket; create it when missing (the event handler usually has, with replicas)."""
    try:
        return await js.key_value(refs_bucket(worker))
    except nats.js.errors.BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(refs_bucket_config(worker))
    except nats.js.errors.BadRequestError:
        # Created meanwhile by the event handler or another replica, maybe with other replicas.
        return await js.key_value(refs_bucket(worker))


class MemoryRecordStore:
    """Same semantics in a dict: a dry run must never leave made-up references in the real bucket."""

    def __init__(self) -> None:
        self.records: dict[int, tuple[IncidentRecord, int]] = {}
        self.errors: dict[int, ErrorRecord] = {}
        self._revision = 0

    async def load(self, incident_id: int) -> tuple[IncidentRecord | None, int]:
        record, revision = self.records.get(incident_id, (None, 0))
        return record, revision

    async def save(self, record: IncidentRecord, revision: int) -> int:
        _, current = self.records.get(record.incident_id, (None, 0))
        if current != revision:
            raise Conflict(str(record.incident_id))
        self._revision += 1
        self.records[record.incident_id] = (record, self._revision)
        return self._revision

    async def put_error(self, stream_seq: int, error: ErrorRecord) -> None:
        self.errors[stream_seq] = error

    async def clear_error(self, stream_seq: int) -> None:
        self.errors.pop(stream_seq, None)
