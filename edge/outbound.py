"""The in-memory queue of messages waiting for the uplink.

Bounded: when full, the message that matters least goes: telemetry first, then heartbeats, then any
other kind, alerts last; among equals the oldest. A new message that matters less than everything
queued is itself refused. An alert is lost only when the queue holds nothing but alerts, and every
drop is counted by channel.
"""

import asyncio
import logging
from collections import Counter, deque
from dataclasses import dataclass

from protocol.codec import encode
from protocol.messages import Message, channel_of
from protocol.topics import Channel, gateway_topic

logger = logging.getLogger(__name__)

_PRIORITY = {Channel.TELEMETRY: 0, Channel.HEARTBEAT: 1, Channel.ALERT: 3}
_DEFAULT_PRIORITY = 2


def _priority(channel: Channel) -> int:
    return _PRIORITY.get(channel, _DEFAULT_PRIORITY)


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
        item = self.wrap(message)
        if len(self._items) >= self._limit and not self._make_room_for(item):
            self.dropped[item.channel] += 1
            logger.warning("outbound queue full (%d): refused a new %s message", self._limit, item.channel)
            return
        self._items.append(item)
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

    def _make_room_for(self, item: Outgoing) -> bool:
        """Drop the oldest of the least important queued messages, unless ``item`` matters less."""
        victim = min(range(len(self._items)), key=lambda index: _priority(self._items[index].channel))
        if _priority(item.channel) < _priority(self._items[victim].channel):
            return False
        channel = self._items[victim].channel
        del self._items[victim]
        self._count_drop(channel)
        return True

    def _count_drop(self, channel: Channel) -> None:
        self._settle_one()
        self.dropped[channel] += 1
        logger.warning("outbound queue full (%d): dropped a %s message", self._limit, channel)
