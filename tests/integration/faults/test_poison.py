"""Poison messages are contained, against a real Mosquitto, the fleet and the reference platform.

A message that cannot be processed is dead-lettered and acknowledged: it holds back no other message, on its
own lane or another, and a retained one that comes back after a restart is dead-lettered again at once.
"""

import asyncio
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from sqlalchemy import text

from fleet.db.engine import create_engine
from fleet.ingest.subscriptions import Lane
from fleet.service import FleetService
from fleet.settings import FleetSettings, IngestSettings
from protocol.clock import utc_now_ms
from protocol.codec import encode
from protocol.messages import (
    Alert,
    AlertKind,
    ConfigReported,
    ConfigStatus,
    GatewayHealth,
    Heartbeat,
    Severity,
)
from protocol.topics import Channel, gateway_topic
from simulators.flood import Flood
from simulators.infra.mosquitto import MosquittoBroker
from tests.integration.conftest import Platform, eventually, fleet_api, fleet_settings, running_service

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

VILLAGE = "shiqiao"
CASE_BOUND_S = 5.0
"""Every press must become a case within this while the fault lasts (a stalled lane held one for minutes)."""
FLOOD_PER_S = 2_000
"""Invalid alerts a broken gateway sends a second here: ten times a healthy village's whole traffic. Faster than
the fleet can decode (``python -m bench alerts`` floods as fast as Mosquitto takes them), the broker's queue
grows and every lane's messages wait in it in turn: docs/SCALING.md."""


def poisoned_fleet(tmp_path: Path, mosquitto: MosquittoBroker, platform: Platform) -> FleetSettings:
    """A fleet whose sessions take at most 20 unacknowledged messages: one stuck message would stop its lane."""
    settings = fleet_settings(tmp_path, mosquitto, platform.server.url)
    return settings.model_copy(update={"ingest": IngestSettings(receive_maximum=20, hold_bound_s=5.0)})


def panic(gateway_id: str, seq: int) -> Alert:
    return Alert(
        gateway_id=gateway_id, seq=seq, event_id=uuid.uuid4(), ts=utc_now_ms(),
        device_id=f"panic-{seq}", kind=AlertKind.PANIC, severity=Severity.CRITICAL, grid_id="g01",
    )  # fmt: skip


def heartbeat(gateway_id: str, seq: int) -> Heartbeat:
    health = GatewayHealth(cpu_percent=5.0, memory_percent=20.0, disk_percent=30.0, uptime_s=float(seq))
    return Heartbeat(
        gateway_id=gateway_id, seq=seq, event_id=uuid.uuid4(), ts=utc_now_ms(), interval_s=1.0, health=health
    )


def report(gateway_id: str, version: int) -> ConfigReported:
    return ConfigReported(
        gateway_id=gateway_id, seq=1, event_id=uuid.uuid4(), ts=utc_now_ms(), version=version,
        status=ConfigStatus.APPLIED,
    )  # fmt: skip


def huge_version_report(gateway_id: str) -> bytes:
    """A well-formed config report whose version (2**70) no database integer holds."""
    payload: dict[str, Any] = json.loads(encode(report(gateway_id, 1)))
    payload["version"] = 2**70
    return json.dumps(payload).encode()


async def refuse_reports_of(tmp_path: Path, gateway_id: str) -> None:
    """Make the database refuse any config report of ``gateway_id`` for good, as a constraint would."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}")
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    f"CREATE TRIGGER refuse_{gateway_id.replace('-', '_')} BEFORE INSERT ON gateway_configs "
                    f"WHEN NEW.gateway_id = '{gateway_id}' BEGIN SELECT RAISE(ABORT, 'refused by a constraint'); END"
                )
            )
    finally:
        await engine.dispose()


async def press_until_case(mosquitto: MosquittoBroker, platform: Platform, gateway_id: str, seq: int) -> float:
    """Publish a panic alert; return the seconds until its case is open, failing past :data:`CASE_BOUND_S`."""
    alert = panic(gateway_id, seq)
    loop = asyncio.get_running_loop()
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier=f"{gateway_id}-press") as client:
        started = loop.time()
        await client.publish(gateway_topic(VILLAGE, gateway_id, Channel.ALERT), encode(alert), qos=1)

    async def opened() -> bool:
        return any(case.alert_id == alert.event_id for case in platform.ledger.cases)

    await eventually(opened, timeout_s=CASE_BOUND_S, what="the panic's case")
    return loop.time() - started


async def dead_letters(service: FleetService) -> dict[str | None, dict[str, Any]]:
    async with fleet_api(service.http.url) as api:
        response = await api.get("/ingest/dead-letters")
    response.raise_for_status()
    return {row["gateway_id"]: row for row in response.json()}


async def test_a_poison_config_report_is_dead_lettered_and_holds_back_nothing_even_after_a_restart(
    tmp_path: Path, mosquitto: MosquittoBroker, platform: Platform
) -> None:
    settings = poisoned_fleet(tmp_path, mosquitto, platform)
    async with running_service(settings):
        pass  # migrated: the database exists
    await refuse_reports_of(tmp_path, "gw-refused")

    async with running_service(settings) as fleet:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="poisoner") as client:
            for gateway_id, payload in (
                ("gw-refused", encode(report("gw-refused", 3))),
                ("gw-huge", huge_version_report("gw-huge")),
            ):
                topic = gateway_topic(VILLAGE, gateway_id, Channel.CONFIG_REPORTED)
                await client.publish(topic, payload, qos=1, retain=True)
            for seq in range(1, 61):  # three Receive Maximums of control traffic behind the poison
                await client.publish(
                    gateway_topic(VILLAGE, "gw-ok", Channel.HEARTBEAT), encode(heartbeat("gw-ok", seq))
                )
        await press_until_case(mosquitto, platform, "gw-ok", 100)

        async def control_caught_up() -> bool:
            lane = fleet.ingest[Lane.CONTROL]
            return lane.received >= 62 and lane.unacked == 0

        await eventually(control_caught_up, timeout_s=CASE_BOUND_S, what="every control message acknowledged")
        letters = await dead_letters(fleet)
        assert set(letters) == {"gw-refused", "gw-huge"}
        assert letters["gw-refused"]["reason"] == "failed"
        assert "refused by a constraint" in letters["gw-refused"]["error"]
        assert letters["gw-huge"]["payload"].count(str(2**70)) == 1
        health = fleet.health()
        assert health.status == "degraded"
        assert any("dead-lettered" in problem for problem in health.problems)

    async with running_service(settings) as restarted:  # the retained poison comes back
        await press_until_case(mosquitto, platform, "gw-ok", 101)

        async def counted_again() -> bool:
            letters = await dead_letters(restarted)
            return (
                all(letters[g]["count"] == 2 for g in ("gw-refused", "gw-huge") if g in letters) and len(letters) == 2
            )

        await eventually(counted_again, timeout_s=CASE_BOUND_S, what="the retained poison dead-lettered again")
        assert restarted.ingest[Lane.CONTROL].unacked == 0
    assert len(platform.ledger.cases) == 2


async def test_a_flood_of_invalid_messages_from_one_gateway_delays_no_other_gateways_press(
    tmp_path: Path, mosquitto: MosquittoBroker, platform: Platform
) -> None:
    settings = fleet_settings(tmp_path, mosquitto, platform.server.url)
    async with running_service(settings) as fleet:
        async with Flood(mosquitto, "gw-flood", Channel.ALERT, rate_per_s=FLOOD_PER_S) as flood:
            await eventually(
                lambda: _at_least(fleet, 2 * FLOOD_PER_S), timeout_s=10, what="the flood reaching the fleet"
            )
            delays = [await press_until_case(mosquitto, platform, "gw-ok", seq) for seq in range(1, 6)]

        async def all_settled() -> bool:
            return all(lane.unacked == 0 for lane in fleet.ingest) and fleet.dead_letters.waiting == 0

        await eventually(all_settled, timeout_s=30, what="every flood message dead-lettered and acknowledged")
        assert fleet.dead_letters.recorded == flood.sent
        async with fleet_api(fleet.http.url) as api:
            rows = (await api.get("/ingest/dead-letters", params={"gateway_id": "gw-flood", "limit": 1000})).json()
        assert sum(row["count"] for row in rows) == flood.sent, "every flood message is counted"
        assert len(rows) < 100, "a flood is folded into a few rows, not one per message"
        assert len(platform.ledger.cases) == 5
        logger.info(
            "flood of %d invalid alerts; press-to-case delays (s): %s", flood.sent, [round(d, 3) for d in delays]
        )


async def _at_least(fleet: FleetService, dead: int) -> bool:
    return fleet.dead_letters.recorded >= dead
