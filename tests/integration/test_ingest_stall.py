"""A database hiccup while an alert is handled holds ingest until it passes; the alert is not lost."""

import asyncio
import uuid
from pathlib import Path

import aiomqtt
import pytest
from sqlalchemy import text

from fleet.db.engine import create_engine
from protocol.clock import utc_now_ms
from protocol.codec import encode
from protocol.messages import Alert, AlertKind, Severity
from protocol.topics import Channel, gateway_topic
from simulators.infra.mosquitto import MosquittoBroker
from tests.integration.conftest import FleetFactory, Platform, eventually

pytestmark = pytest.mark.integration


async def test_an_alert_arriving_while_the_database_is_broken_is_stored_and_delivered_once_it_heals(
    tmp_path: Path, mosquitto: MosquittoBroker, platform: Platform, start_fleet: FleetFactory
) -> None:
    fleet = await start_fleet()
    alert = Alert(
        gateway_id="gw-baima", seq=7, event_id=uuid.uuid4(), ts=utc_now_ms(),
        device_id="panic-centre", kind=AlertKind.PANIC, severity=Severity.CRITICAL,
    )  # fmt: skip
    topic = gateway_topic("baima", "gw-baima", Channel.ALERT)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}")
    try:
        async with engine.begin() as connection:  # the table vanishes, as on a broken database
            await connection.execute(text("ALTER TABLE alerts RENAME TO alerts_away"))
        async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="gw-baima") as client:
            await client.publish(topic, encode(alert), qos=1)

        async def stalled() -> bool:
            return fleet.health().ingest.stalls >= 2

        await eventually(stalled, what="ingest holding the alert while the database is broken")
        assert platform.ledger.cases == []
        async with engine.begin() as connection:
            await connection.execute(text("ALTER TABLE alerts_away RENAME TO alerts"))
    finally:
        await engine.dispose()

    async def delivered() -> bool:
        return len(platform.ledger.cases) == 1

    await eventually(delivered, timeout_s=20, what="the case once the database healed")
    assert platform.ledger.cases[0].alert_id == alert.event_id
    assert fleet.health().ingest.handler_errors == 0
    await asyncio.sleep(0.5)
    assert len(platform.ledger.requests) == 1
