"""Stores alerts and moves them along their lifecycle by the fleet's own hand (escalation, clearing).

An alert is written once (its event id is the primary key, so a redelivered message is a no-op), at the
village level in state ``raised``, with its first escalation deadline (from its village's rules,
:mod:`fleet.alerts.rules`, counted from the earlier of its source time and its receipt; a source time outside
the window of :mod:`fleet.alerts.source_time` is replaced by the receipt and noted) and its ``raise`` step,
which queues its case and notifications in the outbox (:func:`fleet.alerts.history.record_step`), all in one
transaction. A repeat of a condition that has an open alert counts on it instead (:mod:`fleet.alerts.correlation`).
:meth:`AlertStore.escalate_due` and :meth:`AlertStore.clear_due` are the timers' queries.
"""

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import func, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.correlation import CLEARED_BY, condition_key
from fleet.alerts.filters import AlertFilter
from fleet.alerts.history import ESCALATE, FLEET_ACTOR, NOTE, RAISE, record_step, transition_of
from fleet.alerts.kinds import AnyAlertKind, kind_of
from fleet.alerts.lifecycle import Step, after, allowed_steps, next_level
from fleet.alerts.new_alert import NewAlert
from fleet.alerts.outbox import Outbox
from fleet.alerts.outbox_queue import Pending
from fleet.alerts.rules.model import AlertRules, RateLimit, RulesFor, same_rules_everywhere
from fleet.alerts.source_time import DEFAULT_SOURCE_WINDOW, SourceClock
from fleet.db.engine import database_errors
from fleet.db.in_lists import IN_LIST_SIZE, in_chunks
from fleet.db.schema import AlertRepeatRow, AlertRow, DeliveryState
from fleet.errors import DataIntegrityError
from protocol.clock import SourceWindow
from protocol.messages import Alert, DeviceEvent, Severity
from protocol.notifications import AlertLevel, AlertState

_DEDUPLICATED: Final = frozenset({AlertState.RAISED, AlertState.ACKNOWLEDGED, AlertState.DISPATCHED})
"""An alert in these states takes its condition's repeats; after it, a new alert opens a new case."""
_NEWEST: Final = AlertFilter()
"""No filter: the newest alerts."""
_SAME_RULES: Final = same_rules_everywhere()
_CLEARABLE: Final = frozenset(state for state in AlertState if Step.CLEAR in allowed_steps(state))

logger = logging.getLogger(__name__)


class AlertStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], int],
        rules: RulesFor = _SAME_RULES,
        *,
        outbox: Outbox | None = None,
        on_queued: Callable[[Sequence[Pending]], None] = lambda due: None,
        source_window: SourceWindow = DEFAULT_SOURCE_WINDOW,
    ) -> None:
        """``on_queued`` is handed the messages each new alert queued that are due at once (its case), once they
        are committed: the channels' workers send them without looking them up
        (:meth:`fleet.alerts.delivery.DeliveryWorker.offer`). An alert's source time is believed within
        ``source_window`` of the clock (:func:`fleet.alerts.source_time.source_window_of` the settings)."""
        self._sessions = sessions
        self._on_queued = on_queued
        self._clock = clock
        self._rules = rules
        self._outbox = outbox or Outbox()
        self.source_clock = SourceClock(source_window)
        self.disabled = 0
        """Alerts not opened since start because their village's rules turn their kind off."""
        self.rate_limited = 0
        """Alerts counted on an open one since start because their kind's rate limit was reached."""

    async def record(self, village_id: str, alert: Alert) -> bool:
        """Store an alert a gateway raised (see :meth:`open`)."""
        return await self.open(NewAlert.from_gateway(village_id, alert))

    async def open(self, alert: NewAlert) -> bool:
        """Store a new alert and queue its case and notifications, by its village's rules; False when it opens
        nothing new: this alert id was stored before, its condition already has an open alert (which counts the
        repeat), its kind's rate limit is reached (counted the same way), or its rules turn its kind off."""
        try:
            return await self.open_many([alert]) == 1
        except DataIntegrityError:
            if await self.get(alert.event_id) is None:
                raise  # not a repeat: the alert names something the registry does not hold
            return False

    async def open_many(self, alerts: Sequence[NewAlert]) -> int:
        """:meth:`open` for many alerts in one transaction (a storm of the fleet's own alerts); how many opened.

        What the alerts need to know is read in a few queries for the whole batch (which are stored already,
        which conditions have an open alert), not per alert; an alert later in the batch sees those opened
        earlier in it (a condition raised twice in one batch opens one alert)."""
        now = self._clock()
        dated = [self.source_clock.date(alert, now) for alert in alerts]
        opened: list[tuple[AlertRow, NewAlert, str | None]] = []
        due_now: list[Pending] = []
        with database_errors(f"store {len(alerts)} alerts"):
            async with self._sessions.begin() as session:
                batch = await _Batch.read(session, alerts)
                for each in dated:
                    row = await self._open_in(session, batch, each.alert, now)
                    if row is not None:
                        opened.append((row, each.alert, each.skew_note))
                for row, alert, skew_note in opened:
                    quiet = self._rules(row.village_id).notifications_held_until_ms(now, Severity(row.severity))
                    queued = await record_step(
                        session,
                        self._outbox,
                        row,
                        RAISE,
                        AlertState.RAISED,
                        alert.raised_by,
                        alert.summary,
                        now,
                        not_before_ms=quiet,
                    )
                    if skew_note is not None:
                        session.add(transition_of(row, NOTE, AlertState.RAISED, FLEET_ACTOR, skew_note, now))
                    due_now += (Pending(message, row) for message in queued if message.next_attempt_ms <= now)
        self._on_queued(due_now)
        for row, _, _ in opened:
            logger.info("alert %s %s (%s) from %s/%s", row.id, row.kind, row.severity, row.gateway_id, row.device_id)
        return len(opened)

    async def _open_in(self, session: AsyncSession, batch: "_Batch", alert: NewAlert, now: int) -> AlertRow | None:
        """Add ``alert``'s row to ``session`` and return it, or count it on its condition's open alert (None)."""
        rules = self._rules(alert.village_id)
        rule = rules.rule(alert.kind)
        if not rule.enabled:
            self.disabled += 1
            logger.debug("alert %s: %s alerts are off in %s", alert.event_id, alert.kind, alert.village_id)
            return None
        event_id = alert.event_id
        if event_id in batch.stored:
            logger.debug("alert %s already stored", event_id)
            return None
        batch.stored.add(event_id)
        key = condition_key(alert.gateway_id, alert.device_id, alert.kind)
        open_alert = batch.open_by_condition.get(key)
        if open_alert is None and rule.rate_limit is not None:
            open_alert = await self._over_rate_limit(session, alert, rule.rate_limit, now)
            self.rate_limited += open_alert is not None
        if open_alert is not None:
            open_alert.occurrences += 1
            open_alert.last_seen_ms = max(open_alert.last_seen_ms, alert.raised_at_ms)
            open_alert.clear_at_ms = None  # back before its clear: flapping, one alert
            session.add(
                AlertRepeatRow(
                    event_id=event_id, alert_id=open_alert.id, raised_at_ms=alert.raised_at_ms, received_at_ms=now
                )
            )
            logger.info("alert %s repeats %s (%d times)", event_id, open_alert.id, open_alert.occurrences)
            return None
        row = self._new_row(alert, key, rules, now)
        session.add(row)
        batch.open_by_condition[key] = row
        return row

    @staticmethod
    async def _over_rate_limit(session: AsyncSession, alert: NewAlert, limit: RateLimit, now: int) -> AlertRow | None:
        """The newest open alert of ``alert``'s kind in its village if the kind's rate limit is reached there."""
        same_kind = (AlertRow.village_id == alert.village_id, AlertRow.kind == alert.kind.value)
        recent = await session.scalar(
            select(func.count())
            .select_from(AlertRow)
            .where(*same_kind, AlertRow.received_at_ms >= now - round(limit.per_s * 1000))
        )
        if (recent or 0) < limit.max_alerts:
            return None
        return await session.scalar(
            select(AlertRow)
            .where(*same_kind, AlertRow.state.in_(_DEDUPLICATED))
            .order_by(AlertRow.received_at_ms.desc())
            .limit(1)
        )

    @staticmethod
    def _new_row(alert: NewAlert, key: str, rules: AlertRules, now: int) -> AlertRow:
        severity = rules.severity_of(alert.kind, alert.severity)
        return AlertRow(
            id=alert.event_id,
            gateway_id=alert.gateway_id,
            village_id=alert.village_id,
            device_id=alert.device_id,
            grid_id=alert.grid_id,
            kind=alert.kind.value,
            severity=severity.value,
            summary=alert.summary,
            evidence=alert.evidence,
            seq=alert.seq,
            raised_at_ms=alert.raised_at_ms,
            received_at_ms=now,
            delivery_state=DeliveryState.UNROUTED,
            delivery_attempts=0,
            state=AlertState.RAISED,
            level=AlertLevel.VILLAGE,
            state_changed_ms=now,
            escalate_at_ms=rules.escalates_at_ms(severity, AlertLevel.VILLAGE, min(alert.raised_at_ms, now)),
            condition_key=key,
            occurrences=1,
            last_seen_ms=alert.raised_at_ms,
        )

    async def condition_ended(self, event: DeviceEvent) -> int:
        """The gateway reports a condition over (a device back online, a door closed); see :meth:`end_condition`."""
        kinds = CLEARED_BY.get(event.kind, frozenset())
        return await self.end_condition(event.gateway_id, event.device_id, kinds, event.kind)

    async def end_condition(self, gateway_id: str, device_id: str, kinds: Iterable[AnyAlertKind], why: str) -> int:
        """The conditions ``kinds`` of one device are over (see :meth:`end_conditions`)."""
        return await self.end_conditions({condition_key(gateway_id, device_id, kind): why for kind in kinds})

    async def end_conditions(self, ended: Mapping[str, str]) -> int:
        """The conditions (by key, each with why it is over) are over: their open alerts that nobody acts on
        yet clear after their hold unless the condition comes back, in one transaction; how many will."""
        if not ended:
            return 0
        now = self._clock()
        query = select(AlertRow).where(AlertRow.condition_key.in_(list(ended)), AlertRow.state.in_(_DEDUPLICATED))
        with database_errors(f"note that {len(ended)} conditions ended"):
            async with self._sessions.begin() as session:
                rows = list((await session.scalars(query)).all())
                for row in rows:
                    if Step.CLEAR not in allowed_steps(AlertState(row.state)):
                        why = f"condition ended ({ended[row.condition_key]})"
                        session.add(transition_of(row, NOTE, row.state, FLEET_ACTOR, why, now))
                    elif row.clear_at_ms is None:
                        row.clear_at_ms = now + self._rules(row.village_id).clear_hold_ms(kind_of(row.kind))
        return sum(1 for row in rows if row.clear_at_ms is not None)

    async def clear_due(self, now_ms: int, limit: int) -> int:
        """Clear every alert whose condition stayed away past its hold-off (at most ``limit``); how many."""
        query = (
            select(AlertRow)
            .where(AlertRow.state.in_(_CLEARABLE), AlertRow.clear_at_ms <= now_ms)
            .order_by(AlertRow.clear_at_ms)
            .limit(limit)
        )
        with database_errors("clear alerts whose condition ended"):
            async with self._sessions.begin() as session:
                rows = list((await session.scalars(query)).all())
                for row in rows:
                    state = after(AlertState(row.state), Step.CLEAR)
                    why = "the condition ended and stayed away"
                    await record_step(session, self._outbox, row, Step.CLEAR, state, FLEET_ACTOR, why, now_ms)
                    row.state, row.state_changed_ms = state, now_ms
                    row.clear_at_ms = row.escalate_at_ms = None
        for row in rows:
            logger.info("alert %s (%s on %s) cleared", row.id, row.kind, row.device_id)
        return len(rows)

    async def escalate_due(self, now_ms: int, limit: int) -> int:
        """Move up one level every raised alert whose deadline passed (at most ``limit``, earliest first),
        each with its next deadline and an ``escalate`` transition, in one transaction; how many."""
        query = (
            select(AlertRow)
            .where(AlertRow.state == AlertState.RAISED, AlertRow.escalate_at_ms <= now_ms)
            .order_by(AlertRow.escalate_at_ms)
            .limit(limit)
        )
        with database_errors("escalate overdue alerts"):
            async with self._sessions.begin() as session:
                rows = list((await session.scalars(query)).all())
                for row in rows:
                    level = next_level(AlertLevel(row.level)) or AlertLevel.COUNTY
                    overdue_s = (now_ms - (row.escalate_at_ms or now_ms)) / 1000
                    rules = self._rules(row.village_id)
                    severity = Severity(row.severity)
                    row.level = level
                    row.escalate_at_ms = rules.escalates_at_ms(severity, level, now_ms)
                    reason = f"not acknowledged in time ({overdue_s:.1f} s past the deadline)"
                    quiet = rules.notifications_held_until_ms(now_ms, severity)
                    await record_step(
                        session,
                        self._outbox,
                        row,
                        ESCALATE,
                        row.state,
                        FLEET_ACTOR,
                        reason,
                        now_ms,
                        not_before_ms=quiet,
                    )
        for row in rows:
            logger.warning("alert %s (%s, %s) escalated to the %s", row.id, row.kind, row.severity, row.level)
        return len(rows)

    async def next_deadline_ms(self) -> int | None:
        """The earliest escalation or clear still to apply, if any."""
        escalation = select(func.min(AlertRow.escalate_at_ms)).where(AlertRow.state == AlertState.RAISED)
        clearing = select(func.min(AlertRow.clear_at_ms)).where(AlertRow.state.in_(_CLEARABLE))
        with database_errors("find the next alert deadline"):
            async with self._sessions() as session:
                deadlines = [await session.scalar(escalation), await session.scalar(clearing)]
        return min((deadline for deadline in deadlines if deadline is not None), default=None)

    async def list(self, where: AlertFilter = _NEWEST) -> list[AlertRow]:
        """The alerts ``where`` selects, newest first."""
        with database_errors("list alerts"):
            async with self._sessions() as session:
                return list((await session.scalars(where.query())).all())

    async def get(self, alert_id: str) -> AlertRow | None:
        with database_errors(f"read alert {alert_id}"):
            async with self._sessions() as session:
                return await session.get(AlertRow, alert_id)


@dataclass(slots=True)
class _Batch:
    """What :meth:`AlertStore.open_many` knows about a batch of alerts, read once for all of them."""

    stored: set[str]
    """Event ids stored already (as an alert, or as a repeat counted on one)."""
    open_by_condition: dict[str, AlertRow]
    """The newest open alert of each condition in the batch, if any."""

    @classmethod
    async def read(cls, session: AsyncSession, alerts: Sequence[NewAlert]) -> "_Batch":
        ids = sorted({alert.event_id for alert in alerts})
        keys = sorted({condition_key(alert.gateway_id, alert.device_id, alert.kind) for alert in alerts})
        stored: set[str] = set()
        open_by_condition: dict[str, AlertRow] = {}
        for chunk in in_chunks(ids, IN_LIST_SIZE // 2):  # two lists in one statement
            as_alerts = select(AlertRow.id).where(AlertRow.id.in_(chunk))
            repeats = select(AlertRepeatRow.event_id).where(AlertRepeatRow.event_id.in_(chunk))
            stored.update(await session.scalars(union_all(as_alerts, repeats)))
        for chunk in in_chunks(keys):
            query = (
                select(AlertRow)
                .where(AlertRow.condition_key.in_(chunk), AlertRow.state.in_(_DEDUPLICATED))
                .order_by(AlertRow.raised_at_ms)
            )
            for row in await session.scalars(query):
                open_by_condition[row.condition_key] = row  # the newest last
        return cls(stored, open_by_condition)
