"""Alerts the buffer could not store (a full disk), held in memory until the uplink publishes them.

Bounded: past ``limit`` the oldest is dropped and counted (``alerts_unbuffered_dropped``). Nothing
here survives a restart; it is the last resort behind a disk that refuses even an alert.
"""

import asyncio
import logging
from collections import deque
from typing import Final

from edge.faults import ALERTS_UNBUFFERED, ALERTS_UNBUFFERED_DROPPED, GatewayFaults
from edge.outgoing import Outgoing

logger = logging.getLogger(__name__)

DEFAULT_LIMIT: Final = 256


class UnbufferedAlerts:
    def __init__(self, faults: GatewayFaults, limit: int = DEFAULT_LIMIT) -> None:
        if limit <= 0:
            raise ValueError("limit must be positive")
        self._faults = faults
        self._items: deque[Outgoing] = deque(maxlen=limit)
        self._ready = asyncio.Event()

    def add(self, item: Outgoing) -> None:
        """Hold ``item`` for the uplink (the oldest goes if the queue is full)."""
        if len(self._items) == self._items.maxlen:
            self._faults.count(ALERTS_UNBUFFERED_DROPPED)
            logger.error("unbuffered alert queue full (%d): the oldest alert is dropped", len(self._items))
        self._items.append(item)
        self._faults.count(ALERTS_UNBUFFERED)
        self._ready.set()

    async def first(self) -> Outgoing:
        """The oldest alert waiting (waits for one); it stays queued until :meth:`sent`."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items[0]

    def sent(self, item: Outgoing) -> None:
        """The broker acknowledged ``item``: forget it."""
        if self._items and self._items[0] is item:
            self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)
