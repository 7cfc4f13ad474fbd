"""The API's background loops are supervised: an error is counted and gone past, a loop that dies restarts."""

from __future__ import annotations

import asyncio

from services.api import background
from services.api.background import supervise
from services.api.web.metrics import ApiMetrics
from tests.support.polling import eventually


async def test_a_background_loop_that_dies_is_counted_and_started_again() -> None:
    metrics = ApiMetrics()
    stop = asyncio.Event()
    runs: list[int] = []

    async def dies_once(stop: asyncio.Event) -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("an error nobody planned for")
        stop.set()

    await asyncio.wait_for(supervise("test", dies_once, stop, metrics), 10)
    assert runs == [0, 1]
    assert metrics.background_errors.value(task="test") == 1


class PruneFailsOnce:
    """A repository whose first prune fails unexpectedly (the housekeeping loop must not die of it)."""

    def __init__(self) -> None:
        self.calls = 0

    async def prune_idempotency_keys(self, older_than_micros: int) -> int:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("an error nobody planned for")
        return 0


async def test_housekeeping_goes_on_after_an_unexpected_error() -> None:
    metrics = ApiMetrics()
    stop = asyncio.Event()
    repo = PruneFailsOnce()
    task = asyncio.create_task(background.housekeeping(repo, stop, metrics, every=3600, retry=0.05))  # type: ignore[arg-type]

    async def pruned_again() -> bool:
        return repo.calls >= 2

    try:
        await eventually(pruned_again, timeout=10, what="a second prune")
        assert not task.done()
        assert metrics.background_errors.value(task="housekeeping") == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
