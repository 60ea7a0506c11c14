"""deployments.batching.Batcher and deployments.compute.ComputeThread on a plain asyncio event loop (the Serve
replica's loop in production)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from deployments.batching import Batcher
from deployments.compute import ComputeThread


class SlowDoubler:
    """A stand-in model: doubles each item, takes ``seconds`` per batch, records the batches it ran."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.batches: list[list[int]] = []

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(self.seconds)
        return [2 * item for item in items]


async def submit_spaced(batcher: Batcher, items: list[int], gap_s: float) -> list[int]:
    """Submit ``items`` one every ``gap_s`` seconds, all running concurrently; their results in order."""
    async def one(position: int, item: int) -> int:
        await asyncio.sleep(position * gap_s)
        return await batcher.submit(item)

    return await asyncio.gather(*(one(position, item) for position, item in enumerate(items)))


def test_requests_that_queue_while_a_batch_runs_form_the_next_batch():
    # Arrivals 30 ms apart with no wait for company: every batch would hold one request if batches closed on
    # arrival (Ray Serve 2.60's @serve.batch). Here the first runs alone and the rest queue behind it.
    model = SlowDoubler(seconds=0.3)
    results = asyncio.run(submit_spaced(Batcher(model, max_batch_size=8), list(range(6)), gap_s=0.03))
    assert results == [0, 2, 4, 6, 8, 10]
    assert model.batches == [[0], [1, 2, 3, 4, 5]]


def test_batches_never_exceed_max_batch_size_and_results_reach_their_callers():
    model = SlowDoubler(seconds=0.05)
    results = asyncio.run(submit_spaced(Batcher(model, max_batch_size=4), list(range(10)), gap_s=0.0))
    assert results == [2 * item for item in range(10)]
    assert [len(batch) for batch in model.batches] == [4, 4, 2]
    assert sorted(item for batch in model.batches for item in batch) == list(range(10))


def test_a_lone_request_waits_for_company_only_up_to_the_timeout():
    model = SlowDoubler(seconds=0.01)
    batcher = Batcher(model, max_batch_size=8, batch_wait_timeout_s=0.5)
    assert asyncio.run(submit_spaced(batcher, [1, 2], gap_s=0.1)) == [2, 4]
    assert model.batches == [[1, 2]]  # the second arrived within the first one's wait

    model = SlowDoubler(seconds=0.01)
    batcher = Batcher(model, max_batch_size=8, batch_wait_timeout_s=0.05)
    assert asyncio.run(submit_spaced(batcher, [1, 2], gap_s=0.3)) == [2, 4]
    assert model.batches == [[1], [2]]


def test_settings_changed_between_batches_apply_to_the_next_one():
    model = SlowDoubler(seconds=0.1)
    batcher = Batcher(model, max_batch_size=2)

    async def scenario() -> list[int]:
        first = asyncio.ensure_future(submit_spaced(batcher, list(range(5)), gap_s=0.0))
        await asyncio.sleep(0.05)  # the first batch of 2 is running
        batcher.max_batch_size = 8
        return await first

    assert asyncio.run(scenario()) == [0, 2, 4, 6, 8]
    assert [len(batch) for batch in model.batches] == [2, 3]


def test_a_failing_batch_fails_its_callers_and_the_batcher_goes_on():
    calls = []

    async def run_batch(items: list[int]) -> list[int]:
        calls.append(list(items))
        if 13 in items:
            raise ValueError("unlucky batch")
        return items

    async def scenario() -> tuple[list, int]:
        batcher = Batcher(run_batch, max_batch_size=8)
        outcomes = await asyncio.gather(*(batcher.submit(item) for item in (13, 14)), return_exceptions=True)
        return outcomes, await batcher.submit(15)

    outcomes, later = asyncio.run(scenario())
    assert [type(outcome) for outcome in outcomes] == [ValueError, ValueError]
    assert later == 15 and calls == [[13, 14], [15]]


def test_a_batch_function_that_loses_results_is_an_error_for_its_callers():
    async def run_batch(items: list[int]) -> list[int]:
        return items[:1]

    async def scenario() -> list:
        batcher = Batcher(run_batch, max_batch_size=8)
        return await asyncio.gather(*(batcher.submit(item) for item in (1, 2)), return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert all(isinstance(outcome, RuntimeError) and "1 results for 2 items" in str(outcome) for outcome in outcomes)


def test_a_caller_that_gave_up_is_left_out_of_its_batch():
    model = SlowDoubler(seconds=0.2)
    batcher = Batcher(model, max_batch_size=8)

    async def scenario() -> list[int]:
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.05)  # batch [1] runs; 2 and 3 queue behind it
        impatient = asyncio.ensure_future(batcher.submit(2))
        patient = asyncio.ensure_future(batcher.submit(3))
        await asyncio.sleep(0.05)
        impatient.cancel()
        with pytest.raises(asyncio.CancelledError):
            await impatient
        return [await first, await patient]

    assert asyncio.run(scenario()) == [2, 6]
    assert model.batches == [[1], [3]]


def test_a_compute_thread_runs_every_call_on_one_thread_in_order_and_raises_their_errors():
    compute = ComputeThread("test")
    ran: list[tuple[int, int]] = []  # (call, thread id)

    def work(call: int) -> int:
        time.sleep(0.01 * (5 - call))  # earlier calls take longer: a pool of threads would reorder them
        ran.append((call, threading.get_ident()))
        if call == 3:
            raise ValueError("call 3 failed")
        return call * 10

    async def main():
        return await asyncio.gather(*(compute.run(work, call) for call in range(5)), return_exceptions=True)

    results = asyncio.run(main())
    assert results[:3] == [0, 10, 20] and results[4] == 40
    assert isinstance(results[3], ValueError) and str(results[3]) == "call 3 failed"
    assert [call for call, _ in ran] == [0, 1, 2, 3, 4]
    assert len({thread for _, thread in ran}) == 1 and ran[0][1] != threading.get_ident()
