"""The demo's villages with sensor nodes: the real firmware on a village broker, heard by the real gateway.

A one-village :class:`SimulatedCounty` given a local Mosquitto runs its gateway agent with node
devices and three firmware nodes on that broker; what reaches the county's Mosquitto is recorded
as the fleet would receive it.
"""

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest

from edge.settings import BrokerSettings
from protocol.messages import Alert, AlertKind, DeviceEvent, EventKind
from protocol.topics import Channel
from simulators.county import SimulatedCounty
from simulators.infra.mosquitto import MosquittoBroker
from simulators.nodes.node import SimulatedNode
from simulators.nodes.village import HEARTBEAT_S, NodeFault, VillageNodes
from simulators.nodes.village_broker import VillageMosquitto
from tests.integration.conftest import eventually
from tests.integration.recorder import Recorder
from tests.integration.village_gateway import is_set

pytestmark = pytest.mark.integration


@pytest.fixture
async def village(
    tmp_path: Path, mosquitto: MosquittoBroker, village_broker: VillageMosquitto
) -> AsyncIterator[VillageNodes]:
    county = SimulatedCounty(
        1,
        BrokerSettings(host=mosquitto.host, port=mosquitto.port),
        tmp_path,
        local_brokers=[village_broker],
    )
    [nodes] = county.villages_with_nodes
    await county.start()
    try:
        for node in nodes.nodes:
            await eventually(partial(is_set, node.online), what=f"{node.node_id} connecting")
        yield nodes
    finally:
        await county.stop()


@pytest.fixture
async def upstream(mosquitto: MosquittoBroker) -> AsyncIterator[Recorder]:
    async with Recorder(mosquitto.host, mosquitto.port, [Channel.ALERT, Channel.EVENT]) as recorder:
        yield recorder


def _node(nodes: VillageNodes, role: str) -> SimulatedNode:
    return next(node for node in nodes.nodes if node.role == role)


def _alerts(recorder: Recorder, kind: AlertKind, device_id: str) -> list[Alert]:
    return [
        m
        for m in (i.message for i in recorder.arrivals)
        if isinstance(m, Alert) and (m.kind, m.device_id) == (kind, device_id)
    ]


def _events(recorder: Recorder, kind: EventKind, device_id: str) -> list[DeviceEvent]:
    return [
        m
        for m in (i.message for i in recorder.arrivals)
        if isinstance(m, DeviceEvent) and (m.kind, m.device_id) == (kind, device_id)
    ]


async def test_a_node_press_is_a_panic_alert_upstream_and_the_gateway_set_every_nodes_heartbeat(
    village: VillageNodes, upstream: Recorder
) -> None:
    button = _node(village, "panic_button")
    assert village.pressable() == [button]
    village.press(button, hold_ms=200)
    assert village.pressable() == []  # resting: a second press now would be a multi-press

    async def alerted() -> bool:
        return len(_alerts(upstream, AlertKind.PANIC, button.node_id)) == 1

    await eventually(alerted, what="the node's panic alert upstream")
    [alert] = _alerts(upstream, AlertKind.PANIC, button.node_id)
    assert alert.grid_id == f"{village.village_id}-grid-2"

    async def heartbeats_pushed() -> bool:
        return all(node.settings["heartbeat_s"] == HEARTBEAT_S for node in village.nodes)

    await eventually(heartbeats_pushed, what="the gateway's heartbeat setting reaching every node")
    await eventually(lambda: _free(village, button), timeout_s=10, what="the button resting")


async def _free(nodes: VillageNodes, node: SimulatedNode) -> bool:
    return node in nodes.pressable()


async def test_a_press_while_the_nodes_wifi_is_gone_arrives_late_and_the_silence_is_reported_and_ended(
    village: VillageNodes, upstream: Recorder
) -> None:
    button = _node(village, "panic_button")
    assert village.inject_fault(button, NodeFault.WIFI_LOST) is NodeFault.WIFI_LOST
    await eventually(lambda: _lost(button), what="the Wi-Fi going")
    assert village.pressable() == [button]  # the point: the firmware keeps the press
    assert village.injectable() == [n for n in village.nodes if n is not button]  # one fault at a time
    village.press(button, hold_ms=200)

    async def silent_then_back() -> bool:
        return bool(_alerts(upstream, AlertKind.NODE_SILENT, button.node_id)) and bool(
            _events(upstream, EventKind.DEVICE_ONLINE, button.node_id)
        )

    async def pressed() -> bool:
        return bool(_alerts(upstream, AlertKind.PANIC, button.node_id))

    await eventually(silent_then_back, timeout_s=20, what="node silent upstream, then online again")
    await eventually(pressed, timeout_s=10, what="the press made offline reaching upstream")

    async def over() -> bool:
        [status] = [s for s in village.status() if s.node_id == button.node_id]
        return (status.link, status.fault) == ("online", None)

    await eventually(over, what="the fault over in the demo's view")


async def _lost(node: SimulatedNode) -> bool:
    return node.wifi_lost()


async def test_a_power_cut_reboots_the_node_and_nobody_presses_it_while_it_is_off(
    village: VillageNodes, upstream: Recorder
) -> None:
    button = _node(village, "panic_button")
    boot = button.boot
    village.inject_fault(button, NodeFault.POWER_CUT)
    assert village.pressable() == []

    async def rebooted() -> bool:
        return button.running and button.boot == boot + 1 and button.online.is_set() and await _free(village, button)

    await eventually(rebooted, timeout_s=15, what="the node back on its next boot, free to be pressed")
    assert [s.fault for s in village.status()] == [None, None, None]


async def test_a_sagging_battery_is_reported_by_the_nodes_heartbeat(village: VillageNodes, upstream: Recorder) -> None:
    sensor = _node(village, "pir_sensor")
    village.inject_fault(sensor, NodeFault.BATTERY_LOW)
    [status] = [s for s in village.status() if s.node_id == sensor.node_id]
    assert status.battery_v is not None
    assert status.fault == NodeFault.BATTERY_LOW.value

    async def reported() -> bool:
        return bool(_events(upstream, EventKind.LOW_BATTERY, sensor.node_id))

    await eventually(reported, timeout_s=3 * HEARTBEAT_S, what="the low battery upstream")
