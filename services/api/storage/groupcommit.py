"""Group commit: concurrent writes queue up and one writer task commits them together, a batch per transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
WriteBatch = Callable[[list[Item]], Awaitable[list[Result | BaseException]]]
DEFAULT_MAX_QUEUED = 4096
RETRY_AFTER_SECONDS = 1


class Overloaded(RuntimeError):
    """More writes wait than the queue holds: shed with 503 and Retry-After instead of growing memory."""

    retry_after = RETRY_AFTER_SECONDS


class GroupCommit(Generic[Item, Result]):
    """Each `submit` returns only after the transaction that holds its item committed (or raises its own error).

    The writer task starts when the first item arrives and ends when the queue is empty, so there is no
    background task to supervise; while it commits one batch the next one fills up. `write_batch` answers
    one outcome per item: a failing item must not fail the others.
    """

    def __init__(
        self, write_batch: WriteBatch[Item, Result], *, max_batch: int, max_queued: int = DEFAULT_MAX_QUEUED
    ) -> None:
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._max_queued = max_queued
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """Overloaded at once, writing nothing, when `max_queued` items already wait for a transaction."""
        if len(self._queue) >= self._max_queued:
            raise Overloaded(f"{self._max_queued} writes are already waiting; retry later")
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain(), name="group-commit")
        return await future

    async def wait_idle(self) -> None:
        """Until every queued item is answered (shutdown)."""
        while self._writer is not None:
            await asyncio.shield(self._writer)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    outcomes = await self._write_batch([item for item, _ in batch])
                except BaseException as exc:  # answered to every waiter of this batch, which raises it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # the request went away; its write stands
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._writer = None
            for _, future in self._queue:  # only when cancelled at shutdown
                if not future.done():
                    future.set_exception(ConnectionError("the API is shutting down"))
            self._queue.clear()
