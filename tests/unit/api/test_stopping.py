"""stop_task ends a loop even when one cancellation is lost (as Python 3.11's wait_for can lose one)."""

import asyncio

from api.stopping import stop_task


async def test_a_loop_that_swallows_a_cancellation_still_stops() -> None:
    swallowed = 0

    async def loop() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_task(task), timeout=10)
    assert task.cancelled() and swallowed == 1


async def test_a_finished_task_or_none_is_left_alone() -> None:
    async def nothing() -> None:
        return None

    task = asyncio.create_task(nothing())
    await task
    await stop_task(task)
    await stop_task(None)
    assert task.done() and not task.cancelled()
