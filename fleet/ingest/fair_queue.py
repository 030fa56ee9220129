"""Received messages waiting to be handled, taken in turn by sender so that no gateway can crowd out another.

A lane handles one message at a time. Taken in plain arrival order, a gateway flooding its alert topic would
put thousands of messages ahead of another gateway's panic alert; taken in turn, each sender with messages
waiting gets one handled per round, so a panic waits behind at most one message of each other sender. Only
the order of handling changes: acknowledgements still leave in receive order (MQTT 5 §4.6).
"""

from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from protocol.topics import sender_of


class Queued(Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def received_at(self) -> float: ...


_Message = TypeVar("_Message", bound=Queued)


class FairQueue(Generic[_Message]):
    def __init__(self, sender: Callable[[str], str] = sender_of) -> None:
        self._sender = sender
        self._queues: dict[str, deque[_Message]] = {}
        self._turns: deque[str] = deque()  # senders with messages waiting, in the order they are served
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, message: _Message) -> None:
        sender = self._sender(message.topic)
        queue = self._queues.get(sender)
        if queue is None:
            self._queues[sender] = deque((message,))
            self._turns.append(sender)
        else:
            queue.append(message)
        self._count += 1

    def popleft(self) -> _Message:
        """The next sender's oldest message; raises IndexError when none waits."""
        sender = self._turns.popleft()
        queue = self._queues[sender]
        message = queue.popleft()
        if queue:
            self._turns.append(sender)
        else:
            del self._queues[sender]
        self._count -= 1
        return message

    def clear(self) -> None:
        self._queues.clear()
        self._turns.clear()
        self._count = 0

    def oldest_received_at(self) -> float | None:
        """When the longest-waiting message arrived (each sender's queue is in arrival order)."""
        return min((queue[0].received_at for queue in self._queues.values()), default=None)
