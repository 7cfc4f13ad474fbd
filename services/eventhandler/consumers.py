"""The consumers the API and the webhooks worker read, made here from configurations this module builds.

Those users have no right to create or delete consumers (deploy/k8s/nats/nats.conf): a requester chooses only
a deliver subject within its own inbox, a start sequence, or an endpoint's id, event types and ack wait.
Everything else (stream, filter, ack policy, storage, deliver policy) is fixed here.
"""

from __future__ import annotations

import dataclasses

import msgspec
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.nuid import NUID

from services.eventhandler.errors import RequestError
from services.eventhandler.service_support import Work, decode
from services.eventhandler.streams import CONSUMER_ALREADY_EXISTS, put_consumer_on
from shared.consumers import (
    FEED_HEARTBEAT_SECONDS,
    FEED_INACTIVE_SECONDS,
    FEED_NAME,
    MAX_ACK_WAIT_SECONDS,
    MIN_ACK_WAIT_SECONDS,
    ConsumerDone,
    FeedCloseRequest,
    FeedReply,
    FeedRequest,
    WebhookConsumerDelete,
    WebhookConsumerRequest,
    own_inbox,
)
from shared.events import ALL_SUBJECTS, STREAM, SUBJECT_PREFIX
from shared.webhooks import ENDPOINT_ID, ENDPOINTS_BUCKET, consumer_config_for, consumer_name

log = structlog.get_logger(__name__)

ENDPOINTS_STREAM = f"KV_{ENDPOINTS_BUCKET}"
FEEDS = {
    # user: (stream, filter subject)
    "api": (STREAM, SUBJECT_PREFIX + ">"),
    "webhooks": (ENDPOINTS_STREAM, f"$KV.{ENDPOINTS_BUCKET}.endpoint.*"),
}


def feed_config(user: str, name: str, request: FeedRequest) -> tuple[str, ConsumerConfig]:
    """The only push consumers anyone but the event handler reads: ack-less, in memory, into its own inbox."""
    if user not in FEEDS:
        raise RequestError(f"no feed for {user!r}")
    if not own_inbox(user, request.deliver_subject):
        raise RequestError(f"deliver_subject must be one literal subject under _INBOX_{user}.")
    stream, subject = FEEDS[user]
    if stream == STREAM:
        if request.start_seq < 1:
            raise RequestError("start_seq must be >= 1")
        policy: dict[str, object] = {
            "deliver_policy": DeliverPolicy.BY_START_SEQUENCE,
            "opt_start_seq": request.start_seq,
        }
    else:
        policy = {"deliver_policy": DeliverPolicy.LAST_PER_SUBJECT}
    config = ConsumerConfig(
        name=name,
        description=f"{user} feed",
        deliver_subject=request.deliver_subject,
        filter_subject=subject,
        ack_policy=AckPolicy.NONE,
        flow_control=True,
        idle_heartbeat=FEED_HEARTBEAT_SECONDS,
        mem_storage=True,
        num_replicas=1,
        inactive_threshold=FEED_INACTIVE_SECONDS,
        **policy,  # type: ignore[arg-type]
    )
    return stream, config


def webhook_config(request: WebhookConsumerRequest) -> ConsumerConfig:
    if not ENDPOINT_ID.match(request.endpoint_id):
        raise RequestError("endpoint_id must be 16 hex digits")
    unknown = sorted(set(request.events) - set(ALL_SUBJECTS))
    if not request.events or unknown:
        raise RequestError(f"events must be known event types, got {unknown or 'none'}")
    if not MIN_ACK_WAIT_SECONDS <= request.ack_wait <= MAX_ACK_WAIT_SECONDS:
        raise RequestError(f"ack_wait must be between {MIN_ACK_WAIT_SECONDS} and {MAX_ACK_WAIT_SECONDS} seconds")
    return consumer_config_for(request.endpoint_id, request.events, request.created_at, request.ack_wait)


class ConsumerBroker:
    def __init__(self, nc: Client, js: JetStreamContext) -> None:
        self._nc = nc
        self._js = js
        self._nuid = NUID()

    def feed_open(self, user: str) -> Work:
        async def work(data: bytes) -> bytes:
            name = f"feed-{user}-{self._nuid.next().decode()}"
            stream, config = feed_config(user, name, decode(data, FeedRequest))
            await put_consumer_on(self._nc, stream, config, "create")
            log.info("feed opened", user=user, consumer=name)
            return msgspec.json.encode(FeedReply(stream=stream, name=name))

        return work

    def feed_close(self, user: str) -> Work:
        async def work(data: bytes) -> bytes:
            name = decode(data, FeedCloseRequest).name
            match = FEED_NAME.match(name)
            if match is None or match.group(1) != user:
                raise RequestError(f"{name!r} is not one of {user}'s feeds")
            try:
                await self._js.delete_consumer(FEEDS[user][0], name)
            except nats.js.errors.NotFoundError:
                pass  # already gone (its reader went away and JetStream removed it)
            return msgspec.json.encode(ConsumerDone(name=name))

        return work

    async def webhook_ensure(self, data: bytes) -> bytes:
        wanted = webhook_config(decode(data, WebhookConsumerRequest))
        name = wanted.durable_name or ""
        for _ in range(2):  # another replica may create it between our lookup and our create
            try:
                info = await self._js.consumer_info(STREAM, name)
            except nats.js.errors.NotFoundError:
                try:
                    await put_consumer_on(self._nc, STREAM, wanted, "create")
                    break
                except nats.js.errors.BadRequestError as exc:
                    if exc.err_code != CONSUMER_ALREADY_EXISTS:
                        raise
                    continue
            current = info.config
            if sorted(current.filter_subjects or []) != sorted(wanted.filter_subjects or []) or (
                current.ack_wait != wanted.ack_wait
            ):
                updated = dataclasses.replace(
                    current, filter_subject=None, filter_subjects=wanted.filter_subjects, ack_wait=wanted.ack_wait
                )
                await put_consumer_on(self._nc, STREAM, updated, "update")
            break
        return msgspec.json.encode(ConsumerDone(name=name))

    async def webhook_delete(self, data: bytes) -> bytes:
        endpoint_id = decode(data, WebhookConsumerDelete).endpoint_id
        if not ENDPOINT_ID.match(endpoint_id):
            raise RequestError("endpoint_id must be 16 hex digits")
        try:
            await self._js.delete_consumer(STREAM, consumer_name(endpoint_id))
        except nats.js.errors.NotFoundError:
            pass
        return msgspec.json.encode(ConsumerDone(name=consumer_name(endpoint_id)))
