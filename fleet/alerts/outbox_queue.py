"""The delivery side of the alert outbox (:mod:`fleet.alerts.outbox`): what is due, and what came of it.

A message is due when its time has come and no earlier message about the same alert for the same
channel is still pending: one alert's messages reach a channel in the order they were written (a
withdrawal never overtakes the opening of its case; "cancelled" never arrives before "raised").

The governance channel's case-opening message is mirrored on its alert (``delivery_state``,
``delivery_attempts``, ``last_error``, ``case_id``, ``delivered_at_ms``) so that an alert says where its
case stands without a join.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, case, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from fleet.access.audit import Change, record
from fleet.access.roles import Actor
from fleet.alerts.outbox import Action
from fleet.db.engine import database_errors
from fleet.db.schema import AlertRow, DeliveryState, OutboxRow
from fleet.errors import NotFoundError
from protocol.messages import Severity

logger = logging.getLogger(__name__)

_EARLIER = aliased(OutboxRow)
_SEVERITY_RANK: Final = case(
    {severity.value: rank for rank, severity in enumerate(Severity)}, value=AlertRow.severity, else_=len(Severity)
)
"""Critical first (:class:`~protocol.messages.Severity` lists the most severe first)."""


@dataclass(frozen=True, slots=True)
class Pending:
    """A due message with its alert as it is now."""

    message: OutboxRow
    alert: AlertRow


@dataclass(frozen=True, slots=True)
class ChannelCounts:
    channel: str
    pending: int
    delivered: int
    dead: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """What came of one attempt to deliver a message (:meth:`OutboxQueue.settle` records it)."""

    message_id: int
    state: DeliveryState
    error: str | None = None
    counts_attempt: bool = True
    retry_at_ms: int | None = None
    result: str | None = None
    delivered_ms: int | None = None

    @classmethod
    def delivered(cls, message_id: int, result: str | None, now_ms: int) -> "Outcome":
        """The channel took it; ``result`` is what it answered (the case id)."""
        return cls(message_id, DeliveryState.DELIVERED, result=result, delivered_ms=now_ms)

    @classmethod
    def failed(cls, message_id: int, error: str, retry_at_ms: int | None) -> "Outcome":
        """A failed attempt: retry at ``retry_at_ms``, or never (``None``: a dead letter)."""
        state = DeliveryState.PENDING if retry_at_ms is not None else DeliveryState.DEAD
        return cls(message_id, state, error, retry_at_ms=retry_at_ms)

    @classmethod
    def held(cls, message_id: int, error: str) -> "Outcome":
        """The channel refused the fleet itself (its URL, token or secret), not this message: it keeps its place
        in line and its attempts (settings being wrong must not use them up and dead-letter every message in
        turn), noting why it waits."""
        return cls(message_id, DeliveryState.PENDING, error, counts_attempt=False)

    @classmethod
    def skipped(cls, message_id: int, why: str) -> "Outcome":
        """Nothing left to deliver (a withdrawal of a case that was never opened)."""
        return cls(message_id, DeliveryState.SKIPPED, why, counts_attempt=False)

    def apply_to(self, message: OutboxRow) -> dict[str, Any]:
        """Change ``message`` accordingly; returns the values to mirror on its alert (if it opens a case)."""
        error = self.error[:512] if self.error is not None else None
        message.state, message.last_error = self.state, error
        message.attempts += int(self.counts_attempt)
        if self.retry_at_ms is not None:
            message.next_attempt_ms = self.retry_at_ms
        mirror: dict[str, Any] = {
            "id": message.alert_id,
            "delivery_state": self.state,
            "delivery_attempts": message.attempts,
            "last_error": error,
        }
        if self.state == DeliveryState.DELIVERED:
            message.delivered_ms, message.result = self.delivered_ms, self.result
            mirror |= {"case_id": self.result, "delivered_at_ms": self.delivered_ms}
        return mirror


class OutboxQueue:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def due(self, channel: str, now_ms: int, limit: int = 50) -> list[Pending]:
        """``channel``'s due messages, each after every earlier one about its alert: the most severe alerts' first
        (a panic's case does not wait behind a storm of offline gateways), then the longest due."""
        query = (
            select(OutboxRow, AlertRow)
            .join(AlertRow, AlertRow.id == OutboxRow.alert_id)
            .where(
                OutboxRow.channel == channel,
                OutboxRow.state == DeliveryState.PENDING,
                OutboxRow.next_attempt_ms <= now_ms,
                ~_blocked_by_earlier(),
            )
            .order_by(_SEVERITY_RANK, OutboxRow.next_attempt_ms, OutboxRow.id)
            .limit(limit)
        )
        with database_errors(f"find {channel} messages due"):
            async with self._sessions() as session:
                return [Pending(message, alert) for message, alert in (await session.execute(query)).all()]

    async def next_due_ms(self, channel: str) -> int | None:
        """When ``channel``'s next message falls due: the earliest among those first in their alert's line.

        A message waiting behind an earlier one about its alert does not count: it falls due only once that
        one is settled (which wakes the worker anyway), so counting its own, earlier time would have the
        worker look again at once, and again, while the earlier message waits out its backoff."""
        query = select(func.min(OutboxRow.next_attempt_ms)).where(
            OutboxRow.channel == channel, OutboxRow.state == DeliveryState.PENDING, ~_blocked_by_earlier()
        )
        with database_errors(f"find the next {channel} delivery time"):
            async with self._sessions() as session:
                return await session.scalar(query)

    async def settle(self, outcomes: Sequence["Outcome"]) -> None:
        """Record what came of a round of attempts, in one transaction (a message since deleted is passed over)."""
        if not outcomes:
            return
        query = select(OutboxRow).where(OutboxRow.id.in_([outcome.message_id for outcome in outcomes]))
        with database_errors(f"record what came of {len(outcomes)} outbox messages"):
            async with self._sessions.begin() as session:
                rows = {row.id: row for row in await session.scalars(query)}
                openings = []
                for outcome in outcomes:
                    row = rows.get(outcome.message_id)
                    if row is not None:
                        mirror = outcome.apply_to(row)
                        if row.action == Action.OPEN_CASE:
                            openings.append(mirror)
                if openings:
                    await session.execute(update(AlertRow), openings)

    async def find(
        self,
        *,
        channel: str | None = None,
        state: DeliveryState | None = None,
        alert_id: str | None = None,
        limit: int = 100,
    ) -> list[OutboxRow]:
        """Messages, newest first, narrowed by what is given."""
        query = select(OutboxRow).order_by(OutboxRow.id.desc()).limit(limit)
        for column, value in ((OutboxRow.channel, channel), (OutboxRow.state, state), (OutboxRow.alert_id, alert_id)):
            if value is not None:
                query = query.where(column == value)
        with database_errors("list outbox messages"):
            async with self._sessions() as session:
                return list((await session.scalars(query)).all())

    async def counts(self) -> list[ChannelCounts]:
        """Messages per channel and state."""
        query = select(OutboxRow.channel, OutboxRow.state, func.count()).group_by(OutboxRow.channel, OutboxRow.state)
        with database_errors("count outbox messages"):
            async with self._sessions() as session:
                rows = (await session.execute(query)).all()
        by_channel: dict[str, dict[str, int]] = {}
        for channel, state, count in rows:
            by_channel.setdefault(channel, {})[state] = count
        return [
            ChannelCounts(channel, states.get("pending", 0), states.get("delivered", 0), states.get("dead", 0))
            for channel, states in sorted(by_channel.items())
        ]

    async def retry(self, actor: Actor, message_ids: Sequence[int], now_ms: int) -> list[OutboxRow]:
        """``actor`` puts dead letters back in line, due now with their attempts counted afresh (audited); the
        messages put back, as they are now. Raises :class:`NotFoundError` naming an id that is not a dead letter.

        A case's opening put back takes the withdrawals skipped behind it along (they found no case to withdraw):
        a case opened late for an alert cancelled meanwhile is withdrawn again, in order."""
        with database_errors("retry dead letters"):
            async with self._sessions.begin() as session:
                rows = list((await session.scalars(select(OutboxRow).where(OutboxRow.id.in_(message_ids)))).all())
                found = {row.id: row for row in rows if row.state == DeliveryState.DEAD}
                missing = [message_id for message_id in message_ids if message_id not in found]
                if missing:
                    raise NotFoundError(f"no dead letter {missing[0]} in the outbox")
                for opening in [row for row in found.values() if row.action == Action.OPEN_CASE]:
                    for row in await session.scalars(_withdrawals_skipped_after(opening)):
                        found.setdefault(row.id, row)
                for row in sorted(found.values(), key=lambda row: row.id):
                    before = {"state": row.state, "attempts": row.attempts, "last_error": row.last_error}
                    row.state, row.attempts, row.next_attempt_ms = DeliveryState.PENDING, 0, now_ms
                    await _mirror_on_alert(session, row, delivery_state=DeliveryState.PENDING, delivery_attempts=0)
                    after = {"state": row.state, "attempts": 0}
                    record(session, actor, Change("delivery.retry", "delivery", str(row.id), before, after), now_ms)
        logger.info("outbox messages %s put back in line", sorted(found))
        return sorted(found.values(), key=lambda row: row.id)


def _withdrawals_skipped_after(opening: OutboxRow) -> Select[OutboxRow]:
    return select(OutboxRow).where(
        OutboxRow.alert_id == opening.alert_id,
        OutboxRow.channel == opening.channel,
        OutboxRow.action == Action.WITHDRAW_CASE,
        OutboxRow.state == DeliveryState.SKIPPED,
        OutboxRow.id > opening.id,
    )


def _blocked_by_earlier() -> ColumnElement[bool]:
    """An earlier message about the same alert for the same channel is still pending."""
    return exists().where(
        _EARLIER.alert_id == OutboxRow.alert_id,
        _EARLIER.channel == OutboxRow.channel,
        _EARLIER.state == DeliveryState.PENDING,
        _EARLIER.id < OutboxRow.id,
    )


async def _mirror_on_alert(session: AsyncSession, message: OutboxRow, **values: Any) -> None:
    """Copy what came of a case's opening onto its alert."""
    if message.action == Action.OPEN_CASE:
        await session.execute(update(AlertRow).where(AlertRow.id == message.alert_id).values(**values))
