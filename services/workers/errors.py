"""Failures a worker raises, so the runner can choose between ack, nak-with-delay and term.

WorkerError
├── RetryableError      409, 5xx, timeouts, connection errors, a lease held too long: nak with backoff
│   ├── RateLimited     429 with Retry-After: wait `retry_after` seconds
│   └── Wait            nothing failed: a grace period, search lag, another replica's lease, a vendor's
│                       rate limit still running; the incident is parked, no error is recorded
└── PermanentError      other 4xx, an event that can't be decoded or applied: term
"""

from __future__ import annotations


class WorkerError(Exception):
    """Base of every failure a worker reports on purpose."""


class RetryableError(WorkerError):
    """Try again later; `delay` (seconds) overrides the runner's backoff when set.

    `maybe_applied` is False only when the outside system surely did nothing (refused connection,
    rate limit): a timeout or a 5xx may come after the change was made.
    """

    def __init__(self, message: str, *, delay: float | None = None, maybe_applied: bool = True) -> None:
        super().__init__(message)
        self.delay = delay
        self.maybe_applied = maybe_applied


class RateLimited(RetryableError):
    """The outside system asked us to wait `retry_after` seconds, and did nothing."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, delay=retry_after, maybe_applied=False)
        self.retry_after = retry_after


class Wait(RetryableError):
    """Not a failure: come back in `delay` seconds. Nothing was sent outside."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message, delay=delay, maybe_applied=False)


class PermanentError(WorkerError):
    """Retrying can't help: the event goes to the dead letters."""
