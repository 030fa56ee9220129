"""The fleet's own alerts about ingest trouble (dead letters piling up, a stuck lane), on a real database;
and the dead-letter tally that tells the quarantine a gateway floods."""

from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.filters import AlertFilter
from fleet.alerts.gateway_watch import GatewayWatch
from fleet.alerts.ingest_watch import IngestWatch
from fleet.alerts.rules.model import AlertRules, same_rules_everywhere
from fleet.alerts.store import AlertStore
from fleet.db.schema import AlertRow
from fleet.ingest.dead_letter_sources import Source, SourceTally
from fleet.ingest.quarantine import Quarantine
from fleet.ingest.subscriptions import Lane
from protocol.messages import FleetAlertKind
from protocol.topics import Channel, gateway_topic
from tests.fleet.alert_county import alert_county
from tests.fleet.alert_parts import CASES
from tests.fleet.helpers import FakeClock

QUIET_S = 600.0
STUCK_AFTER_S = 5.0
GW = Source("lakeside", "gw-01", Channel.ALERT)


@dataclass
class FakeLane:
    lane: Lane
    unacked: int = 0
    age_s: float | None = None
    topic: str | None = None

    def oldest_unacked_age_s(self) -> float | None:
        return self.age_s

    def oldest_unacked_topic(self) -> str | None:
        return self.topic


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Watched:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> None:
        rules = same_rules_everywhere(AlertRules())
        self.store = AlertStore(sessions, clock, rules, outbox=CASES)
        self.watch = GatewayWatch(self.store, rules, clock, heard=lambda gateway_id: None)
        self.monotonic = Monotonic()
        self.tally = SourceTally(monotonic=self.monotonic)
        self.alerts_lane = FakeLane(Lane.ALERTS)
        self.bulk_lane = FakeLane(Lane.BULK)
        self.quarantine = Quarantine(None, duration_s=60.0, monotonic=self.monotonic)
        self.ingest = IngestWatch(
            self.watch,
            self.tally,
            [self.alerts_lane, self.bulk_lane],
            self.quarantine,
            knows=lambda gateway_id, village_id: (gateway_id, village_id) == ("gw-01", "lakeside"),
            stuck_after_s=STUCK_AFTER_S,
            quiet_s=QUIET_S,
            monotonic=self.monotonic,
        )

    async def judge(self) -> None:
        self.ingest.judge()
        await self.watch._raise_due()
        await self.watch._end_over()

    async def alerts(self, kind: FleetAlertKind) -> list[AlertRow]:
        return [row for row in await self.store.list(AlertFilter(limit=1000)) if row.kind == kind]


@pytest.fixture
async def watched(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> Watched:
    await alert_county(any_sessions, clock)
    return Watched(any_sessions, clock)


async def test_dead_letters_from_a_gateway_raise_one_alert_that_ends_after_a_quiet_spell(watched: Watched) -> None:
    for _ in range(3):
        watched.tally.note(GW)
    watched.tally.note(Source("lakeside", "gw-01", Channel.TELEMETRY))
    watched.tally.note(Source("lakeside", "gw-unknown", Channel.ALERT))  # not registered: no alert can name it
    await watched.judge()

    [alert] = await watched.alerts(FleetAlertKind.MESSAGES_DEAD_LETTERED)
    assert alert.gateway_id == "gw-01"
    assert alert.summary == "4 messages from gateway gw-01 could not be processed (3 on alert, 1 on telemetry)"
    assert alert.evidence == {"dead_lettered": 4, "alert": 3, "telemetry": 1}

    watched.tally.note(GW)  # more count on the open alert: no second one
    watched.monotonic.now += QUIET_S - 1
    await watched.judge()
    assert len(await watched.alerts(FleetAlertKind.MESSAGES_DEAD_LETTERED)) == 1
    assert (await watched.alerts(FleetAlertKind.MESSAGES_DEAD_LETTERED))[0].state == "raised"

    watched.monotonic.now += QUIET_S
    await watched.judge()
    [ended] = await watched.alerts(FleetAlertKind.MESSAGES_DEAD_LETTERED)
    assert ended.clear_at_ms is not None, "quiet for quiet_s: the condition is over, it clears after its hold"


async def test_a_quarantined_gateways_alert_says_so_and_lasts_while_the_quarantine_does(watched: Watched) -> None:
    watched.quarantine.flooding(GW, 200)
    watched.tally.note(GW)
    await watched.judge()
    [alert] = await watched.alerts(FleetAlertKind.MESSAGES_DEAD_LETTERED)
    assert alert.summary.startswith("flooding (alert): "), "no administrator here: found flooding, not enforced"

    watched.monotonic.now += QUIET_S + 1  # quiet, but quarantined still
    await watched.judge()
    [alert] = await watched.alerts(FleetAlertKind.MESSAGES_DEAD_LETTERED)
    assert alert.clear_at_ms is None


async def test_a_message_waiting_past_the_bound_on_the_alerts_lane_raises_ingest_stuck_until_it_moves(
    watched: Watched,
) -> None:
    watched.alerts_lane.topic = gateway_topic("lakeside", "gw-01", Channel.ALERT)
    watched.alerts_lane.unacked, watched.alerts_lane.age_s = 40, STUCK_AFTER_S - 1
    watched.bulk_lane.topic = gateway_topic("lakeside", "gw-01", Channel.TELEMETRY)
    watched.bulk_lane.unacked, watched.bulk_lane.age_s = 9000, 120.0  # the bulk lane may wait: never stuck
    await watched.judge()
    assert await watched.alerts(FleetAlertKind.INGEST_STUCK) == []

    watched.alerts_lane.age_s = 12.0
    await watched.judge()
    [alert] = await watched.alerts(FleetAlertKind.INGEST_STUCK)
    assert alert.gateway_id == "gw-01"
    assert alert.evidence == {"lane": "alerts", "waited_s": 12.0, "unacked": 40}
    assert "has waited 12 s in the fleet's alerts lane" in alert.summary

    watched.alerts_lane.unacked, watched.alerts_lane.age_s, watched.alerts_lane.topic = 0, None, None
    await watched.judge()
    [alert] = await watched.alerts(FleetAlertKind.INGEST_STUCK)
    assert alert.clear_at_ms is not None


def test_the_tally_tells_of_a_flood_at_each_multiple_of_the_threshold_within_its_window() -> None:
    monotonic = Monotonic()
    floods: list[tuple[Source, int]] = []
    tally = SourceTally(
        flood_after=3, flood_window_s=10.0, on_flood=lambda s, n: floods.append((s, n)), monotonic=monotonic
    )
    other = Source("lakeside", "gw-02", Channel.ALERT)
    for _ in range(7):
        tally.note(GW)
    tally.note(other)
    assert floods == [(GW, 3), (GW, 6)]
    monotonic.now += 10.0  # a new window: counting starts again
    tally.note(GW)
    tally.note(GW)
    assert floods == [(GW, 3), (GW, 6)]
    assert tally.take() == {GW: 9, other: 1}
    assert tally.take() == {}


def test_a_tally_without_a_threshold_never_calls_anything_flooding() -> None:
    tally = SourceTally(on_flood=lambda s, n: pytest.fail("no threshold: no flood"))
    for _ in range(10_000):
        tally.note(GW)
    assert tally.take() == {GW: 10_000}
