"""``ComputeThread``: the one thread a stage replica runs its model calls on.

Serve runs a deployment's synchronous methods on a pool of worker threads, and a call that lands on a thread
which has not computed before pays for it: glibc gives every thread its own allocator arena, so that thread's
first calls fault in fresh pages for every tensor (measured in the ParseWarp replica: 16,000 to 26,000 page
faults and 100-300 ms of kernel time per call for its first dozen calls, against none once warm). A replica's
model calls run one at a time anyway (one intra-op thread per replica; replicas are how a stage scales), so
each stage queues them on one long-lived thread and its event loop stays free to accept the next requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class ComputeThread:
    """A single worker thread; ``await compute.run(fn, *args)`` calls ``fn(*args)`` on it.

    Args:
        name: the thread's name (shown by py-spy and in thread dumps).
    """

    def __init__(self, name: str):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on this thread, after the calls queued before it; returns or raises its result."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, lambda: fn(*args, **kwargs))
