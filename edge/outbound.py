"""The in-memory queue of messages waiting for the uplink.

Bounded: when full, the oldest telemetry goes first, then the oldest heartbeat, then the oldest
message of any other kind but alerts; an alert is dropped only when the queue holds nothing else.
Every drop is counted by channel.
"""

import asyncio
import logging
from collections import Counter, deque
from dataclasses import dataclass

from protocol.codec import encode
from protocol.messages import Message, channel_of
from protocol.topics import Channel, gateway_topic

logger = logging.getLogger(__name__)

_DROP_FIRST = (Channel.TELEMETRY, Channel.HEARTBEAT)


@dataclass(frozen=True, slots=True)
class Outgoing:
    channel: Channel
    topic: str
    payload: bytes
    qos: int
    retain: bool


def _qos_for(channel: Channel) -> int:
    return 0 if channel is Channel.HEARTBEAT else 1


class OutboundQueue:
    def __init__(self, village_id: str, gateway_id: str, limit: int) -> None:
        self._village_id = village_id
        self._gateway_id = gateway_id
        self._limit = limit
        self._items: deque[Outgoing] = deque()
        self._ready = asyncio.Event()
        self._settled = asyncio.Event()  # set when every queued item was published or dropped
        self._settled.set()
        self._unfinished = 0
        self.dropped: Counter[Channel] = Counter()

    def __len__(self) -> int:
        return len(self._items)

    def wrap(self, message: Message) -> Outgoing:
        channel = channel_of(message)
        topic = gateway_topic(self._village_id, self._gateway_id, channel)
        return Outgoing(channel, topic, encode(message), _qos_for(channel), channel.retained)

    def put(self, message: Message) -> None:
        if len(self._items) >= self._limit:
            self._drop_one()
        self._items.append(self.wrap(message))
        self._unfinished += 1
        self._settled.clear()
        self._ready.set()

    def requeue(self, item: Outgoing) -> None:
        """Put back an item whose publish failed, ahead of everything else."""
        self._items.appendleft(item)
        self._ready.set()

    def task_done(self) -> None:
        """Mark an item taken by :meth:`get` as published."""
        self._settle_one()

    async def join(self) -> None:
        """Wait until every queued item has been published or dropped."""
        await self._settled.wait()

    def _settle_one(self) -> None:
        self._unfinished -= 1
        if self._unfinished == 0:
            self._settled.set()

    async def get(self) -> Outgoing:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def _drop_one(self) -> None:
        for wanted in (*((c,) for c in _DROP_FIRST), tuple(c for c in Channel if c is not Channel.ALERT)):
            for index, item in enumerate(self._items):
                if item.channel in wanted:
                    del self._items[index]
                    self._count_drop(item.channel)
                    return
        self._count_drop(self._items.popleft().channel)

    def _count_drop(self, channel: Channel) -> None:
        self._settle_one()
        self.dropped[channel] += 1
        logger.warning("outbound queue full (%d): dropped a %s message", self._limit, channel)
