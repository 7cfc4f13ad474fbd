"""Each enabled endpoint's durable consumer on INCIDENTS: made, kept in step and deleted by the event handler.

The webhooks worker may not create or delete consumers itself (it calls URLs users choose: it is the most
exposed service); it asks the event handler, which builds the configuration (shared/consumers.py).
"""

from __future__ import annotations

import msgspec
from nats.aio.client import Client

from shared.consumers import (
    WEBHOOK_CONSUMER_DELETE_SUBJECT,
    WEBHOOK_CONSUMER_ENSURE_SUBJECT,
    WebhookConsumerDelete,
    WebhookConsumerRequest,
)
from shared.feed import consumer_request
from shared.webhooks import Endpoint


async def ensure_consumer(nc: Client, endpoint: Endpoint, ack_wait: float) -> None:
    """The consumer starts at the endpoint's creation time, so creating it late loses no event."""
    request = WebhookConsumerRequest(
        endpoint_id=endpoint.id, events=list(endpoint.events), created_at=endpoint.created_at, ack_wait=ack_wait
    )
    await consumer_request(nc, WEBHOOK_CONSUMER_ENSURE_SUBJECT, msgspec.json.encode(request))


async def delete_consumer(nc: Client, endpoint_id: str) -> None:
    body = msgspec.json.encode(WebhookConsumerDelete(endpoint_id=endpoint_id))
    await consumer_request(nc, WEBHOOK_CONSUMER_DELETE_SUBJECT, body)
