"""What a channel is: something that delivers one outbox message at a time, idempotently by its key."""

from dataclasses import dataclass
from typing import Protocol

from fleet.alerts.outbox import Action, Route
from fleet.alerts.record import AlertRecord


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox message as its channel is to send it."""

    key: str
    """The idempotency key: the same on every attempt, so the receiver can drop a repeat."""
    action: Action
    step: str
    """The alert's step this message follows (raise, escalate, acknowledge, cancel, ...)."""
    reason: str | None
    queued_at_ms: int
    attempt: int
    """1 on the first attempt."""
    alert: AlertRecord
    """The alert as it is now (its state may be past ``step``)."""


class Channel(Protocol):
    """Delivers messages about alerts to one receiver.

    :meth:`deliver` raises :class:`~fleet.errors.ChannelUnavailableError` when the receiver cannot take it now
    (the worker retries with backoff), :class:`~fleet.errors.ChannelSettingsError` when the receiver refuses the
    fleet itself (retried too: someone must fix the settings), :class:`~fleet.errors.ChannelRejectedError` when it
    refuses this message for good (a dead letter at once), :class:`~fleet.errors.NothingToSendError` when the
    message has nothing left to do."""

    @property
    def name(self) -> str:
        """The channel's name in the outbox and in settings."""
        ...

    @property
    def route(self) -> Route:
        """Which of an alert's steps it hears of, and as what (:func:`~fleet.alerts.outbox.case_route`, ...)."""
        ...

    async def deliver(self, delivery: Delivery) -> str | None:
        """Send it; what the receiver answered that is worth keeping (a case id), if anything."""
        ...

    async def close(self) -> None: ...
