"""Long-running tasks never die in silence: an error is logged and counted, and the loop starts again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)

RESTART_DELAY_SECONDS = 1.0

Loop = Callable[[asyncio.Event], Awaitable[None]]


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def supervise(
    name: str,
    loop: Loop,
    stop: asyncio.Event,
    on_error: Callable[[str], None],
    *,
    restart_delay: float = RESTART_DELAY_SECONDS,
) -> None:
    """Run `loop` until `stop`; should it end by an error, log it, count it (`on_error(name)`) and start it again.

    Cancellation is not an error: it ends the task as usual.
    """
    while not stop.is_set():
        try:
            await loop(stop)
            return
        except Exception:
            on_error(name)
            log.exception("background task died, restarting it", task=name, restart_in=restart_delay)
        await pause(stop, restart_delay)
