"""Stop a background task for sure.

On Python 3.11 a cancellation that lands while a Redis reply is arriving can be lost inside
`asyncio.wait_for` (fixed in 3.12); a loop that never ends would then never stop. Cancel again
until the task is done.
"""

import asyncio
import contextlib

RECANCEL_SECONDS = 0.1


async def stop_task(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=RECANCEL_SECONDS)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()
