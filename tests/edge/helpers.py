"""Test doubles shared by the edge adapter tests: an injected clock and an ``emit`` collector."""

import asyncio
import threading
from collections.abc import Callable

from edge.adapters.base import Observation

LIVENESS_S = 10.0
"""How long a test waits for something that should happen (a liveness bound, not a timing check)."""


class FakeClock:
    """The injected epoch-ms clock; it only moves when a test moves it, and remembers who read it."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.reader_threads: set[int] = set()

    def __call__(self) -> int:
        self.reader_threads.add(threading.get_ident())
        return self.now_ms


class Collector:
    """An ``emit`` callback that lets a test wait for observations."""

    def __init__(self, liveness_s: float = LIVENESS_S) -> None:
        self.observations: list[Observation] = []
        self._arrived = asyncio.Event()
        self._liveness_s = liveness_s

    def __call__(self, observation: Observation) -> None:
        self.observations.append(observation)
        self._arrived.set()

    async def wait_until(self, condition: Callable[[list[Observation]], bool]) -> list[Observation]:
        async with asyncio.timeout(self._liveness_s):
            while not condition(self.observations):
                self._arrived.clear()
                await self._arrived.wait()
        return list(self.observations)

    async def wait_for(self, count: int) -> list[Observation]:
        """The first ``count`` observations, once they have arrived."""
        await self.wait_until(lambda observations: len(observations) >= count)
        return self.observations[:count]
