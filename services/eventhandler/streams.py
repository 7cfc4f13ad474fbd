"""Create or update the INCIDENTS, DEADLETTERS and DEADLETTER_ADVISORIES streams, and create the workers'
durable consumers.

A worker's consumer is created from the subscriptions file only when it does not exist yet. When it
exists, its current filter subjects win, so a change made at run time (`PUT /subscriptions/{worker}`)
survives restarts; delete the consumer to go back to the file. Creation uses the JetStream "create"
action, so several event handler replicas starting at once can't overwrite each other's consumers.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import APIError, BadRequestError, BucketNotFoundError, NotFoundError

from shared.events import STREAM
from shared.jetstream import (
    ADVISORY_STREAM,
    UNLIMITED_DELIVERIES,
    advisory_consumer_config,
    advisory_stream_config,
    deadletter_stream_config,
    incidents_stream_config,
    refs_bucket,
    refs_bucket_config,
    worker_consumer_config,
)
from shared.webhooks import deliveries_stream_config, endpoints_bucket_config

log = structlog.get_logger(__name__)

STREAM_NAME_IN_USE = 10058
CONSUMER_ALREADY_EXISTS = 10148
API_TIMEOUT = 5.0


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        if exc.err_code != STREAM_NAME_IN_USE:
            raise
        await js.update_stream(config)
        log.info("stream updated", stream=config.name)


async def ensure_streams(js: JetStreamContext, replicas: int) -> None:
    await ensure_stream(js, incidents_stream_config(replicas))
    await ensure_stream(js, deadletter_stream_config(replicas))
    await ensure_stream(js, advisory_stream_config(replicas))
    await js.add_consumer(ADVISORY_STREAM, advisory_consumer_config())  # the same config: a no-op update


async def ensure_worker_buckets(js: JetStreamContext, workers: list[str], replicas: int) -> None:
    """Create each worker's KV bucket with the streams' replicas; a worker alone would create it with one."""
    for worker in workers:
        try:
            await js.key_value(refs_bucket(worker))
            continue
        except BucketNotFoundError:
            pass
        try:
            await js.create_key_value(refs_bucket_config(worker, replicas))
            log.info("worker bucket created", worker=worker, replicas=replicas)
        except BadRequestError as exc:
            if exc.err_code != STREAM_NAME_IN_USE:  # a worker or another replica made it first
                raise


async def ensure_webhook_objects(js: JetStreamContext, replicas: int) -> None:
    """Webhooks out: the endpoints bucket (written by the API) and the delivery log stream (by the worker)."""
    await ensure_stream(js, deliveries_stream_config(replicas))
    config = endpoints_bucket_config(replicas)
    try:
        await js.key_value(config.bucket)
        return
    except BucketNotFoundError:
        pass
    try:
        await js.create_key_value(config)
        log.info("webhook endpoints bucket created", bucket=config.bucket, replicas=replicas)
    except BadRequestError as exc:
        if exc.err_code != STREAM_NAME_IN_USE:
            raise


async def put_consumer(nc: Client, config: ConsumerConfig, action: str) -> dict[str, Any]:
    """Create ("create") or update ("update") a durable consumer on INCIDENTS, never both at once.

    nats-py's add_consumer sends no action, so it silently updates an existing consumer.
    """
    return await put_consumer_on(nc, STREAM, config, action)


async def put_consumer_on(nc: Client, stream: str, config: ConsumerConfig, action: str) -> dict[str, Any]:
    """put_consumer on any stream, for a durable or a named ephemeral consumer."""
    name = config.durable_name or config.name
    request = {"stream_name": stream, "config": config.as_dict(), "action": action}
    reply = await nc.request(
        f"$JS.API.CONSUMER.CREATE.{stream}.{name}", json.dumps(request).encode(), timeout=API_TIMEOUT
    )
    body: dict[str, Any] = json.loads(reply.data)
    if "error" in body:
        APIError.from_error(body["error"])
    return body


def consumer_config(
    worker: str,
    subjects: list[str],
    deliver: DeliverPolicy = DeliverPolicy.NEW,
    start: datetime | None = None,
) -> ConsumerConfig:
    return dataclasses.replace(worker_consumer_config(worker, subjects), deliver_policy=deliver, opt_start_time=start)


async def create_consumer_if_missing(nc: Client, js: JetStreamContext, worker: str, subjects: list[str]) -> bool:
    """Create the worker's consumer delivering new events only; False when it already existed."""
    try:
        await js.consumer_info(STREAM, worker)
    except NotFoundError:
        pass
    else:
        return False
    try:
        await put_consumer(nc, consumer_config(worker, subjects), "create")
    except BadRequestError as exc:
        if exc.err_code != CONSUMER_ALREADY_EXISTS:
            raise
        return False
    return True


async def lift_delivery_limit(nc: Client, js: JetStreamContext, worker: str) -> bool:
    """Let an existing consumer redeliver without a count limit (older versions capped it at 10), keeping
    its filter subjects and position: retries are bounded by time in the worker. True when it was changed."""
    info = await js.consumer_info(STREAM, worker)
    if info.config.max_deliver == UNLIMITED_DELIVERIES:
        return False
    await put_consumer(nc, dataclasses.replace(info.config, max_deliver=UNLIMITED_DELIVERIES), "update")
    log.info("consumer delivery limit lifted", worker=worker, was=info.config.max_deliver)
    return True


async def ensure_consumers(nc: Client, js: JetStreamContext, subscriptions: dict[str, list[str]]) -> None:
    for worker, subjects in sorted(subscriptions.items()):
        if await create_consumer_if_missing(nc, js, worker, subjects):
            log.info("consumer created", worker=worker, events=subjects)
        else:
            log.info("consumer exists, keeping its filter subjects", worker=worker)
            await lift_delivery_limit(nc, js, worker)
