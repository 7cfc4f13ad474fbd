"""A pull subscription whose fetch takes already queued messages directly (shared/pullsub.py), on a real
nats-server: the same messages in the same order, nats-py's bookkeeping kept, and waiting still nats-py's."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from shared.pullsub import take_queued_directly

STREAM, SUBJECT, CONSUMER = "PULLTEST", "pulltest.events", "reader"


async def _pull(nc: Client, published: int) -> Any:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=[SUBJECT]))
    await js.add_consumer(STREAM, ConsumerConfig(durable_name=CONSUMER, ack_policy=AckPolicy.EXPLICIT))
    for n in range(published):
        await js.publish(SUBJECT, b"event %d" % n)
    return await js.pull_subscribe_bind(consumer=CONSUMER, stream=STREAM)


def _counting(sub: Any) -> list[int]:
    """Counts the reads that reach nats-py's own next_msg (a task and a timer each)."""
    calls: list[int] = []
    original: Callable[..., Awaitable[Msg]] = sub._sub.next_msg

    async def next_msg(timeout: float | None = 1.0) -> Msg:
        calls.append(1)
        return await original(timeout)

    sub._sub.next_msg = next_msg
    return calls


async def test_a_batch_is_read_in_order_mostly_without_nats_pys_per_message_read(nc: Client) -> None:
    pull = await _pull(nc, 200)
    slow_reads = _counting(pull)
    assert take_queued_directly(pull)
    seen: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(seen) < 200 and time.monotonic() < deadline:
        for msg in await pull.fetch(100, timeout=2):
            seen.append(msg.data)
            assert msg.metadata.stream == STREAM
            await msg.ack()
    assert seen == [b"event %d" % n for n in range(200)]
    assert len(slow_reads) <= 10  # a wait for the first message of a request, not one per message
    assert pull.pending_msgs == 0 and pull.pending_bytes == 0  # nats-py's accounting kept


async def test_an_empty_fetch_still_times_out_as_nats_py_says(nc: Client) -> None:
    pull = await _pull(nc, 0)
    assert take_queued_directly(pull)
    started = time.monotonic()
    with pytest.raises((TimeoutError, nats.errors.TimeoutError)):
        await pull.fetch(10, timeout=0.5)
    assert time.monotonic() - started < 5


def test_a_subscription_of_another_shape_is_left_as_it_is() -> None:
    class Other:
        _sub = object()

    assert take_queued_directly(Other()) is False  # type: ignore[arg-type]
