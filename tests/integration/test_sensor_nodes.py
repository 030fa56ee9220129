"""Sensor nodes on the local Mosquitto: a press reaches the village centre and the fleet; a lost node is an alert.

Two real brokers, as in a village: the local one on the gateway (nodes, village centre) and the
county's (the uplink). The offline-first test points the uplink at a port nobody listens on.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import pytest

from edge.settings import BrokerSettings
from protocol.codec import Decoder, Inbound
from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind
from protocol.messages import Alert, AlertKind, DeviceEvent, EventKind, Severity
from protocol.node import NodeChannel, node_topic
from protocol.topics import Channel, gateway_topic
from protocol.village_centre import village_centre_filter
from simulators.infra.mosquitto import MosquittoBroker
from simulators.infra.ports import free_port
from tests.integration.conftest import eventually
from tests.integration.recorder import Recorder
from tests.integration.village_gateway import village_gateway

pytestmark = pytest.mark.integration

VILLAGE = "xiaohe"
GATEWAY = "gw-xiaohe"
PANIC_NODE = DeviceSpec(
    kind=DeviceKind.PANIC_BUTTON, id="node-panic-well", driver=DriverKind.NODE, grid_id="xiaohe-grid-2"
)
DOOR_NODE = DeviceSpec(
    kind=DeviceKind.DOOR_CONTACT, id="node-door-store", driver=DriverKind.NODE, params={"silent_after_s": 5.0}
)


class VillageCentre:
    """The village safety centre's console: it subscribes to its gateways' alerts on the local broker."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def listen(self, broker: MosquittoBroker, ready: asyncio.Event) -> None:
        decoder = Decoder()
        async with aiomqtt.Client(broker.host, broker.port, identifier="village-centre") as client:
            await client.subscribe(village_centre_filter(VILLAGE), qos=1)
            ready.set()
            async for message in client.messages:
                # The centre reads the alert as the fleet would, from the same contract.
                decoded = decoder.decode(gateway_topic(VILLAGE, GATEWAY, Channel.ALERT), bytes(message.payload))
                assert isinstance(decoded, Inbound)
                assert isinstance(decoded.message, Alert)
                self.alerts.append(decoded.message)


@asynccontextmanager
async def _village(uplink_port: int, local: MosquittoBroker, tmp_path: Path) -> AsyncIterator[VillageCentre]:
    centre = VillageCentre()
    ready = asyncio.Event()
    listening = asyncio.create_task(centre.listen(local, ready))
    await asyncio.wait_for(ready.wait(), 10)
    uplink = BrokerSettings(port=uplink_port)
    try:
        async with village_gateway(VILLAGE, GATEWAY, uplink, local, tmp_path / "gateway", [PANIC_NODE, DOOR_NODE]):
            yield centre
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)


async def _node_says(broker: MosquittoBroker, node_id: str, channel: NodeChannel, **fields: object) -> None:
    """Publish as the firmware does: a plain JSON object."""
    payload = json.dumps({"schema_version": 1, "node_id": node_id, "boot": 3, "uptime_ms": 120_000, **fields})
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"node-{node_id}") as client:
        await client.publish(node_topic(node_id, channel), payload, qos=1, retain=channel is NodeChannel.STATUS)


async def test_a_node_press_reaches_the_village_centre_and_the_fleet_once(
    tmp_path: Path, mosquitto: MosquittoBroker, local_broker: MosquittoBroker
) -> None:
    recording = Recorder(mosquitto.host, mosquitto.port, [Channel.ALERT, Channel.EVENT])
    async with recording as fleet, _village(mosquitto.port, local_broker, tmp_path) as centre:
        await _node_says(local_broker, PANIC_NODE.id, NodeChannel.STATUS, state="online")
        for _ in range(2):  # QoS 1 may deliver an event twice; it must count once
            await _node_says(local_broker, PANIC_NODE.id, NodeChannel.EVENT, seq=7, kind="press", age_ms=40,
                             held_ms=300)  # fmt: skip

        await eventually(lambda: _has(centre.alerts), what="the village centre hearing the alert")
        await eventually(lambda: _fleet_alerts(fleet, 1), what="the fleet receiving the alert")
        await asyncio.sleep(0.5)  # room for a duplicate, if there were one

    [heard] = centre.alerts
    [alert] = [i.message for i in fleet.unique().values() if isinstance(i.message, Alert)]
    assert heard == alert
    assert (alert.kind, alert.severity, alert.device_id, alert.grid_id) == (
        AlertKind.PANIC, Severity.CRITICAL, PANIC_NODE.id, PANIC_NODE.grid_id,
    )  # fmt: skip
    assert alert.evidence == {"held_ms": 300}


async def test_the_village_centre_hears_a_node_press_while_the_fleet_is_unreachable(
    tmp_path: Path, local_broker: MosquittoBroker
) -> None:
    async with _village(free_port(), local_broker, tmp_path) as centre:
        await _node_says(local_broker, PANIC_NODE.id, NodeChannel.EVENT, seq=1, kind="long_press", age_ms=5,
                         held_ms=2500)  # fmt: skip
        await eventually(lambda: _has(centre.alerts), what="the village centre hearing the alert")

    [alert] = centre.alerts
    assert alert.kind is AlertKind.PANIC


async def test_a_node_whose_last_will_fires_is_a_node_silent_alert_and_its_return_an_event(
    tmp_path: Path, mosquitto: MosquittoBroker, local_broker: MosquittoBroker
) -> None:
    recording = Recorder(mosquitto.host, mosquitto.port, [Channel.ALERT, Channel.EVENT])
    async with recording as fleet, _village(mosquitto.port, local_broker, tmp_path) as centre:
        await _node_says(local_broker, DOOR_NODE.id, NodeChannel.HEARTBEAT, interval_s=30, battery_v=3.9,
                         rssi_dbm=-61)  # fmt: skip
        await _node_says(local_broker, DOOR_NODE.id, NodeChannel.STATUS, state="offline")  # its Will
        await eventually(lambda: _has(centre.alerts), what="the node-silent alert")
        await _node_says(local_broker, DOOR_NODE.id, NodeChannel.STATUS, state="online")
        await eventually(lambda: _event(fleet, EventKind.DEVICE_ONLINE), what="the node coming back")
        # The panic node was never heard: after its silence limit (90 s default) it would be silent too;
        # the door node's 5 s limit is what the next check exercises.
        await eventually(lambda: _fleet_alerts(fleet, 2), timeout_s=15, what="the door node falling silent")

    silent = [i.message for i in fleet.unique().values() if isinstance(i.message, Alert)]
    assert [alert.kind for alert in silent] == [AlertKind.NODE_SILENT, AlertKind.NODE_SILENT]
    assert all(alert.device_id == DOOR_NODE.id for alert in silent)
    assert "connection lost" in silent[0].summary
    assert "silent for" in silent[1].summary
    assert centre.alerts[0] == silent[0]


async def _has(items: list[Alert]) -> bool:
    return bool(items)


async def _fleet_alerts(recorder: Recorder, count: int) -> bool:
    return sum(1 for i in recorder.unique().values() if isinstance(i.message, Alert)) >= count


async def _event(recorder: Recorder, kind: EventKind) -> bool:
    return any(isinstance(i.message, DeviceEvent) and i.message.kind is kind for i in recorder.arrivals)
