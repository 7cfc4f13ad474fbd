"""GroupCommit without a database: who gets which answer, how items group, and errors."""

from __future__ import annotations

import asyncio

import pytest

from services.api.storage.groupcommit import GroupCommit, Overloaded
from services.api.web.errors import handle_any


class Writer:
    """Records each batch; answers each item with its double, or with the error it was told to raise."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()

    async def write(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        self.entered.set()
        await self.gate.wait()
        if -1 in items:
            raise ConnectionError("database gone")
        return [ValueError(f"bad {i}") if i == 13 else i * 2 for i in items]


async def test_each_item_gets_its_own_answer_and_waiting_items_share_the_next_batch() -> None:
    writer = Writer()
    group: GroupCommit[int, int] = GroupCommit(writer.write, max_batch=4)
    writer.gate.clear()
    first = asyncio.create_task(group.submit(1))
    await writer.entered.wait()  # the writer took item 1 alone and waits at the gate
    rest = [asyncio.create_task(group.submit(i)) for i in range(2, 8)]  # they queue before the gate opens
    writer.gate.set()
    assert await first == 2
    assert await asyncio.gather(*rest) == [4, 6, 8, 10, 12, 14]
    assert writer.batches == [[1], [2, 3, 4, 5], [6, 7]]


async def test_a_failing_item_fails_alone_and_a_failing_batch_fails_its_own_items_only() -> None:
    writer = Writer()
    group: GroupCommit[int, int] = GroupCommit(writer.write, max_batch=2)
    outcomes = await asyncio.gather(*[group.submit(i) for i in (13, 5, -1, 6, 7)], return_exceptions=True)
    assert isinstance(outcomes[0], ValueError) and outcomes[1] == 10
    assert isinstance(outcomes[2], ConnectionError) and isinstance(outcomes[3], ConnectionError)
    assert outcomes[4] == 14


async def test_the_writer_starts_again_after_the_queue_ran_empty() -> None:
    writer = Writer()
    group: GroupCommit[int, int] = GroupCommit(writer.write, max_batch=8)
    assert await group.submit(1) == 2
    await group.wait_idle()
    assert await group.submit(2) == 4
    with pytest.raises(ValueError, match="bad 13"):
        await group.submit(13)


async def test_past_the_queue_bound_a_write_is_shed_at_once_and_the_queued_ones_still_commit() -> None:
    writer = Writer()
    group: GroupCommit[int, int] = GroupCommit(writer.write, max_batch=2, max_queued=3)
    writer.gate.clear()
    first = asyncio.create_task(group.submit(1))
    await writer.entered.wait()  # the writer holds item 1; the queue is empty again
    queued = [asyncio.create_task(group.submit(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0)  # one turn of the loop: each task runs into the queue, up to its first await
    with pytest.raises(Overloaded) as shed:
        await group.submit(5)
    assert shed.value.retry_after >= 1
    writer.gate.set()
    assert await first == 2
    assert await asyncio.gather(*queued) == [4, 6, 8]
    assert all(5 not in batch for batch in writer.batches)
    assert await group.submit(6) == 12  # room again


def test_a_shed_write_is_a_503_with_retry_after_in_the_error_shape() -> None:
    response = handle_any(None, Overloaded("4096 writes are already waiting; retry later"))  # type: ignore[arg-type]
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.content == {
        "status": "Service Unavailable",
        "error": "4096 writes are already waiting; retry later",
    }
