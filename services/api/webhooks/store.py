"""Webhook endpoints for the API: kept in the JetStream bucket `webhook-endpoints`, which the worker watches.

The bucket is the only store of endpoints and secrets (file storage, replicated like the streams): the
worker sees changes at once, and its one write (410 disables an endpoint) is a compare-and-set on the
same record, so there is no second copy to keep in step.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import msgspec
import nats.errors
import nats.js.errors
import sqlalchemy as sa
import structlog
from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

from services.api.delivery.eventhandler_client import NatsLink
from services.api.storage.db import Db
from services.api.storage.tables import incident_events
from shared.egress import TargetRefused, allowed_addresses, parse_target
from shared.webhooks import (
    DELIVERIES_STREAM,
    ENDPOINTS_BUCKET,
    REDELIVER_SUBJECT,
    Attempt,
    Endpoint,
    RedeliverReply,
    RedeliverRequest,
    decode_attempt,
    decode_endpoint,
    deliveries_subject,
    encode,
    endpoint_key,
    rotate,
)

log = structlog.get_logger(__name__)

NATS_TIMEOUT = 5.0
REDELIVER_TIMEOUT = 60.0  # one delivery, whatever the worker's WEBHOOK_TIMEOUT_SECONDS (default 15 s)
CAS_ATTEMPTS = 5
DEFAULT_MAX_ENDPOINTS = 100
_TROUBLE = (nats.errors.Error, TimeoutError)


class WebhookNotFound(LookupError):
    """No endpoint with that id."""


class EventNotFound(LookupError):
    """No event with that id in the event log."""


class WebhooksUnavailable(RuntimeError):
    """NATS, the bucket or the worker did not answer: retry later."""


class WebhookConflict(RuntimeError):
    """The endpoint changed too often while we tried to change it."""


class TooManyWebhooks(RuntimeError):
    """WEBHOOK_MAX_ENDPOINTS are registered already: each is a consumer and a delivery loop in the worker."""


class WebhookStore:
    def __init__(
        self,
        link: NatsLink,
        db: Db,
        *,
        allow_private: bool,
        secret_overlap: float,
        max_endpoints: int = DEFAULT_MAX_ENDPOINTS,
    ) -> None:
        self.link = link
        self.max_endpoints = max_endpoints
        self.db = db
        self.allow_private = allow_private
        self.secret_overlap = timedelta(seconds=secret_overlap)
        self._kv: KeyValue | None = None

    def _js(self) -> JetStreamContext:
        if not self.link.connected or self.link.nc is None:
            raise WebhooksUnavailable("NATS is not connected")
        return self.link.nc.jetstream(timeout=NATS_TIMEOUT)

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            try:
                self._kv = await self._js().key_value(ENDPOINTS_BUCKET)
            except nats.js.errors.BucketNotFoundError:
                raise WebhooksUnavailable("no endpoints bucket yet (is the event handler up?)") from None
            except _TROUBLE as exc:
                raise WebhooksUnavailable(f"NATS: {type(exc).__name__}") from None
        return self._kv

    async def check_url(self, url: str) -> None:
        """BadUrl or TargetRefused (both 400) unless the URL is one the worker may call.

        For a host name the answer never says what it resolves to, nor whether it resolves at all: a
        token holder could otherwise map the internal DNS. The reason is logged for operators."""
        target = parse_target(url)
        try:
            await allowed_addresses(target, self.allow_private)
        except TargetRefused as exc:
            log.warning("webhook url refused", host=target.host, reason=exc.detail)
            raise

    async def create(self, endpoint: Endpoint) -> None:
        kv = await self._bucket()
        # Checked, then created: concurrent creates may pass the cap by a few, never without end.
        if len(await self.list_all()) >= self.max_endpoints:
            raise TooManyWebhooks(f"{self.max_endpoints} webhook endpoints exist already (WEBHOOK_MAX_ENDPOINTS)")
        try:
            await kv.create(endpoint_key(endpoint.id), encode(endpoint))
        except _TROUBLE as exc:
            raise WebhooksUnavailable(f"NATS: {type(exc).__name__}") from None
        # The host only: URLs may carry a token in their path or query (like Slack's incoming webhooks).
        host = urlsplit(endpoint.url).hostname
        log.info("webhook endpoint created", endpoint_id=endpoint.id, host=host, events=endpoint.events)

    async def get(self, endpoint_id: str) -> Endpoint:
        return (await self._get(endpoint_id))[0]

    async def _get(self, endpoint_id: str) -> tuple[Endpoint, int]:
        kv = await self._bucket()
        try:
            entry = await kv.get(endpoint_key(endpoint_id))
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            raise WebhookNotFound(endpoint_id) from None
        except _TROUBLE as exc:
            raise WebhooksUnavailable(f"NATS: {type(exc).__name__}") from None
        return decode_endpoint(entry.value or b""), int(entry.revision or 0)

    async def change(self, endpoint_id: str, mutate: Callable[[Endpoint], Endpoint]) -> Endpoint:
        """Read, change, compare-and-set: a concurrent change (e.g. the worker disabling it) is never lost."""
        kv = await self._bucket()
        for _ in range(CAS_ATTEMPTS):
            current, revision = await self._get(endpoint_id)
            changed = mutate(current)
            try:
                await kv.update(endpoint_key(endpoint_id), encode(changed), last=revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
            except _TROUBLE as exc:
                raise WebhooksUnavailable(f"NATS: {type(exc).__name__}") from None
            return changed
        raise WebhookConflict("the webhook changed too often; try again")

    async def rotate(self, endpoint_id: str, new_secret: str) -> Endpoint:
        return await self.change(endpoint_id, lambda e: rotate(e, new_secret, datetime.now(UTC), self.secret_overlap))

    async def delete(self, endpoint_id: str) -> None:
        await self.get(endpoint_id)
        kv = await self._bucket()
        try:
            await kv.delete(endpoint_key(endpoint_id))
        except _TROUBLE as exc:
            raise WebhooksUnavailable(f"NATS: {type(exc).__name__}") from None
        log.info("webhook endpoint deleted", endpoint_id=endpoint_id)

    async def list_all(self) -> list[Endpoint]:
        """Walk the bucket's stream by subject: one message per key (history 1), deletes left out."""
        await self._bucket()
        found = await self._walk(f"KV_{ENDPOINTS_BUCKET}", f"$KV.{ENDPOINTS_BUCKET}.endpoint.*")
        endpoints = [decode_endpoint(data) for headers, data in found if headers.get(KV_OP) not in (KV_DEL, KV_PURGE)]
        return sorted(endpoints, key=lambda e: e.created_at)

    async def deliveries(self, endpoint_id: str, limit: int) -> list[Attempt]:
        """The endpoint's logged attempts, newest first."""
        await self.get(endpoint_id)
        entries = await self._walk(DELIVERIES_STREAM, deliveries_subject(endpoint_id))
        attempts = []
        for _, data in entries:
            try:
                attempts.append(decode_attempt(data))
            except msgspec.MsgspecError:
                continue
        return attempts[::-1][:limit]

    async def _walk(self, stream: str, subject: str) -> list[tuple[dict[str, str], bytes]]:
        js = self._js()
        found: list[tuple[dict[str, str], bytes]] = []
        seq = 1
        while True:
            try:
                msg = await js.get_msg(stream, seq=seq, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                return found
            except _TROUBLE as exc:
                raise WebhooksUnavailable(f"NATS: {type(exc).__name__}") from None
            found.append((dict(msg.headers or {}), msg.data or b""))
            seq = int(msg.seq or seq) + 1

    async def event_payload(self, event_id: str) -> str:
        query = sa.select(incident_events.c.payload).where(incident_events.c.event_id == event_id)
        payload = await self.db.database.fetch_val(query)
        if payload is None:
            raise EventNotFound(event_id)
        return str(payload)

    async def redeliver(self, endpoint_id: str, event_id: str) -> Attempt:
        await self.get(endpoint_id)
        request = RedeliverRequest(endpoint_id=endpoint_id, event=await self.event_payload(event_id))
        if not self.link.connected or self.link.nc is None:
            raise WebhooksUnavailable("NATS is not connected")
        try:
            reply = await self.link.nc.request(REDELIVER_SUBJECT, encode(request), timeout=REDELIVER_TIMEOUT)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError, TimeoutError):
            raise WebhooksUnavailable("no webhooks worker answered; try again later") from None
        except nats.errors.Error as exc:
            raise WebhooksUnavailable(f"NATS: {type(exc).__name__}") from None
        answer = msgspec.json.decode(reply.data, type=RedeliverReply)
        if answer.attempt is None:
            raise WebhooksUnavailable(f"the webhooks worker could not send it: {answer.error}")
        return answer.attempt
