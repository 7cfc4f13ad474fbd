"""The deadline of one sync: every outside call made during it ends by then, however slowly a vendor answers.

Each call's answer must be whole within WORKER_HTTP_TIMEOUT_SECONDS, but a sync makes several calls, and a
vendor that trickles a byte at a time would stretch them all. The processor opens a deadline around each
sync; the HTTP seam bounds each call by what is left of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("sync_deadline", default=None)


@contextlib.contextmanager
def sync_deadline(seconds: float) -> Iterator[None]:
    """Outside calls made inside this block (in this task) end within `seconds` from now."""
    token = _deadline.set(asyncio.get_running_loop().time() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def time_left() -> float | None:
    """Seconds until the current sync's deadline (negative once passed); None outside a sync."""
    when = _deadline.get()
    return None if when is None else when - asyncio.get_running_loop().time()
