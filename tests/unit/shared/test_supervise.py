"""A supervised task that dies is counted and started again; cancelling or stopping it is not an error."""

from __future__ import annotations

import asyncio

import pytest

from shared.supervise import supervise


async def test_a_loop_that_dies_is_counted_and_restarted_until_it_ends() -> None:
    errors: list[str] = []
    runs = 0

    async def dies_twice(stop: asyncio.Event) -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise RuntimeError("unplanned")

    await asyncio.wait_for(supervise("job", dies_twice, asyncio.Event(), errors.append, restart_delay=0), 5)
    assert runs == 3
    assert errors == ["job", "job"]


async def test_stop_ends_the_restarts() -> None:
    stop = asyncio.Event()
    errors: list[str] = []

    async def dies_and_stops(stop_: asyncio.Event) -> None:
        stop_.set()
        raise RuntimeError("unplanned")

    await asyncio.wait_for(supervise("job", dies_and_stops, stop, errors.append, restart_delay=10), 5)
    assert errors == ["job"]


async def test_cancellation_is_not_counted() -> None:
    errors: list[str] = []
    started = asyncio.Event()

    async def forever(stop: asyncio.Event) -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(supervise("job", forever, asyncio.Event(), errors.append))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert errors == []
