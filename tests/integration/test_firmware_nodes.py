"""The real node firmware (run by the node simulator) talks to the real gateway agent over the village's Mosquitto.

As in a village: the node connects to the local broker, the edge agent hears it there and forwards
alerts and events to the county's broker (the uplink). Unlike ``test_sensor_nodes.py``, nothing
here is hand-made JSON: every node message is what ``firmware/outpost_node`` builds.
"""

import asyncio
import contextlib
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aiomqtt
import pytest

from edge.adapters.node import settings_revision
from edge.local_bus import LocalBus
from edge.settings import BrokerSettings
from protocol.codec import Rejection
from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind
from protocol.messages import Alert, AlertKind, DeviceEvent, EventKind, Severity
from protocol.node import NodeChannel, NodeConfigResult, NodeDecoder, NodeSettings, node_topic
from protocol.topics import Channel
from simulators.infra.mosquitto import MosquittoBroker
from simulators.nodes.flash import factory_settings
from simulators.nodes.node import SimulatedNode
from simulators.nodes.village_broker import VillageMosquitto, local_access
from tests.integration.conftest import eventually
from tests.integration.recorder import Recorder
from tests.integration.village_gateway import is_set, village_gateway

pytestmark = pytest.mark.integration

VILLAGE = "xiaohe"
GATEWAY = "gw-xiaohe"
PUSHED = NodeSettings(long_press_ms=1500)
PANIC_NODE = DeviceSpec(
    kind=DeviceKind.PANIC_BUTTON,
    id="node-panic-well",
    driver=DriverKind.NODE,
    grid_id="xiaohe-grid-2",
    params={"long_press_ms": 1500, "low_battery_v": 3.3},
)


def _gateway(uplink: MosquittoBroker, local: VillageMosquitto, tmp_path: Path) -> AbstractAsyncContextManager[LocalBus]:
    """The edge agent with one node device, on the village's local broker, forwarding to ``uplink``."""
    uplink_settings = BrokerSettings(host=uplink.host, port=uplink.port)
    return village_gateway(VILLAGE, GATEWAY, uplink_settings, local, tmp_path / "gateway", [PANIC_NODE])


def _node(tmp_path: Path, local: VillageMosquitto, battery_volts: float = 3.9) -> SimulatedNode:
    """The panic node, flashed with its own login to the village broker."""
    login = local_access(local).node_login(PANIC_NODE.id)
    flashed = factory_settings(PANIC_NODE.id, "panic_button", local.host, local.port, battery_adc_pin=34, **login)
    return SimulatedNode(tmp_path / "node", flashed, seed=5, battery_volts=battery_volts, reconnect_base_ms=200)


async def test_a_firmware_node_press_becomes_one_panic_alert_upstream(
    tmp_path: Path, mosquitto: MosquittoBroker, village_broker: VillageMosquitto
) -> None:
    recording = Recorder(mosquitto.host, mosquitto.port, [Channel.ALERT])
    async with (
        recording as fleet,
        _gateway(mosquitto, village_broker, tmp_path),
        _node(tmp_path, village_broker) as node,
    ):
        await eventually(lambda: is_set(node.online), what="the node connecting")
        await node.press()
        await eventually(lambda: _has(_panics(fleet)), what="the panic alert reaching the county broker")
        await eventually(lambda: _idle(node), what="the node finishing the gesture")
        await asyncio.sleep(0.5)  # room for a second alert, if the press were counted twice

    # Only panics count: the node powered off at the end of the test sends its Last Will (node silent).
    [alert] = _panics(fleet)
    assert (alert.kind, alert.severity, alert.device_id, alert.grid_id) == (
        AlertKind.PANIC, Severity.CRITICAL, PANIC_NODE.id, PANIC_NODE.grid_id,
    )  # fmt: skip


async def test_a_node_with_another_node_s_login_cannot_speak_for_the_panic_button(
    tmp_path: Path, mosquitto: MosquittoBroker, village_broker: VillageMosquitto
) -> None:
    """Node spoofing: firmware flashed as the panic button but logged in as the door contact (a login taken from
    another node) presses. Mosquitto drops what it publishes on the panic button's topics and closes its
    connection, every time it comes back with its press, and the gateway hears nothing; the real panic button,
    on its own login, is heard: one alert."""
    door_login = local_access(village_broker).node_login("node-door-store")
    forged = factory_settings(PANIC_NODE.id, "panic_button", village_broker.host, village_broker.port, **door_login)
    spoofer = SimulatedNode(tmp_path / "spoofer", forged, seed=6, reconnect_base_ms=200)
    recording = Recorder(mosquitto.host, mosquitto.port, [Channel.ALERT])
    async with recording as fleet, _gateway(mosquitto, village_broker, tmp_path):
        async with spoofer:
            await spoofer.press()
            tries = _logins_as(village_broker, "node-door-store")
            await eventually(lambda: _more(tries, village_broker), what="the spoofer trying again with its press")
        async with _node(tmp_path, village_broker) as node:
            await eventually(lambda: is_set(node.online), what="the real node connecting")
            await node.press()
            await eventually(lambda: _has(_panics(fleet)), what="the real panic alert reaching the county broker")
            await eventually(lambda: _idle(node), what="the node finishing the gesture")
            await asyncio.sleep(0.5)  # room for a second alert, if the spoofed press had been heard

    assert len(_panics(fleet)) == 1


def _logins_as(broker: VillageMosquitto, user: str) -> int:
    """How many times a client has logged in to ``broker`` as ``user`` (Mosquitto logs every connection)."""
    return broker.log_path.read_text(encoding="utf-8").count(f"u'{user}')")


async def _more(than: int, broker: VillageMosquitto) -> bool:
    return _logins_as(broker, "node-door-store") > than + 2


async def test_the_gateway_pushes_the_devices_firmware_settings_and_the_node_applies_them(
    tmp_path: Path, mosquitto: MosquittoBroker, village_broker: VillageMosquitto
) -> None:
    results: list[NodeConfigResult] = []
    async with (
        _ConfigResults(village_broker, results),
        _gateway(mosquitto, village_broker, tmp_path),
        _node(tmp_path, village_broker) as node,
    ):
        await eventually(lambda: _has(results), what="the node answering the pushed settings")
        settings = node.settings

    # Every answer accepts (the gateway may publish its retained push twice while connecting).
    assert {(r.revision, r.accepted, tuple(r.errors)) for r in results} == {(settings_revision(PUSHED), True, ())}
    assert (settings["long_press_ms"], settings["revision"]) == (1500, settings_revision(PUSHED))


async def test_a_node_reporting_a_low_battery_is_a_low_battery_event_upstream(
    tmp_path: Path, mosquitto: MosquittoBroker, village_broker: VillageMosquitto
) -> None:
    recording = Recorder(mosquitto.host, mosquitto.port, [Channel.EVENT])
    node = _node(tmp_path, village_broker, battery_volts=3.1)  # its first heartbeat goes out at boot
    async with recording as fleet, _gateway(mosquitto, village_broker, tmp_path), node:
        await eventually(lambda: _event(fleet, EventKind.LOW_BATTERY), what="the low-battery event upstream")

    [event] = [i.message for i in fleet.arrivals if isinstance(i.message, DeviceEvent)
               and i.message.kind is EventKind.LOW_BATTERY]  # fmt: skip
    assert event.device_id == PANIC_NODE.id
    assert event.evidence == {"battery_v": 3.1, "threshold_v": 3.3}


class _ConfigResults:
    """The node's answers on the local broker, decoded as the gateway decodes them."""

    def __init__(self, broker: VillageMosquitto, into: list[NodeConfigResult]) -> None:
        self._broker = broker
        self._into = into
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> None:
        self._task = asyncio.create_task(self._listen())
        await asyncio.wait_for(self._ready.wait(), 10)

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        decoder = NodeDecoder()
        gateway = self._broker.gateway_settings()
        password = gateway.password.get_secret_value() if gateway.password is not None else None
        async with aiomqtt.Client(
            gateway.host, gateway.port, username=gateway.username, password=password, identifier="config-results"
        ) as client:
            await client.subscribe(node_topic(PANIC_NODE.id, NodeChannel.CONFIG_RESULT), qos=1)
            self._ready.set()
            async for message in client.messages:
                decoded = decoder.decode(str(message.topic), bytes(message.payload))
                assert not isinstance(decoded, Rejection), decoded
                if isinstance(decoded.message, NodeConfigResult):
                    self._into.append(decoded.message)


def _panics(recorder: Recorder) -> list[Alert]:
    alerts = [i.message for i in recorder.unique().values() if isinstance(i.message, Alert)]
    return [alert for alert in alerts if alert.kind is AlertKind.PANIC]


async def _event(recorder: Recorder, kind: EventKind) -> bool:
    return any(isinstance(i.message, DeviceEvent) and i.message.kind is kind for i in recorder.arrivals)


async def _idle(node: SimulatedNode) -> bool:
    return node.node.idle()


async def _has(items: list[Alert] | list[NodeConfigResult]) -> bool:
    return bool(items)
