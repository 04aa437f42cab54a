"""engine.runtime.cancelled: a task that loses a cancellation (as nats-py's connect loop can, when
asyncio.wait_for swallows one in Python 3.11) is cancelled again until it ends."""
from __future__ import annotations

import asyncio

from engine.runtime import cancelled


async def test_a_task_that_swallows_cancellations_is_cancelled_until_it_ends() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed == 2:
                    raise
                swallowed += 1  # taken for a failed attempt: try again

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancelled(task), timeout=10)
    assert task.cancelled() and swallowed == 2


async def test_a_task_that_fails_as_it_is_cancelled_is_waited_for_and_its_error_taken() -> None:
    async def failing() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise ConnectionRefusedError("nothing listens") from None

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)
    await cancelled(task)
    assert task.done() and isinstance(task.exception(), ConnectionRefusedError)
