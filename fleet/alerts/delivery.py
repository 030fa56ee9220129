"""Delivers one channel's outbox (:mod:`fleet.alerts.outbox`): at least once, in order per alert, never lost.

Each message carries its idempotency key on every attempt, so a retry after a lost answer cannot open
a second case. A failed message waits ``retry_base_s`` doubled per failure (up to ``retry_cap_s``) and
becomes a dead letter after ``max_attempts``, or at once when the channel refuses its content. A dead
letter stays visible (``/deliveries``), can be put back in line, and is reported through ``on_dead``
(the fleet raises a ``delivery_failed`` alert for it).

While the channel cannot take anything (unreachable, or refusing the fleet's URL, token or secret),
the worker stops the round at the first failure and pauses as a whole with its own backoff rather
than try every message in turn; ``blocked`` says why. A refusal of the fleet itself is no fault of the
message: it keeps its place and its attempts (wrong settings must not dead-letter every message in turn),
so every message stays pending until someone fixes the settings.
"""

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

from fleet.alerts.channels.base import Channel, Delivery
from fleet.alerts.outbox import Action
from fleet.alerts.outbox_queue import OutboxQueue, Outcome, Pending
from fleet.alerts.record import AlertRecord
from fleet.errors import (
    ChannelRejectedError,
    ChannelSettingsError,
    ChannelUnavailableError,
    NothingToSendError,
    TransientError,
)
from fleet.settings import DeliverySettings
from protocol.reconnect import Backoff

logger = logging.getLogger(__name__)

_TAKEN_REMEMBERED: Final = 10_000
"""How many of the latest messages taken a worker remembers (to ignore a late offer of one)."""
_IDLE_POLL_S: Final = 5.0
"""With nothing due, look again this often: a dead letter put back in line, or a message written by another process."""

OnDead = Callable[[Pending, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    base_s: float
    cap_s: float

    @classmethod
    def from_settings(cls, settings: DeliverySettings) -> "RetryPolicy":
        return cls(settings.max_attempts, settings.retry_base_s, settings.retry_cap_s)

    def delay_ms(self, attempt: int) -> int:
        """The wait after failed attempt number ``attempt`` (1 for the first)."""
        return round(min(self.cap_s, self.base_s * 2.0 ** (attempt - 1)) * 1000)


async def _nothing_to_report(pending: Pending, error: str) -> None:
    return None


class DeliveryWorker:
    def __init__(
        self,
        queue: OutboxQueue,
        channel: Channel,
        clock: Callable[[], int],
        retry: RetryPolicy,
        *,
        on_dead: OnDead = _nothing_to_report,
        batch: int = 100,
        in_flight: int = 1,
        pause: Backoff | None = None,
    ) -> None:
        self._queue = queue
        self.channel = channel
        self._clock = clock
        self._retry = retry
        self._on_dead = on_dead
        self._batch = batch
        self._in_flight = in_flight
        self._pause = pause or Backoff(base_s=1.0, cap_s=60.0)
        self._wake = asyncio.Event()
        self._offered: dict[int, Pending] = {}
        self._taken: OrderedDict[int, None] = OrderedDict()  # the latest message ids taken, oldest first
        self.delivered = 0
        self.dead = 0
        self.blocked: str | None = None
        """Why the channel takes nothing now (down, settings wrong); None while it does."""

    def wake(self) -> None:
        """A message was queued: deliver it now rather than at the next poll."""
        self._wake.set()

    def offer(self, due: Sequence[Pending]) -> None:
        """Messages just committed and due now (a new alert's case): the next round sends them without looking
        them up, which is the outbox query's time off a panic's way to the platform. A message the worker took
        from the outbox already is not sent again."""
        for pending in due:
            if pending.message.channel == self.channel.name and pending.message.id not in self._taken:
                self._offered[pending.message.id] = pending
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                flowing, full = await self._deliver_due()
                next_due = await self._queue.next_due_ms(self.channel.name)
            except TransientError as exc:  # the database, or the channel as a whole
                logger.warning("%s delivery paused: %s", self.channel.name, exc)
                self.blocked = str(exc)
                flowing, full, next_due = False, False, None
            if not flowing:
                await asyncio.sleep(self._pause.next_delay())
                continue
            self._pause.reset()
            if full:
                continue  # more may be due already
            wait_s = _IDLE_POLL_S if next_due is None else max(0.0, (next_due - self._clock()) / 1000)
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that arrives as the
            # wake-up does, and the worker would then outlive the fleet's shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(wait_s, _IDLE_POLL_S)):
                    await self._wake.wait()

    async def _deliver_due(self) -> tuple[bool, bool]:
        """Deliver what is due, most urgent first: whether the channel took messages, and whether the batch was full.

        Up to ``in_flight`` messages are sent at once and the outcomes of the round recorded in one transaction.
        Each due message is the oldest pending one of its alert (:meth:`OutboxQueue.due`), so sending several at
        once never reorders one alert's messages. Once the channel as a whole fails, no further message of the
        round is tried; those left untried stay due as they were."""
        due = await self._take_due()
        window = asyncio.Semaphore(self._in_flight)
        refused = asyncio.Event()

        async def attempt(pending: Pending) -> _Attempt | None:
            async with window:
                if refused.is_set():
                    return None
                tried = await self._attempt(pending)
                if not tried.flowing:
                    refused.set()
                return tried

        attempts = [each for each in await asyncio.gather(*(attempt(p) for p in due)) if each is not None]
        await self._queue.settle([each.outcome for each in attempts])
        for each in attempts:
            if each.dead_letter is not None:
                await self._on_dead(each.pending, each.dead_letter)
        return not refused.is_set(), bool(self._offered) or len(due) == self._batch

    async def _take_due(self) -> list[Pending]:
        """The messages offered, if any (the outbox is looked at again right after), else the outbox's due ones;
        each remembered as taken, so that an offer arriving after the outbox query found it sends nothing twice."""
        if self._offered:
            due = [pending for pending in self._offered.values() if pending.message.id not in self._taken]
            self._offered.clear()
        else:
            due = await self._queue.due(self.channel.name, self._clock(), self._batch)
        for pending in due:
            self._offered.pop(pending.message.id, None)
            self._taken[pending.message.id] = None
            if len(self._taken) > _TAKEN_REMEMBERED:
                self._taken.popitem(last=False)
        return due

    async def _attempt(self, pending: Pending) -> "_Attempt":
        """Try one message: what came of it, and whether the channel as a whole can take messages."""
        message = pending.message
        attempt = message.attempts + 1
        what = f"{message.action} ({message.step}) of alert {message.alert_id}"
        try:
            result = await self.channel.deliver(_delivery_of(pending, attempt))
        except NothingToSendError as exc:
            logger.info("%s: %s skipped: %s", self.channel.name, what, exc)
            return _Attempt(pending, Outcome.skipped(message.id, str(exc)))
        except ChannelRejectedError as exc:
            return self._dead_letter(pending, str(exc))
        except ChannelSettingsError as exc:
            self.blocked = str(exc)
            logger.error("%s refuses the fleet: %s", self.channel.name, exc)
            return _Attempt(pending, Outcome.held(message.id, str(exc)), flowing=False)
        except ChannelUnavailableError as exc:
            self.blocked = str(exc)
            logger.warning("%s: %s not delivered (attempt %d): %s", self.channel.name, what, attempt, exc)
            if attempt >= self._retry.max_attempts:
                return self._dead_letter(pending, f"{exc} (after {attempt} attempts)", flowing=False)
            retry_at = self._clock() + self._retry.delay_ms(attempt)
            return _Attempt(pending, Outcome.failed(message.id, str(exc), retry_at), flowing=False)
        self.delivered += 1
        self.blocked = None
        logger.info("%s: %s delivered%s", self.channel.name, what, f" ({result})" if result else "")
        return _Attempt(pending, Outcome.delivered(message.id, result, self._clock()))

    def _dead_letter(self, pending: Pending, error: str, *, flowing: bool = True) -> "_Attempt":
        self.dead += 1
        message = pending.message
        logger.error("%s: %s of alert %s dead-lettered: %s", self.channel.name, message.action, message.alert_id, error)
        return _Attempt(pending, Outcome.failed(message.id, error, None), flowing=flowing, dead_letter=error)


@dataclass(frozen=True, slots=True)
class _Attempt:
    pending: Pending
    outcome: Outcome
    flowing: bool = True
    """False when the channel as a whole could not take the message (down, or refusing the fleet)."""
    dead_letter: str | None = None
    """Why the message became a dead letter, if it did."""


def _delivery_of(pending: Pending, attempt: int) -> Delivery:
    """The message as its channel is to send it; :class:`ChannelRejectedError` for an alert row the contract cannot
    carry (a kind a newer fleet wrote, say): no attempt can change it, so it is a dead letter."""
    message = pending.message
    try:
        alert = AlertRecord.of(pending.alert)
    except ValueError as exc:
        raise ChannelRejectedError(str(exc)) from exc
    return Delivery(
        key=message.key,
        action=Action(message.action),
        step=message.step,
        reason=message.reason,
        queued_at_ms=message.created_ms,
        attempt=attempt,
        alert=alert,
    )
