"""The `eventhandler` NATS micro service: each endpoint decodes a request, does the work, encodes the reply."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats import micro
from nats.aio.client import Client
from nats.micro.request import Handler, Request, ServiceError
from nats.micro.service import Service

from services.eventhandler.consumers import ConsumerBroker
from services.eventhandler.errors import NotFoundError, RequestError
from services.eventhandler.metrics import Metrics
from services.eventhandler.publishing import BatchPublisher
from services.eventhandler.redrive import DeadLetterQueue
from services.eventhandler.schemas import (
    DeadLetterListReply,
    DeadLetterListRequest,
    RedriveReply,
    RedriveRequest,
    SubscriptionReply,
    SubscriptionSetRequest,
)
from services.eventhandler.service_support import decode
from services.eventhandler.subscriptions import Subscriptions, check_worker
from shared import tracing
from shared.consumers import FEED_USERS
from shared.jetstream import EVENTHANDLER_SERVICE
from shared.relay import MAX_EVENTS_PER_REQUEST, PublishRequest

log = structlog.get_logger(__name__)

VERSION = "0.1.0"
MAX_LIST = 1000
# JetStream or NATS did not answer: the caller should retry later.
UNAVAILABLE = (
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
    TimeoutError,
)


class Endpoints:
    """The work behind each endpoint; bytes in, bytes out."""

    def __init__(self, publisher: BatchPublisher, subscriptions: Subscriptions, deadletters: DeadLetterQueue) -> None:
        self._publisher = publisher
        self._subscriptions = subscriptions
        self._deadletters = deadletters

    async def publish(self, data: bytes) -> bytes:
        request = decode(data, PublishRequest)
        if len(request.events) > MAX_EVENTS_PER_REQUEST:
            raise RequestError(f"too many events: {len(request.events)} (at most {MAX_EVENTS_PER_REQUEST} a request)")
        reply = await self._publisher.publish(request.events)
        if reply.failed or reply.rejected:
            log.info(
                "publish incomplete",
                stored=len(reply.stored),
                failed=len(reply.failed),
                rejected=len(reply.rejected),
            )
        return msgspec.json.encode(reply)

    async def subscriptions_get(self, data: bytes) -> bytes:
        return msgspec.json.encode(await self._subscriptions.get_all())

    async def subscriptions_set(self, data: bytes) -> bytes:
        request = decode(data, SubscriptionSetRequest)
        events = await self._subscriptions.set(request.worker, request.events, request.start)
        log.info("subscriptions set", worker=request.worker, events=events, start=request.start)
        return msgspec.json.encode(SubscriptionReply(worker=request.worker, events=events))

    async def deadletters_list(self, data: bytes) -> bytes:
        request = decode(data, DeadLetterListRequest)
        if request.worker is not None:
            check_worker(request.worker)
        if not 1 <= request.limit <= MAX_LIST:
            raise RequestError(f"limit must be between 1 and {MAX_LIST}, got {request.limit}")
        if request.after < 0:
            raise RequestError(f"after must be >= 0, got {request.after}")
        items = await self._deadletters.list_entries(request.worker, request.limit, request.after)
        return msgspec.json.encode(DeadLetterListReply(items=items))

    async def deadletters_redrive(self, data: bytes) -> bytes:
        request = decode(data, RedriveRequest)
        if (request.seq is None) == (request.worker is None):
            raise RequestError('give either "seq" or "worker"')
        if request.seq is not None:
            if request.seq < 1:
                raise RequestError(f"seq must be >= 1, got {request.seq}")
            count = await self._deadletters.redrive_one(request.seq)
        else:
            assert request.worker is not None
            count = await self._deadletters.redrive_worker(check_worker(request.worker))
        return msgspec.json.encode(RedriveReply(redriven=count))


def handler(name: str, work: Callable[[bytes], Awaitable[bytes]], metrics: Metrics) -> Handler:
    """Run `work` and map its failures to micro error codes (see errors.py).

    The library turns a raised ServiceError into an error reply with the headers
    Nats-Service-Error-Code and Nats-Service-Error, and counts it in the endpoint's stats.
    """

    async def handle(request: Request) -> None:
        if not tracing.recording():
            await _handle(request)
            return
        with tracing.tracer().start_as_current_span(
            f"eventhandler {name}",
            context=tracing.extract(request.headers),
            kind=tracing.SpanKind.SERVER,
            attributes={"messaging.system": "nats", "rpc.service": EVENTHANDLER_SERVICE, "rpc.method": name},
        ):
            await _handle(request)

    async def _handle(request: Request) -> None:
        code = "500"
        try:
            reply = await work(request.data)
            code = "200"
        except (RequestError, NotFoundError) as exc:
            code = exc.code
            raise ServiceError(code, str(exc)) from exc
        except UNAVAILABLE as exc:
            code = "503"
            log.warning("jetstream unavailable", endpoint=name, error=repr(exc))
            raise ServiceError(code, f"JetStream unavailable: {type(exc).__name__}") from exc
        except nats.js.errors.APIError as exc:
            log.error("jetstream error", endpoint=name, error=str(exc))
            raise ServiceError(code, f"JetStream error: {exc.description}") from exc
        except Exception:
            log.exception("endpoint failed", endpoint=name)
            raise  # the micro library answers "500" and counts the error
        finally:
            metrics.inc("eventhandler_requests_total", endpoint=name, code=code)
        await request.respond(reply)

    return handle


async def start_service(nc: Client, endpoints: Endpoints, metrics: Metrics, consumers: ConsumerBroker) -> Service:
    """Register `eventhandler` so `nats micro ls` and `nats micro info eventhandler` list it."""
    service = await micro.add_service(
        nc,
        name=EVENTHANDLER_SERVICE,
        version=VERSION,
        description="Stores incident events on JetStream; manages subscriptions, dead letters and others' consumers",
    )
    root = service.add_group(name="eventhandler")
    subscriptions = root.add_group(name="subscriptions")
    deadletters = root.add_group(name="deadletters")
    routes: list[tuple[Any, str, str, Callable[[bytes], Awaitable[bytes]]]] = [
        (root, "publish", "publish", endpoints.publish),
        (subscriptions, "subscriptions-get", "get", endpoints.subscriptions_get),
        (subscriptions, "subscriptions-set", "set", endpoints.subscriptions_set),
        (deadletters, "deadletters-list", "list", endpoints.deadletters_list),
        (deadletters, "deadletters-redrive", "redrive", endpoints.deadletters_redrive),
    ]
    for group, name, subject, work in routes:
        await group.add_endpoint(name=name, subject=subject, handler=handler(name, work, metrics))
    await add_consumer_endpoints(root, consumers, metrics)
    return service


async def add_consumer_endpoints(root: Any, consumers: ConsumerBroker, metrics: Metrics) -> None:
    """`eventhandler.consumers.<user>.…`: the only way the API and the webhooks worker get a consumer."""
    group = root.add_group(name="consumers")
    routes: list[tuple[Any, str, str, Callable[[bytes], Awaitable[bytes]]]] = []
    for user in FEED_USERS:
        feed = group.add_group(name=user).add_group(name="feed")
        routes.append((feed, f"consumers-{user}-feed-open", "open", consumers.feed_open(user)))
        routes.append((feed, f"consumers-{user}-feed-close", "close", consumers.feed_close(user)))
    webhook_endpoint = group.add_group(name="webhooks").add_group(name="endpoint")
    routes.append((webhook_endpoint, "consumers-webhooks-endpoint-ensure", "ensure", consumers.webhook_ensure))
    routes.append((webhook_endpoint, "consumers-webhooks-endpoint-delete", "delete", consumers.webhook_delete))
    for subgroup, name, subject, work in routes:
        await subgroup.add_endpoint(name=name, subject=subject, handler=handler(name, work, metrics))
