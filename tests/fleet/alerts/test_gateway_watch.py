"""The fleet's own alerts about its gateways, judged by the village's rules, on a real database."""

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.channels.governance import GOVERNANCE_CHANNEL
from fleet.alerts.filters import AlertFilter
from fleet.alerts.gateway_watch import GatewayWatch
from fleet.alerts.outbox_queue import OutboxQueue
from fleet.alerts.rules.model import AlertRules, KindRule, WatchLimits, same_rules_everywhere
from fleet.alerts.store import AlertStore
from fleet.db.schema import AlertRow
from fleet.gateways.presence import OfflineReason, PresenceTracker, Transition
from protocol.messages import ConfigReported, ConfigStatus, FleetAlertKind, GatewayHealth, Heartbeat, Severity
from tests.fleet.alert_county import alert_county
from tests.fleet.alert_parts import CASES
from tests.fleet.helpers import FakeClock

INTERVAL_S = 10.0
RULES = AlertRules(
    watch=WatchLimits(offline_after_missed_heartbeats=2, disk_percent=90, temperature_c=75, buffer_depth=500),
    kinds={FleetAlertKind.DISK_CRITICAL: KindRule(hold_off_s=60, severity=Severity.CRITICAL)},
    clear_hold_s=30,
)


class Watched:
    """A watch over lakeside's gw-01, its store and the presence it asks."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> None:
        self.clock = clock
        self.store = AlertStore(sessions, clock, same_rules_everywhere(RULES), outbox=CASES)
        self.presence = PresenceTracker(3, INTERVAL_S)
        self.watch = GatewayWatch(self.store, same_rules_everywhere(RULES), clock, heard=self.presence.heard)
        self.outbox = OutboxQueue(sessions)

    async def settle(self) -> None:
        """What run() does each round: raise what is due, end what is over."""
        await self.watch._raise_due()
        await self.watch._end_over()

    async def alerts(self, kind: FleetAlertKind) -> list[AlertRow]:
        return [row for row in await self.store.list(AlertFilter(limit=1000)) if row.kind == kind]

    def heartbeat(self, **health: Any) -> None:
        fields: dict[str, Any] = {"cpu_percent": 5.0, "memory_percent": 20.0, "disk_percent": 40.0, "uptime_s": 60.0}
        fields.update(health)
        beat = Heartbeat(
            gateway_id="gw-01",
            event_id=uuid.uuid4(),
            seq=1,
            ts=self.clock.now_ms,
            interval_s=INTERVAL_S,
            health=GatewayHealth(**fields),
        )
        self.presence.seen("gw-01", "lakeside", self.clock.now_ms, INTERVAL_S)
        self.watch.heartbeat("lakeside", beat)

    def offline(self, reason: OfflineReason = OfflineReason.LOST) -> None:
        self.watch.presence_changed([Transition("gw-01", "lakeside", False, reason, self.clock.now_ms)])

    def online(self) -> None:
        self.watch.presence_changed([Transition("gw-01", "lakeside", True, "connected", self.clock.now_ms)])


@pytest.fixture
async def watched(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> Watched:
    await alert_county(any_sessions, clock)
    return Watched(any_sessions, clock)


async def test_a_gateway_lost_is_raised_offline_only_after_the_rules_missed_heartbeats(watched: Watched) -> None:
    watched.heartbeat()
    watched.clock.now_ms += 5_000
    watched.offline()  # its Last Will, 5 s after its last heartbeat
    await watched.settle()
    assert await watched.alerts(FleetAlertKind.GATEWAY_OFFLINE) == []
    watched.clock.now_ms += 14_999  # 19.999 s since last heard: not yet 2 intervals
    await watched.settle()
    assert await watched.alerts(FleetAlertKind.GATEWAY_OFFLINE) == []
    watched.clock.now_ms += 1
    await watched.settle()
    [alert] = await watched.alerts(FleetAlertKind.GATEWAY_OFFLINE)
    assert (alert.gateway_id, alert.device_id, alert.severity, alert.state) == ("gw-01", "gateway", "major", "raised")
    assert alert.evidence["reason"] == OfflineReason.LOST
    [opening] = await watched.outbox.due(GOVERNANCE_CHANNEL, watched.clock.now_ms)
    assert opening.message.action == "open_case"


async def test_a_gateway_back_before_its_hold_off_raises_nothing(watched: Watched) -> None:
    watched.heartbeat()
    watched.offline()
    watched.clock.now_ms += 10_000
    watched.online()
    watched.clock.now_ms += 60_000
    await watched.settle()
    assert await watched.alerts(FleetAlertKind.GATEWAY_OFFLINE) == []


async def test_a_clean_stop_is_no_incident_unless_the_gateway_is_not_back_in_time(watched: Watched) -> None:
    """A restart for an update, or staff stopping it: the gateway says goodbye and is expected back within the
    rules' back_after_clean_stop_s (default 300 s); a Last Will is judged as before."""
    watched.heartbeat()
    watched.offline(OfflineReason.SHUTDOWN)
    watched.clock.now_ms += 299_999
    await watched.settle()
    assert await watched.alerts(FleetAlertKind.GATEWAY_OFFLINE) == []
    watched.online()  # back from its restart
    watched.heartbeat()
    watched.offline(OfflineReason.SHUTDOWN)  # stops again, and this time stays away
    watched.clock.now_ms += 300_000
    await watched.settle()

    [alert] = await watched.alerts(FleetAlertKind.GATEWAY_OFFLINE)
    assert alert.summary == "gateway gw-01 stopped cleanly and is not back after 300 s"
    assert alert.evidence["reason"] == OfflineReason.SHUTDOWN


async def test_a_gateway_back_after_its_alert_clears_it_after_the_clear_hold(watched: Watched) -> None:
    watched.heartbeat()
    watched.offline()
    watched.clock.now_ms += 30_000
    await watched.settle()
    watched.online()
    await watched.settle()
    watched.clock.now_ms += 30_000
    assert await watched.store.clear_due(watched.clock.now_ms, 10) == 1
    [alert] = await watched.alerts(FleetAlertKind.GATEWAY_OFFLINE)
    assert alert.state == "cleared"


async def test_a_gateway_offline_again_while_its_alert_is_open_counts_on_it(watched: Watched) -> None:
    for _ in range(3):
        watched.heartbeat()
        watched.offline()
        watched.clock.now_ms += 30_000
        await watched.settle()
        watched.online()
        await watched.settle()
        watched.clock.now_ms += 1_000  # back, but not for the clear hold
    [alert] = await watched.alerts(FleetAlertKind.GATEWAY_OFFLINE)
    assert alert.occurrences == 3


async def test_a_storm_of_gateways_offline_is_raised_in_one_round(
    any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    context = await alert_county(any_sessions, clock)
    for index in range(200):
        await context.registry.register("riverside", f"gw-storm-{index:03d}")
    watched = Watched(any_sessions, clock)
    watched.watch.presence_changed(
        Transition(f"gw-storm-{index:03d}", "riverside", False, OfflineReason.LOST, clock.now_ms)
        for index in range(200)
    )
    clock.now_ms += 30_000
    await watched.settle()
    assert watched.watch.raised == 200
    assert len(await watched.alerts(FleetAlertKind.GATEWAY_OFFLINE)) == 200
    assert len(await watched.outbox.due(GOVERNANCE_CHANNEL, clock.now_ms, limit=1000)) == 200


async def test_gateways_not_heard_after_a_restart_are_raised_offline(watched: Watched) -> None:
    watched.watch.expect([("gw-01", "lakeside"), ("gw-02", "riverside")], within_s=30)
    watched.clock.now_ms += 10_000
    watched.heartbeat()  # gw-01 is back
    watched.watch.presence_changed([Transition("gw-01", "lakeside", True, "connected", watched.clock.now_ms)])
    watched.clock.now_ms += 20_000
    await watched.settle()
    [alert] = await watched.alerts(FleetAlertKind.GATEWAY_OFFLINE)
    assert alert.gateway_id == "gw-02"


async def test_a_full_disk_is_raised_after_its_hold_off_with_the_rules_severity(watched: Watched) -> None:
    watched.heartbeat(disk_percent=93.0)
    watched.clock.now_ms += 59_000
    watched.heartbeat(disk_percent=94.0)
    await watched.settle()
    assert await watched.alerts(FleetAlertKind.DISK_CRITICAL) == []
    watched.clock.now_ms += 1_000
    await watched.settle()
    [alert] = await watched.alerts(FleetAlertKind.DISK_CRITICAL)
    assert alert.severity == "critical"
    assert alert.evidence["disk_percent"] == 94.0  # the newest reading


async def test_a_disk_that_recovers_within_its_hold_off_raises_nothing(watched: Watched) -> None:
    watched.heartbeat(disk_percent=93.0)
    watched.clock.now_ms += 30_000
    watched.heartbeat(disk_percent=50.0)
    watched.clock.now_ms += 60_000
    await watched.settle()
    assert await watched.alerts(FleetAlertKind.DISK_CRITICAL) == []


async def test_a_hot_gateway_and_an_overflowing_buffer_are_raised_at_once(watched: Watched) -> None:
    watched.heartbeat(temperature_c=81.5, buffer_depth=600)
    await watched.settle()
    [hot] = await watched.alerts(FleetAlertKind.TEMPERATURE_CRITICAL)
    [buffer] = await watched.alerts(FleetAlertKind.BUFFER_OVERFLOWING)
    assert "81.5" in hot.summary
    assert buffer.evidence["buffer_depth"] == 600


async def test_a_buffer_that_starts_dropping_is_overflowing(watched: Watched) -> None:
    watched.heartbeat(dropped={"telemetry": 3})
    await watched.settle()
    assert await watched.alerts(FleetAlertKind.BUFFER_OVERFLOWING) == []  # dropped before we watched: no news
    watched.heartbeat(dropped={"telemetry": 9})
    await watched.settle()
    [alert] = await watched.alerts(FleetAlertKind.BUFFER_OVERFLOWING)
    assert alert.evidence["dropped"] == 9


async def test_a_condition_over_ends_an_alert_raised_before_the_fleet_restarted(watched: Watched) -> None:
    watched.heartbeat(temperature_c=90.0)
    await watched.settle()
    restarted = Watched(watched.store._sessions, watched.clock)  # a new process: nothing in memory
    restarted.heartbeat(temperature_c=40.0)
    await restarted.settle()
    watched.clock.now_ms += 30_000
    assert await restarted.store.clear_due(watched.clock.now_ms, 10) == 1


async def test_a_rejected_config_is_raised_and_ends_when_a_config_applies(watched: Watched) -> None:
    def report(status: ConfigStatus, version: int, error: str | None = None) -> ConfigReported:
        return ConfigReported(
            gateway_id="gw-01",
            event_id=uuid.uuid4(),
            seq=1,
            ts=watched.clock.now_ms,
            version=version,
            status=status,
            error=error,
        )

    watched.watch.config_reported("lakeside", report(ConfigStatus.REJECTED, 7, "devices.0.kind: unknown"))
    await watched.settle()
    [alert] = await watched.alerts(FleetAlertKind.CONFIG_REJECTED)
    assert (alert.severity, alert.evidence["version"]) == ("minor", 7)
    watched.watch.config_reported("lakeside", report(ConfigStatus.APPLIED, 8))
    await watched.settle()
    watched.clock.now_ms += 30_000
    assert await watched.store.clear_due(watched.clock.now_ms, 10) == 1


async def test_the_watch_raises_as_it_runs(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> None:
    await alert_county(any_sessions, clock)
    raised = asyncio.Event()
    store = AlertStore(any_sessions, clock, same_rules_everywhere(RULES))
    watch = GatewayWatch(store, same_rules_everywhere(RULES), clock, heard=lambda gateway: None, on_raised=raised.set)
    task = asyncio.create_task(watch.run())
    config = ConfigReported(
        gateway_id="gw-01", event_id=uuid.uuid4(), seq=1, ts=clock.now_ms, version=3, status=ConfigStatus.REJECTED
    )
    watch.config_reported("lakeside", config)
    async with asyncio.timeout(10):
        await raised.wait()
    assert watch.raised == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
