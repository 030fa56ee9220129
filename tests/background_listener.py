"""A test's MQTT listener that runs in the background for the length of an ``async with`` block."""

import asyncio
import contextlib
from typing import Self


class BackgroundListener:
    """Runs :meth:`listen` as a task from entering the block until leaving it; entering returns once
    ``listen`` has set :attr:`subscribed` (at most 10 s), so nothing published after it is missed."""

    def __init__(self) -> None:
        self.subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def listen(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self.listen())
        await asyncio.wait_for(self.subscribed.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
