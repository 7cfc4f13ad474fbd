"""The delivery log: every attempt is appended to WEBHOOK_DELIVERIES under the endpoint's subject."""

from __future__ import annotations

import nats.errors
import structlog
from nats.js import JetStreamContext

from shared.webhooks import DELIVERIES_STREAM, Attempt, deliveries_subject, encode

log = structlog.get_logger(__name__)


class Journal:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def record(self, attempt: Attempt) -> None:
        """Best effort: a log entry that can't be written must not hold back the delivery itself."""
        try:
            await self.js.publish(deliveries_subject(attempt.endpoint_id), encode(attempt), stream=DELIVERIES_STREAM)
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("delivery log entry not written", error=repr(exc))
