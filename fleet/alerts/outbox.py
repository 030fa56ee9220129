"""The alert outbox: what each channel is to be told about an alert, written with the step it follows.

Every step an alert takes (raised, escalated, acknowledged, cleared, cancelled, ...) is offered to each
configured channel's :class:`Route`, in the same transaction as the step itself: a route answers with
the :class:`Action` its channel takes for it (open the alert's case, withdraw it, notify people) or with
nothing. Each action becomes an :class:`~fleet.db.schema.OutboxRow` that the channel's worker
(:mod:`fleet.alerts.delivery`) delivers at least once; so nothing an alert went through is lost between
the database and a channel, whatever crashes in between.

A case is withdrawn only where one is being opened: a withdrawal follows its opening in the same
channel, never overtakes it (:mod:`fleet.alerts.outbox_queue` delivers one alert's messages for one
channel in order).
"""

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.alerts.lifecycle import Step
from fleet.db.schema import AlertRow, DeliveryState, OutboxRow
from protocol.messages import FleetAlertKind

RAISE: Final = "raise"
"""The step that opens an alert (a lifecycle record, not a :class:`~fleet.alerts.lifecycle.Step`)."""


class Action(StrEnum):
    OPEN_CASE = "open_case"
    WITHDRAW_CASE = "withdraw_case"
    NOTIFY = "notify"


ActionFor = Callable[[str, AlertRow], Action | None]
"""What a channel does when an alert takes a step (its name: a lifecycle step, raise or escalate)."""


@dataclass(frozen=True, slots=True)
class Route:
    """Which of an alert's steps one channel hears of, and as what."""

    channel: str
    action_for: ActionFor


_WITHDRAWN_BY: Final = frozenset({Step.CANCEL, Step.CLEAR})
_KEPT_LOCAL: Final = frozenset(
    {FleetAlertKind.DELIVERY_FAILED, FleetAlertKind.MESSAGES_DEAD_LETTERED, FleetAlertKind.INGEST_STUCK}
)
"""No case is opened for these: failing delivery or ingest is the fleet's own business, for its operators (and
the failing channel may be the one a case would take)."""


def case_route(channel: str) -> Route:
    """A governance platform: a case opened when an alert is raised, withdrawn when it is cancelled or cleared."""

    def action_for(step: str, alert: AlertRow) -> Action | None:
        if step == RAISE:
            return None if alert.kind in _KEPT_LOCAL else Action.OPEN_CASE
        return Action.WITHDRAW_CASE if step in _WITHDRAWN_BY else None

    return Route(channel, action_for)


def notify_route(channel: str, steps: Iterable[str]) -> Route:
    """People told of the ``steps`` they asked for (e.g. raise, escalate, cancel)."""
    wanted = frozenset(steps)

    def action_for(step: str, alert: AlertRow) -> Action | None:
        return Action.NOTIFY if step in wanted else None

    return Route(channel, action_for)


class Outbox:
    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self._routes = tuple(routes)
        names = [route.channel for route in self._routes]
        if len(set(names)) != len(names):
            raise ValueError(f"two routes for one channel: {names}")

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(route.channel for route in self._routes)

    async def follow(
        self,
        session: AsyncSession,
        alert: AlertRow,
        step: str,
        reason: str | None,
        now_ms: int,
        *,
        not_before_ms: int | None = None,
    ) -> list[OutboxRow]:
        """Queue, in ``session``'s transaction, what each channel is to be told of ``alert`` taking ``step``.

        A raise sets the alert's ``delivery_state``: pending while a case is to be opened, else unrouted.
        ``not_before_ms`` holds notifications to people back (quiet hours); cases are never held back."""
        queued = []
        for route in self._routes:
            action = route.action_for(step, alert)
            if action is Action.WITHDRAW_CASE and not await _opens_case(session, alert.id, route.channel):
                continue
            if action is None:
                continue
            due = now_ms if action is not Action.NOTIFY or not_before_ms is None else max(now_ms, not_before_ms)
            row = OutboxRow(
                alert_id=alert.id,
                channel=route.channel,
                action=action,
                step=step,
                reason=reason[:512] if reason else None,
                # A case's idempotency key is its alert's id (the platform's contract); anything else gets its own.
                key=alert.id if action is Action.OPEN_CASE else str(uuid.uuid4()),
                state=DeliveryState.PENDING,
                attempts=0,
                created_ms=now_ms,
                next_attempt_ms=due,
            )
            session.add(row)
            queued.append(row)
        if step == RAISE:
            opens = any(row.action == Action.OPEN_CASE for row in queued)
            alert.delivery_state = DeliveryState.PENDING if opens else DeliveryState.UNROUTED
        return queued


async def _opens_case(session: AsyncSession, alert_id: str, channel: str) -> bool:
    query = select(OutboxRow.id).where(
        OutboxRow.alert_id == alert_id, OutboxRow.channel == channel, OutboxRow.action == Action.OPEN_CASE
    )
    return await session.scalar(query.limit(1)) is not None
