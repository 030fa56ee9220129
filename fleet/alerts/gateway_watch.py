"""The fleet's own alerts about the gateways it watches: offline, disk or temperature critical, buffer
overflowing, config rejected.

The ingest path only notes what it sees (:meth:`GatewayWatch.presence_changed`, :meth:`heartbeat`,
:meth:`config_reported`: dictionary updates, no I/O); :meth:`GatewayWatch.run` raises what is due and
ends what is over, a whole storm of alerts in one transaction (:meth:`~fleet.alerts.store.AlertStore.open_many`).
Each condition is judged by its village's rules (:class:`~fleet.alerts.rules.model.WatchLimits` and each
kind's ``hold_off_s``):

- **offline**: once presence says offline (Last Will or heartbeat timeout), the alert is due when the gateway
  has been silent ``offline_after_missed_heartbeats`` intervals since it was last heard. A gateway that said
  goodbye (a clean stop: a restart, an update, staff) is not an incident: it is expected back within
  ``back_after_clean_stop_s``, and only then is it due. Back online before that, nothing is raised; back after
  it, the alert's condition ends (it clears after its hold). At start every registered gateway is expected back
  within the presence timeout.
- **disk / temperature / buffer**: over its limit in a heartbeat (the buffer also when it dropped
  messages since the previous heartbeat) for ``hold_off_s``; under it again, the condition ends.
- **config rejected**: a rejection report raises at once; the next ``applied`` report ends it.

What is in memory here (when each condition began) starts afresh with the process; the alerts it raised
are in the database and correlation keeps a re-raised condition on its open alert.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from fleet.alerts.correlation import condition_key
from fleet.alerts.new_alert import GATEWAY_DEVICE, NewAlert
from fleet.alerts.rules.model import AlertRules, RulesFor
from fleet.alerts.store import AlertStore
from fleet.errors import TransientError
from fleet.gateways.presence import OfflineReason, Transition
from protocol.messages import ConfigReported, ConfigStatus, FleetAlertKind, Heartbeat
from protocol.reconnect import Backoff

logger = logging.getLogger(__name__)

_TICK_S: Final = 1.0
_HEALTH_KINDS: Final = (
    FleetAlertKind.DISK_CRITICAL,
    FleetAlertKind.TEMPERATURE_CRITICAL,
    FleetAlertKind.BUFFER_OVERFLOWING,
)

Condition = tuple[str, FleetAlertKind]
"""A gateway and one of the fleet's alert kinds."""


@dataclass(slots=True)
class _Pending:
    village_id: str
    due_ms: int
    summary: str
    evidence: dict[str, str | int | float]


class GatewayWatch:
    def __init__(
        self,
        store: AlertStore,
        rules: RulesFor,
        clock: Callable[[], int],
        *,
        heard: Callable[[str], tuple[int, float] | None],
        on_raised: Callable[[], None] = lambda: None,
    ) -> None:
        """``heard(gateway_id)``: when it was last heard and its heartbeat interval, if presence knows it."""
        self._store = store
        self._rules = rules
        self._clock = clock
        self._heard = heard
        self._on_raised = on_raised
        self._pending: dict[Condition, _Pending] = {}
        """Conditions holding, not raised yet (each due at its hold-off)."""
        self._raised: set[Condition] = set()
        """Conditions raised (or found open) by this process and not over yet."""
        self._ended: dict[Condition, str] = {}
        """Conditions over, to end on their alerts (why)."""
        self._judged: set[Condition] = set()
        """Conditions seen over once since start: an alert raised before it (by an earlier process) was ended then."""
        self._dropped: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._backoff = Backoff(base_s=0.5, cap_s=10.0)
        self.raised = 0

    def expect(self, gateways: Iterable[tuple[str, str]], within_s: float) -> None:
        """At start: each (gateway, village) registered is offline unless heard from ``within_s``."""
        now = self._clock()
        for gateway_id, village_id in gateways:
            self._pending[(gateway_id, FleetAlertKind.GATEWAY_OFFLINE)] = _Pending(
                village_id,
                now + round(within_s * 1000),
                f"gateway {gateway_id} not heard from since the fleet started",
                {"reason": "not heard since the fleet started"},
            )

    def presence_changed(self, transitions: Iterable[Transition]) -> None:
        for transition in transitions:
            condition = (transition.gateway_id, FleetAlertKind.GATEWAY_OFFLINE)
            if transition.online:
                self._pending.pop(condition, None)
                self._over(condition, "the gateway is online again")
                continue
            rules = self._rules(transition.village_id)
            missed = rules.watch.offline_after_missed_heartbeats
            heard = self._heard(transition.gateway_id)
            due = transition.at_ms
            if heard is not None:
                heard_ms, interval_s = heard
                due = max(due, heard_ms + round(missed * interval_s * 1000))
            summary = f"gateway {transition.gateway_id} offline ({transition.reason})"
            if transition.reason == OfflineReason.SHUTDOWN:
                grace_s = rules.watch.back_after_clean_stop_s
                due = max(due, transition.at_ms + round(grace_s * 1000))
                summary = f"gateway {transition.gateway_id} stopped cleanly and is not back after {grace_s:g} s"
            self._pending[condition] = _Pending(
                transition.village_id,
                due,
                summary,
                {"reason": transition.reason, "missed_heartbeats": missed},
            )
            self._ended.pop(condition, None)
        self._wake.set()

    def heartbeat(self, village_id: str, heartbeat: Heartbeat) -> None:
        rules = self._rules(village_id)
        health, limits = heartbeat.health, rules.watch
        dropped = sum(health.dropped.values())
        dropping = dropped > self._dropped.get(heartbeat.gateway_id, dropped)
        self._dropped[heartbeat.gateway_id] = dropped
        readings: dict[FleetAlertKind, tuple[bool, str, dict[str, str | int | float]]] = {
            FleetAlertKind.DISK_CRITICAL: (
                health.disk_percent >= limits.disk_percent,
                f"disk {health.disk_percent:.0f}% full (limit {limits.disk_percent:.0f}%)",
                {"disk_percent": health.disk_percent, "limit": limits.disk_percent},
            ),
            FleetAlertKind.TEMPERATURE_CRITICAL: (
                health.temperature_c is not None and health.temperature_c >= limits.temperature_c,
                f"SoC at {health.temperature_c} °C (limit {limits.temperature_c:.0f} °C)",
                {"temperature_c": health.temperature_c or 0.0, "limit": limits.temperature_c},
            ),
            FleetAlertKind.BUFFER_OVERFLOWING: (
                health.buffer_depth >= limits.buffer_depth or dropping,
                f"buffer holds {health.buffer_depth} messages, {dropped} dropped since start",
                {"buffer_depth": health.buffer_depth, "dropped": dropped, "limit": limits.buffer_depth},
            ),
        }
        for kind, (over, summary, evidence) in readings.items():
            condition = (heartbeat.gateway_id, kind)
            if over:
                self._holds(condition, village_id, rules, summary, evidence)
            else:
                self._pending.pop(condition, None)
                self._over(condition, "back under its limit")

    def config_reported(self, village_id: str, report: ConfigReported) -> None:
        condition = (report.gateway_id, FleetAlertKind.CONFIG_REJECTED)
        if report.status is ConfigStatus.APPLIED:
            self._pending.pop(condition, None)
            self._over(condition, f"config version {report.version} applied")
            return
        summary = f"gateway {report.gateway_id} refused config version {report.version}: {report.error or '?'}"
        evidence: dict[str, str | int | float] = {"version": report.version, "error": (report.error or "")[:200]}
        self._holds(condition, village_id, self._rules(village_id), summary, evidence)

    def condition_holds(
        self,
        gateway_id: str,
        village_id: str,
        kind: FleetAlertKind,
        summary: str,
        evidence: dict[str, str | int | float],
    ) -> None:
        """A condition judged elsewhere (ingest trouble, :mod:`fleet.alerts.ingest_watch`) holds for the gateway:
        its alert is raised after the kind's hold-off, like the heartbeat's."""
        self._holds((gateway_id, kind), village_id, self._rules(village_id), summary, evidence)

    def condition_over(self, gateway_id: str, kind: FleetAlertKind, why: str) -> None:
        condition = (gateway_id, kind)
        self._pending.pop(condition, None)
        self._over(condition, why)

    def _holds(
        self,
        condition: Condition,
        village_id: str,
        rules: AlertRules,
        summary: str,
        evidence: dict[str, str | int | float],
    ) -> None:
        self._ended.pop(condition, None)
        if condition in self._raised:
            return
        pending = self._pending.get(condition)
        if pending is None:
            hold_ms = round(rules.rule(condition[1]).hold_off_s * 1000)
            self._pending[condition] = _Pending(village_id, self._clock() + hold_ms, summary, evidence)
            self._wake.set()
        else:
            pending.summary, pending.evidence = summary, evidence  # the newest reading goes with the alert

    def _over(self, condition: Condition, why: str) -> None:
        if condition in self._raised or condition not in self._judged:
            self._raised.discard(condition)
            self._judged.add(condition)
            self._ended[condition] = why
            self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._raise_due()
                await self._end_over()
            except TransientError as exc:
                delay = self._backoff.next_delay()
                logger.warning("the fleet's own alerts postponed %.1f s: %s", delay, exc)
                await asyncio.sleep(delay)
                continue
            self._backoff.reset()
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that arrives
                # as the wake-up does, and the task would outlive the fleet's shutdown.
                async with asyncio.timeout(self._wait_s()):
                    await self._wake.wait()

    def _wait_s(self) -> float:
        due = min((pending.due_ms for pending in self._pending.values()), default=None)
        return _TICK_S if due is None else min(_TICK_S, max(0.0, (due - self._clock()) / 1000))

    async def _raise_due(self) -> None:
        now = self._clock()
        due = [(condition, p) for condition, p in self._pending.items() if p.due_ms <= now]
        if not due:
            return
        alerts = [
            NewAlert.by_fleet(
                pending.village_id,
                gateway_id,
                kind,
                pending.summary,
                now,
                evidence=dict(pending.evidence),
            )
            for (gateway_id, kind), pending in due
        ]
        opened = await self._store.open_many(alerts)
        for condition, pending in due:
            if self._pending.get(condition) is pending:
                del self._pending[condition]
            self._raised.add(condition)
        self.raised += opened
        if opened:
            logger.warning("the fleet raised %d alerts about its gateways", opened)
            self._on_raised()

    async def _end_over(self) -> None:
        if not self._ended:
            return
        ended = dict(self._ended)
        clearing = await self._store.end_conditions(
            {condition_key(gateway_id, GATEWAY_DEVICE, kind): why for (gateway_id, kind), why in ended.items()}
        )
        for condition, why in ended.items():
            if self._ended.get(condition) == why:
                del self._ended[condition]
        if clearing:
            self._on_raised()  # clears to apply after their hold
