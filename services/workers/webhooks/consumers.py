"""Each enabled endpoint's durable consumer on INCIDENTS: created when first seen, kept in step, deleted with it."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from nats.js.errors import APIError, BadRequestError, NotFoundError

from shared.events import STREAM
from shared.webhooks import Endpoint, consumer_name, endpoint_consumer_config

CONSUMER_ALREADY_EXISTS = 10148
API_TIMEOUT = 5.0


async def put_consumer(nc: Client, config: ConsumerConfig, action: str) -> dict[str, Any]:
    """Create ("create") or update ("update") a consumer on INCIDENTS; nats-py's add_consumer does either."""
    request = {"stream_name": STREAM, "config": config.as_dict(), "action": action}
    reply = await nc.request(
        f"$JS.API.CONSUMER.CREATE.{STREAM}.{config.durable_name}", json.dumps(request).encode(), timeout=API_TIMEOUT
    )
    body: dict[str, Any] = json.loads(reply.data)
    if "error" in body:
        APIError.from_error(body["error"])
    return body


async def ensure_consumer(nc: Client, js: JetStreamContext, endpoint: Endpoint, ack_wait: float) -> None:
    """The consumer starts at the endpoint's creation time, so creating it late loses no event."""
    wanted = endpoint_consumer_config(endpoint, ack_wait)
    for _ in range(2):  # another replica may create it between our lookup and our create
        try:
            info = await js.consumer_info(STREAM, consumer_name(endpoint.id))
        except NotFoundError:
            try:
                await put_consumer(nc, wanted, "create")
                return
            except BadRequestError as exc:
                if exc.err_code != CONSUMER_ALREADY_EXISTS:
                    raise
                continue
        current = info.config
        if sorted(current.filter_subjects or []) == sorted(wanted.filter_subjects or []) and (
            current.ack_wait == wanted.ack_wait
        ):
            return
        updated = dataclasses.replace(
            current, filter_subject=None, filter_subjects=wanted.filter_subjects, ack_wait=wanted.ack_wait
        )
        await put_consumer(nc, updated, "update")
        return


async def delete_consumer(js: JetStreamContext, endpoint_id: str) -> None:
    try:
        await js.delete_consumer(STREAM, consumer_name(endpoint_id))
    except nats.js.errors.NotFoundError:
        pass
