"""A simulated node's inputs: pins the firmware reads, switched like real contacts and reported like interrupts.

A mechanical contact does not switch cleanly: for a few milliseconds after it is pressed or
released it makes and breaks several times before it settles. :class:`ContactBounce` draws such a
burst from a seeded :class:`random.Random` (the same seed gives the same bursts, so a failing run can
be replayed); :class:`InputLine` plays it on a pin in real time and reports every edge as the pin's
interrupt would, so the firmware's own debouncer has to make one change of it. Outputs that switch
cleanly (a PIR's push-pull output) use no bounce.
"""

import asyncio
import random
from collections.abc import Callable
from typing import Final

DEFAULT_BOUNCES: Final = (1, 4)  # make-and-break pairs after the first edge, fewest and most
DEFAULT_BOUNCE_SPAN_MS: Final = 3.0  # a small tactile switch settles within a few ms


class SimulatedPin:
    """A digital input as ``machine.Pin`` has it: ``value()`` is 0 or 1."""

    def __init__(self, level: int) -> None:
        self.level = level

    def value(self) -> int:
        return self.level


class ContactBounce:
    """Bursts of edges a bouncing contact makes on its way to a new level."""

    def __init__(
        self,
        rng: random.Random,
        *,
        bounces: tuple[int, int] = DEFAULT_BOUNCES,
        span_ms: float = DEFAULT_BOUNCE_SPAN_MS,
    ) -> None:
        self._rng = rng
        self.bounces = bounces
        self.span_ms = span_ms

    def burst(self, level: int) -> list[tuple[float, int]]:
        """``(ms after the first edge, level)`` for each edge; the first and the last are at ``level``."""
        bounces = self._rng.randint(*self.bounces)
        times = sorted(self._rng.uniform(0.05, self.span_ms) for _ in range(2 * bounces))
        edges = [(0.0, level)]
        for index, after_ms in enumerate(times):
            edges.append((after_ms, 1 - level if index % 2 == 0 else level))
        return edges


class InputLine:
    """One input: a pin, how it bounces, and whom its interrupt calls (``interrupt(line)``).

    ``drive`` takes the pin to a level through a burst and returns once it has settled; the line's
    interrupt is called on every edge. Drives on one line are serialised, as one hand on a button is.
    """

    def __init__(
        self, pin: SimulatedPin, line: int, interrupt: Callable[[int], None], bounce: ContactBounce | None
    ) -> None:
        self.pin = pin
        self.line = line
        self._interrupt = interrupt
        self._bounce = bounce
        self._lock = asyncio.Lock()
        self.edges = 0

    async def drive(self, level: int) -> None:
        async with self._lock:
            if self.pin.level == level:
                return
            burst = self._bounce.burst(level) if self._bounce is not None else [(0.0, level)]
            loop = asyncio.get_running_loop()
            started = loop.time()
            for after_ms, edge_level in burst:
                delay_s = started + after_ms / 1000 - loop.time()
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
                if self.pin.level != edge_level:
                    self.pin.level = edge_level
                    self.edges += 1
                    self._interrupt(self.line)
