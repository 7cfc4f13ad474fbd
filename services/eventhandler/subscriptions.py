"""Which event types each worker receives: the initial file, and get/set on the workers' durable consumers.

A worker's subscriptions are its consumer's filter subjects. Setting them without a start updates the
consumer in place (its position and pending acks are kept). Setting them with a start deletes and
recreates the consumer from that point: "now" skips everything stored, "all" replays the whole stream,
and a time replays from then, so a worker can be re-fed history it missed.
"""

from __future__ import annotations

import dataclasses
import tomllib
from datetime import datetime
from pathlib import Path

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError, NotFoundError

from services.eventhandler.errors import NotFoundError as UnknownWorker
from services.eventhandler.errors import RequestError
from services.eventhandler.streams import CONSUMER_ALREADY_EXISTS, consumer_config, put_consumer
from shared.config import ConfigError
from shared.events import ALL_SUBJECTS, STREAM, SUBJECT_PREFIX
from shared.jetstream import WORKER_NAME, subscriptions_from_filters, worker_filter_subjects

CONSUMERS_PAGE = 256  # the server's page size for consumer lists


def event_subject(name: str) -> str:
    """`incident.created` (or just `created`, as the subscriptions file writes it) to its subject."""
    subject = name if name.startswith(SUBJECT_PREFIX) else SUBJECT_PREFIX + name
    if subject not in ALL_SUBJECTS:
        raise RequestError(f"unknown event type: {name}")
    return subject


def check_worker(name: str) -> str:
    if not WORKER_NAME.match(name):
        raise RequestError(f"bad worker name: {name!r} (a lower-case letter, then up to 31 of a-z, 0-9, '-' and '_')")
    return name


def parse_start(start: str | None) -> tuple[DeliverPolicy, datetime | None] | None:
    if start is None:
        return None
    if start == "now":
        return DeliverPolicy.NEW, None
    if start == "all":
        return DeliverPolicy.ALL, None
    try:
        when = datetime.fromisoformat(start)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise RequestError(f'start must be null, "now", "all" or an RFC 3339 time with a zone, got {start!r}')
    return DeliverPolicy.BY_START_TIME, when


def load_subscriptions(path: Path) -> dict[str, list[str]]:
    """Read `[workers.<name>] events = [...]`; a bad file stops the service at boot."""
    try:
        workers = tomllib.loads(path.read_text())["workers"]
        return {
            check_worker(worker): sorted({event_subject(e) for e in table["events"]})
            for worker, table in workers.items()
        }
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, AttributeError, RequestError) as exc:
        raise ConfigError(f"SUBSCRIPTIONS_FILE {str(path)!r}: {exc!r}") from exc


def consumer_subscriptions(config: ConsumerConfig) -> list[str]:
    if config.filter_subjects:
        return subscriptions_from_filters(config.filter_subjects)
    if config.filter_subject:
        return subscriptions_from_filters([config.filter_subject])
    return sorted(ALL_SUBJECTS)  # no filter: the consumer sees every event


class Subscriptions:
    """Known workers are those of the subscriptions file and those that have a consumer; no others.

    A consumer for a name no worker reads would pile up events forever, so setting one is a 404.
    """

    def __init__(self, nc: Client, js: JetStreamContext, file_workers: list[str]) -> None:
        self._nc = nc
        self._js = js
        self._file_workers = file_workers

    async def get_all(self) -> dict[str, list[str]]:
        """Every known worker's subscriptions; a file worker without a consumer (yet) receives nothing."""
        result: dict[str, list[str]] = {worker: [] for worker in self._file_workers}
        offset = 0
        while True:
            page = await self._js.consumers_info(STREAM, offset=offset)
            for info in page:
                if info.config.durable_name:
                    result[info.config.durable_name] = consumer_subscriptions(info.config)
            if len(page) < CONSUMERS_PAGE:
                return dict(sorted(result.items()))
            offset += len(page)

    async def set(self, worker: str, events: list[str], start: str | None) -> list[str]:
        check_worker(worker)
        known = await self.get_all()
        if worker not in known:
            raise UnknownWorker(f"unknown worker: {worker!r} (known workers: {', '.join(known) or 'none'})")
        subjects = sorted({event_subject(e) for e in events})
        position = parse_start(start)
        if position is None:
            await self._update_or_create(worker, subjects)
        else:
            await self._recreate(worker, subjects, *position)
        return subjects

    async def _update_or_create(self, worker: str, subjects: list[str]) -> None:
        for attempt in range(2):  # a replica may create the consumer between our lookup and our create
            try:
                info = await self._js.consumer_info(STREAM, worker)
            except NotFoundError:
                try:
                    await put_consumer(self._nc, consumer_config(worker, subjects), "create")
                except BadRequestError as exc:
                    if exc.err_code != CONSUMER_ALREADY_EXISTS or attempt:
                        raise
                    continue
                return
            updated = dataclasses.replace(
                info.config, filter_subject=None, filter_subjects=worker_filter_subjects(subjects)
            )
            await put_consumer(self._nc, updated, "update")
            return

    async def _recreate(self, worker: str, subjects: list[str], deliver: DeliverPolicy, start: datetime | None) -> None:
        try:
            await self._js.delete_consumer(STREAM, worker)
        except NotFoundError:
            pass
        await put_consumer(self._nc, consumer_config(worker, subjects, deliver, start), "create")
