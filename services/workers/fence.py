"""Fencing of outside calls: a replica calls out only while it surely holds the incident's lease.

A replica frozen (SIGSTOP, a long GC pause, a VM migration) past its lease may wake up in the middle of
a sync, after another replica took the incident over. Outside systems take no fencing token, so the
check happens on our side, right before each request leaves: the processor opens a fence around each
sync, and the HTTP seam calls `check_fence()` before sending. The check is local (no round trip): the
lease is valid until the monotonic time of our last confirmed lease write plus its TTL, minus a margin.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

Check = Callable[[], None]

_fence: ContextVar[Check | None] = ContextVar("fence", default=None)


@contextlib.contextmanager
def fenced(check: Check) -> Iterator[None]:
    """Outside calls made inside this block (in this task) first run `check`, which raises to stop them."""
    token = _fence.set(check)
    try:
        yield
    finally:
        _fence.reset(token)


def check_fence() -> None:
    """Raise (a RetryableError, nothing sent) unless the current sync still holds its lease."""
    check = _fence.get()
    if check is not None:
        check()
