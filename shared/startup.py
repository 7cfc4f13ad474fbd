"""Start-up steps against JetStream that wait while it can't answer, instead of ending the process.

A cluster electing a leader (a node died), a frozen node or a quorum not yet formed makes JetStream answer
503, "no suitable peers" or nothing at all for seconds; exiting then only makes a restart loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors
import nats.js.errors
import structlog

log = structlog.get_logger(__name__)
T = TypeVar("T")

NOT_YET = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
    TimeoutError,
)
NO_PEERS = 10005
"""JetStream's "no suitable peers for placement": replicas of the cluster are offline for now."""
RETRY_MAX_SECONDS = 5.0


async def when_jetstream_answers(step: Callable[[], Awaitable[T]], what: str) -> T:
    """`step()`, retried with backoff while JetStream can't answer; cancel it to give up (SIGTERM)."""
    delay = 0.2
    while True:
        try:
            return await step()
        except NOT_YET as exc:
            log.warning("jetstream not available yet", step=what, error=repr(exc), retry_in=delay)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != NO_PEERS:
                raise
            log.warning("jetstream not available yet", step=what, error=exc.description, retry_in=delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX_SECONDS)
