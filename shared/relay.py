"""The relay ↔ event handler contract: the publish request and reply, and the limits both sides hold to.

The limits follow NATS's `max_payload`, which every nats-server config of ours leaves at its default
(1 MiB): a request, with its headers, must fit in one NATS message. So must a single event on its
own, which is why the API refuses a write whose event would exceed `MAX_EVENT_BYTES` (413).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

NATS_MAX_PAYLOAD = 1_048_576
"""nats-server's default `max_payload`; our nats.conf, `just dev` and the tests keep it."""
MAX_EVENTS_PER_REQUEST = 1_000
"""Events in one publish request; OUTBOX_BATCH_SIZE may not exceed it."""
MAX_REQUEST_BYTES = NATS_MAX_PAYLOAD - 16 * 1024
"""Bytes of one publish request body: headroom for the NATS headers, which count against max_payload."""
_ENVELOPE = (b'{"events":[', b",", b"]}")
MAX_EVENT_BYTES = MAX_REQUEST_BYTES - len(_ENVELOPE[0]) - len(_ENVELOPE[2])
"""One encoded event: it must fit in a request of its own."""


class PublishRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`eventhandler.publish`: CloudEvents as the outbox stored them, in outbox order."""

    events: list[msgspec.Raw]


class EventError(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    """The event's id; empty for a rejected event whose id could not be read."""
    error: str


class PublishReply(msgspec.Struct, kw_only=True, frozen=True):
    """Every event of the request is in exactly one list.

    stored: JetStream acknowledged it (or already had it). failed: not stored now, retry later (an
    incident's events after a failed or rejected one are failed, never stored past it). rejected:
    this event handler can't take the event (invalid, or a type it does not know); the relay keeps it.
    """

    stored: list[str] = []
    failed: list[EventError] = []
    rejected: list[EventError] = []


def encode_request(payloads: Sequence[bytes]) -> bytes:
    """A publish request body from encoded events, without decoding them again."""
    return _ENVELOPE[0] + _ENVELOPE[1].join(payloads) + _ENVELOPE[2]


def request_bytes(payload_sizes: Sequence[int]) -> int:
    """The size of `encode_request` for events of these sizes."""
    return len(_ENVELOPE[0]) + len(_ENVELOPE[2]) + sum(payload_sizes) + max(0, len(payload_sizes) - 1)
