"""A gateway flooding invalid messages is quarantined at a real Mosquitto's dynamic security plugin.

The fleet runs with the plugin's administrator (as in production): once the flooding gateway's dead letters
reach ``ingest.quarantine_after``, the broker denies it the flooded channel, so the flood stops reaching the
fleet's queue (Mosquitto answers a denied publish with reason code 135 and hangs up: the flooder reconnects
for every message, which slows it to a trickle); another gateway's presses go on becoming cases; the fleet
raises ``messages_dead_lettered`` about the flooder saying it is quarantined, and ``/healthz`` names it.
After ``ingest.quarantine_s`` the quarantine ends by itself and the gateway's alerts get through again; one
left by an earlier fleet process is ended at start.
"""

import asyncio
import itertools
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from pydantic import SecretStr

from fleet.broker_access import BrokerAccess, DynsecControl
from fleet.service import FleetService
from fleet.settings import BrokerSettings, EnrollmentSettings, FleetSettings, IngestSettings
from protocol.clock import utc_now_ms
from protocol.codec import encode
from protocol.messages import Alert, AlertKind, Severity
from protocol.topics import Channel, gateway_topic
from simulators.flood import Flood
from simulators.infra.mosquitto import DynsecAdmin, MosquittoBroker, dynamic_security_plugin
from tests.integration.conftest import Platform, eventually, fleet_api, fleet_settings, running_service

pytestmark = [pytest.mark.integration, pytest.mark.faults]
logger = logging.getLogger(__name__)

VILLAGE = "shiqiao"
ADMIN = DynsecAdmin("dynsec-admin", "admin-password")
FLEET_USER, FLEET_PASSWORD = "outpost-fleet", "fleet-password"
GATEWAYS = {"gw-flood": "flood-password", "gw-ok": "ok-password"}
QUARANTINE_S = 8.0
CASE_BOUND_S = 5.0


@pytest.fixture
async def broker() -> AsyncIterator[MosquittoBroker]:
    if not MosquittoBroker.available() or dynamic_security_plugin() is None:
        pytest.fail("mosquitto or its dynamic security plugin is not installed: run scripts/test, which installs it")
    async with MosquittoBroker(dynamic_security=ADMIN) as broker:
        async with DynsecControl(broker.host, broker.port, username=ADMIN.username, password=ADMIN.password) as c:
            access = BrokerAccess(c)
            await access.deny_by_default()
            for gateway_id, password in GATEWAYS.items():
                await access.provision_gateway(VILLAGE, gateway_id, password, gateway_id)  # the flood's client id
        yield broker


def guarded_fleet(tmp_path: Path, broker: MosquittoBroker, platform: Platform) -> FleetSettings:
    """A fleet that administers its broker, quarantining a gateway after 100 dead letters in 10 s."""
    settings = fleet_settings(tmp_path, broker, platform.server.url)
    return settings.model_copy(
        update={
            "broker": BrokerSettings(
                host=broker.host, port=broker.port, username=FLEET_USER, password=SecretStr(FLEET_PASSWORD)
            ),
            "enrollment": EnrollmentSettings(dynsec_username=ADMIN.username, dynsec_password=SecretStr(ADMIN.password)),
            "ingest": IngestSettings(quarantine_after=100, quarantine_window_s=10.0, quarantine_s=QUARANTINE_S),
        }
    )


PRESSES = itertools.count(1)


def panic(gateway_id: str) -> Alert:
    """A press of a button of its own, so that no press is taken for a repeat of another."""
    seq = next(PRESSES)
    return Alert(
        gateway_id=gateway_id, seq=seq, event_id=uuid.uuid4(), ts=utc_now_ms(),
        device_id=f"panic-{seq}", kind=AlertKind.PANIC, severity=Severity.CRITICAL, grid_id="g01",
    )  # fmt: skip


async def press_until_case(broker: MosquittoBroker, platform: Platform, gateway_id: str) -> float:
    """Publish a panic alert as ``gateway_id`` (its own login); the seconds until its case is open."""
    alert = panic(gateway_id)
    loop = asyncio.get_running_loop()
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        identifier=gateway_id,  # the client id its login is bound to
        username=gateway_id,
        password=GATEWAYS[gateway_id],
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:
        started = loop.time()
        await client.publish(gateway_topic(VILLAGE, gateway_id, Channel.ALERT), encode(alert), qos=1)

    async def opened() -> bool:
        return any(case.alert_id == alert.event_id for case in platform.ledger.cases)

    await eventually(opened, timeout_s=CASE_BOUND_S, what=f"the case of {gateway_id}'s press")
    return loop.time() - started


async def settled(fleet: FleetService) -> bool:
    return fleet.dead_letters.waiting == 0 and all(lane.unacked == 0 for lane in fleet.ingest)


async def fleet_alerts(fleet: FleetService, kind: str) -> list[dict[str, object]]:
    async with fleet_api(fleet.http.url) as api:
        response = await api.get("/alerts", params={"kind": kind})
    response.raise_for_status()
    rows: list[dict[str, object]] = response.json()
    return rows


async def test_a_flooding_gateway_is_quarantined_at_the_broker_alerted_on_and_released(
    tmp_path: Path, broker: MosquittoBroker, platform: Platform
) -> None:
    async with running_service(guarded_fleet(tmp_path, broker, platform)) as fleet:
        await press_until_case(broker, platform, "gw-flood")  # registered: the fleet may raise alerts about it
        flood = Flood(broker, "gw-flood", Channel.ALERT, village_id=VILLAGE, password=GATEWAYS["gw-flood"], mqtt5=True)
        async with flood:

            async def quarantined() -> bool:
                entry = fleet.quarantine.active.get("gw-flood")
                return entry is not None and entry.enforced

            await eventually(quarantined, timeout_s=10, what="the flooding gateway quarantined")
            # each press's case: whatever the broker queued before it was delivered to the fleet before it
            delays = [await press_until_case(broker, platform, "gw-ok") for _ in range(3)]
            await eventually(lambda: settled(fleet), timeout_s=30, what="the flood's backlog dead-lettered")
            before = fleet.dead_letters.recorded
            await asyncio.sleep(1.0)
            assert fleet.dead_letters.recorded == before, "the broker drops the flood: nothing more reaches the fleet"
            health = fleet.health()
            assert health.status == "degraded"
            assert any("gw-flood" in problem and "quarantined" in problem for problem in health.problems)

            async def alerted() -> bool:
                # its summary tells the state when it was raised: "quarantined (alert): ...", or "flooding
                # (alert): ..." before the broker took the quarantine (/healthz above tells the state now)
                return any(
                    "messages from gateway gw-flood could not be processed" in str(row["summary"])
                    for row in await fleet_alerts(fleet, "messages_dead_lettered")
                )

            await eventually(alerted, timeout_s=5, what="a messages_dead_lettered alert about the flooder")
        assert max(delays) < CASE_BOUND_S
        logger.info("presses during the quarantined flood took %s s", [round(delay, 3) for delay in delays])
        assert fleet.dead_letters.recorded < flood.sent
        [alert] = await fleet_alerts(fleet, "messages_dead_lettered")
        assert alert["gateway_id"] == "gw-flood"

        async def released() -> bool:
            return "gw-flood" not in fleet.quarantine.active

        await eventually(released, timeout_s=QUARANTINE_S + 5, what="the quarantine ending by itself")
        await press_until_case(broker, platform, "gw-flood")
        assert fleet.quarantine.applied == 1
        assert fleet.quarantine.released == 1


async def test_a_quarantine_left_by_an_earlier_fleet_is_ended_at_start(
    tmp_path: Path, broker: MosquittoBroker, platform: Platform
) -> None:
    async with DynsecControl(broker.host, broker.port, username=ADMIN.username, password=ADMIN.password) as control:
        await BrokerAccess(control).quarantine("gw-flood", [gateway_topic(VILLAGE, "gw-flood", Channel.ALERT)])
    async with running_service(guarded_fleet(tmp_path, broker, platform)):
        async with DynsecControl(broker.host, broker.port, username=ADMIN.username, password=ADMIN.password) as c:

            async def ended() -> bool:
                return await BrokerAccess(c).quarantined() == []

            await eventually(ended, timeout_s=5, what="the left-over quarantine ended")
        await press_until_case(broker, platform, "gw-flood")
