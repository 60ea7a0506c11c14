"""Dynamic batching that closes a batch when the model is free to run it.

Ray Serve 2.60's ``@serve.batch`` closes a batch ``batch_wait_timeout_s`` after the batch's first request, also
while the previous batch is still running; closed batches then wait their turn (``max_concurrent_batches``).
When requests arrive further apart than that wait, as they do behind this DAG's CPU stages, every batch holds one
request however long the queue behind it grows (seen in CI: twelve concurrent try-ons ran as twelve batches of
one). :class:`Batcher` only closes a batch when the previous one has finished, so everything that queued while
the model was busy runs together, and the wait for company can be short or zero without losing batching.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


@dataclass
class _Pending(Generic[ItemT, ResultT]):
    item: ItemT
    future: asyncio.Future[ResultT]


class Batcher(Generic[ItemT, ResultT]):
    """Stacks concurrent :meth:`submit` calls into calls of ``run_batch``, one call at a time.

    A batch closes when it holds ``max_batch_size`` items, or when the queue is empty and its first item has
    waited ``batch_wait_timeout_s``; the next batch is only formed once ``run_batch`` has returned. Callers that
    gave up (their ``submit`` was cancelled) before their batch closed are left out of it.

    Args:
        run_batch: async function from a list of items to the list of their results, same length and order.
            An exception it raises is raised to every caller of that batch; later batches run as usual.
        max_batch_size: most items per ``run_batch`` call. Can be changed between batches.
        batch_wait_timeout_s: how long a batch's first item waits for company when nothing else is queued.
            Can be changed between batches.
    """

    def __init__(self, run_batch: Callable[[list[ItemT]], Awaitable[list[ResultT]]], max_batch_size: int = 8,
                 batch_wait_timeout_s: float = 0.0):
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.batch_wait_timeout_s = batch_wait_timeout_s
        self._queue: asyncio.Queue[_Pending[ItemT, ResultT]] | None = None
        self._worker: asyncio.Task | None = None

    async def submit(self, item: ItemT) -> ResultT:
        """Queue ``item`` for the next batch that has room and return its result."""
        loop = asyncio.get_running_loop()
        if self._worker is None:  # created on the event loop that serves the callers
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._run_batches())
        future: asyncio.Future[ResultT] = loop.create_future()
        self._queue.put_nowait(_Pending(item, future))
        return await future

    async def _run_batches(self) -> None:
        while True:
            batch = [pending for pending in await self._next_batch() if not pending.future.done()]
            if not batch:
                continue
            try:
                results = await self.run_batch([pending.item for pending in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} items")
            except Exception as error:  # noqa: BLE001 - handed to the callers, whose requests failed
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
            else:
                for pending, result in zip(batch, results):
                    if not pending.future.done():
                        pending.future.set_result(result)

    async def _next_batch(self) -> list[_Pending[ItemT, ResultT]]:
        """Block for a first item, then take what is queued, waiting out the rest of the timeout if nothing is."""
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        deadline = loop.time() + self.batch_wait_timeout_s
        while len(batch) < self.max_batch_size:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            # asyncio.wait, unlike wait_for on Python 3.11, never drops an item that arrives as the time runs out.
            getter = loop.create_task(self._queue.get())
            await asyncio.wait({getter}, timeout=remaining)
            if not getter.done():
                getter.cancel()
                break
            batch.append(getter.result())
        return batch
