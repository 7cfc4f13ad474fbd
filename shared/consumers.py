"""Consumers that only the event handler creates: the request-reply contract for the services that read them.

No NATS user but the event handler may create or delete a consumer. A push consumer's deliver subject is not
checked against its creator's publish permissions, so a user allowed to create one could have JetStream
deliver into `$KV.refs-jira.>` or `deadletter.>`. Instead, the API (the console's live feed) and the
webhooks worker ask the event handler, which builds each consumer's configuration itself from the few
values a request may choose, and refuses a deliver subject outside the requester's own inbox prefix.

The requester is known by the subject it sends to (`eventhandler.consumers.<user>.…`): nats.conf lets each
user publish to its own subjects only.
"""

from __future__ import annotations

import re
from datetime import datetime

import msgspec

from shared.natsconn import inbox_prefix

CONSUMERS_SUBJECT_PREFIX = "eventhandler.consumers"
FEED_USERS = ("api", "webhooks")
"""Who may ask for a feed: the API (INCIDENTS for the console) and the webhooks worker (its endpoints bucket)."""
FEED_NAME = re.compile(r"^feed-(api|webhooks)-[0-9A-Za-z]{8,32}$")
FEED_INACTIVE_SECONDS = 30.0
"""A feed whose reader went away without closing it is removed by JetStream after this long."""
FEED_HEARTBEAT_SECONDS = 5.0
MIN_ACK_WAIT_SECONDS, MAX_ACK_WAIT_SECONDS = 1.0, 3600.0


def feed_open_subject(user: str) -> str:
    return f"{CONSUMERS_SUBJECT_PREFIX}.{user}.feed.open"


def feed_close_subject(user: str) -> str:
    return f"{CONSUMERS_SUBJECT_PREFIX}.{user}.feed.close"


WEBHOOK_CONSUMER_ENSURE_SUBJECT = f"{CONSUMERS_SUBJECT_PREFIX}.webhooks.endpoint.ensure"
WEBHOOK_CONSUMER_DELETE_SUBJECT = f"{CONSUMERS_SUBJECT_PREFIX}.webhooks.endpoint.delete"


def own_inbox(user: str, deliver_subject: str) -> bool:
    """`_INBOX_<user>.<token>`: one literal token under the user's own inbox prefix, no wildcard."""
    prefix = inbox_prefix(user) + "."
    rest = deliver_subject.removeprefix(prefix)
    return deliver_subject.startswith(prefix) and re.fullmatch(r"[0-9A-Za-z_-]{1,64}", rest) is not None


class FeedRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A push consumer, ack-less, in memory, delivering into the requester's own inbox.

    For the API: INCIDENTS from `start_seq` on. For the webhooks worker: the last value of each endpoint
    in the `webhook-endpoints` bucket, then every change (`start_seq` is ignored)."""

    deliver_subject: str
    start_seq: int = 0


class FeedReply(msgspec.Struct, frozen=True):
    stream: str
    name: str


class FeedCloseRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str


class WebhookConsumerRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The durable pull consumer `webhooks-<endpoint_id>` on INCIDENTS, created or brought in step."""

    endpoint_id: str
    events: list[str]
    created_at: datetime
    """The consumer starts at the endpoint's creation, so creating it late loses no event."""
    ack_wait: float


class WebhookConsumerDelete(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    endpoint_id: str


class ConsumerDone(msgspec.Struct, frozen=True):
    name: str
