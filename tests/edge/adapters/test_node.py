"""Sensor nodes: what a node says becomes the observations a wired device would make; duplicates, impossible
events and silence are handled, and the registry builds node adapters only where they can work.

Messages reach the adapter through a fake local bus, synchronously, as :class:`edge.local_bus.LocalBus`
delivers them. Silence is found by the adapter's periodic check, which reads the injected clock: the
tests move the clock past ``silent_after_s`` and wait for the next check instead of for real seconds.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from edge.adapters.base import (
    ButtonPressed,
    Detected,
    DeviceStatus,
    DoorChanged,
    DoorHeldOpen,
    Measured,
    MotionSensed,
    Observation,
    ReportsFirmware,
    TamperChanged,
)
from edge.adapters.node import NODE_DEVICE_KINDS, NodeAdapter, NodeParams, settings_revision
from edge.adapters.registry import build_adapter, build_devices
from edge.errors import EdgeConfigError
from edge.local_bus import NodeListener
from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind, ParamValue
from protocol.messages import EventKind
from protocol.node import (
    NodeConfig,
    NodeConfigResult,
    NodeEvent,
    NodeEventKind,
    NodeHeartbeat,
    NodeInbound,
    NodeSettings,
    NodeState,
    NodeStatus,
)
from tests.edge.helpers import LIVENESS_S, Collector, FakeClock

START_MS = 1_700_000_000_000
SILENT_AFTER_S = 5.0
SILENT_MS = 5_000


class FakeNodeBus:
    """The local bus as an adapter sees it: attach and detach; the test delivers what a node publishes."""

    def __init__(self) -> None:
        self.listeners: dict[str, NodeListener] = {}
        self.configs: list[NodeConfig] = []

    def attach(self, node_id: str, listener: NodeListener) -> None:
        self.listeners[node_id] = listener

    def detach(self, node_id: str, listener: NodeListener) -> None:
        if self.listeners.get(node_id) is listener:
            del self.listeners[node_id]

    def configure_node(self, config: NodeConfig) -> None:
        self.configs.append(config)

    def deliver(self, node_id: str, message: NodeInbound, received_ms: int) -> None:
        self.listeners[node_id].on_node_message(message, received_ms)


class CheckedClock(FakeClock):
    """A FakeClock a test can wait on: the adapter reads it once when it starts and once per silence check."""

    def __init__(self, now_ms: int) -> None:
        super().__init__(now_ms)
        self.reads = 0
        self._read = asyncio.Event()

    def __call__(self) -> int:
        self.reads += 1
        self._read.set()
        return super().__call__()

    async def next_check(self) -> None:
        """Return once the adapter has read the clock again (and acted on what it read)."""
        target = self.reads + 1
        async with asyncio.timeout(LIVENESS_S):
            while self.reads < target:
                self._read.clear()
                await self._read.wait()


def node_spec(
    kind: DeviceKind = DeviceKind.PANIC_BUTTON, device_id: str = "panic-3", **params: ParamValue
) -> DeviceSpec:
    return DeviceSpec(kind=kind, id=device_id, driver=DriverKind.NODE, params=params)


def status(state: NodeState, node_id: str = "panic-3") -> NodeStatus:
    return NodeStatus(node_id=node_id, boot=7, uptime_ms=1_000, state=state)


def heartbeat(node_id: str = "panic-3", **fields: Any) -> NodeHeartbeat:
    values: dict[str, Any] = {"interval_s": 30.0, "battery_v": 3.9, "rssi_dbm": -70} | fields
    return NodeHeartbeat(node_id=node_id, boot=7, uptime_ms=60_000, **values)


def event(kind: NodeEventKind, seq: int = 1, node_id: str = "panic-3", **fields: Any) -> NodeEvent:
    values: dict[str, Any] = {"boot": 7, "age_ms": 0} | fields
    return NodeEvent(node_id=node_id, uptime_ms=60_000, seq=seq, kind=kind, **values)


def offline(observation: Observation) -> bool:
    return isinstance(observation, DeviceStatus) and not observation.online


class Node:
    """A running adapter with its bus, clock and emitted observations."""

    def __init__(self, adapter: NodeAdapter, bus: FakeNodeBus, clock: CheckedClock, collector: Collector) -> None:
        self.adapter = adapter
        self.bus = bus
        self.clock = clock
        self.collector = collector

    @property
    def observations(self) -> list[Observation]:
        return self.collector.observations

    def hear(self, message: NodeInbound, received_ms: int | None = None) -> None:
        self.bus.deliver(self.adapter.node_id, message, self.clock.now_ms if received_ms is None else received_ms)


@asynccontextmanager
async def running(spec: DeviceSpec) -> AsyncIterator[Node]:
    bus = FakeNodeBus()
    clock = CheckedClock(START_MS)
    adapter = NodeAdapter(spec, clock, bus)
    collector = Collector(LIVENESS_S)
    task = asyncio.create_task(adapter.run(collector))
    await asyncio.sleep(0)  # let run() attach to the bus
    try:
        yield Node(adapter, bus, clock, collector)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# --- attaching ----------------------------------------------------------------------------------------------


async def test_a_running_adapter_listens_for_its_node_and_stops_listening_when_cancelled() -> None:
    bus = FakeNodeBus()
    adapter = NodeAdapter(node_spec(), FakeClock(START_MS), bus)

    task = asyncio.create_task(adapter.run(Collector()))
    await asyncio.sleep(0)
    attached = dict(bus.listeners)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert attached == {"panic-3": adapter}
    assert bus.listeners == {}


async def test_a_node_with_its_own_id_is_heard_under_it_and_reported_as_the_device() -> None:
    async with running(node_spec(node_id="n-7f3a")) as node:
        assert set(node.bus.listeners) == {"n-7f3a"}
        node.hear(event(NodeEventKind.PRESS, node_id="n-7f3a"))

    assert node.adapter.node_id == "n-7f3a"
    assert node.observations == [ButtonPressed("panic-3", START_MS, 0)]


async def test_nothing_is_emitted_for_messages_heard_before_the_adapter_runs_or_after_it_stopped() -> None:
    bus = FakeNodeBus()
    collector = Collector()
    adapter = NodeAdapter(node_spec(), FakeClock(START_MS), bus)
    adapter.on_node_message(event(NodeEventKind.PRESS, seq=1), START_MS)

    task = asyncio.create_task(adapter.run(collector))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    adapter.on_node_message(event(NodeEventKind.PRESS, seq=2), START_MS)

    assert collector.observations == []


# --- events -------------------------------------------------------------------------------------------------


async def test_a_press_is_timestamped_when_it_happened_not_when_it_arrived() -> None:
    async with running(node_spec()) as node:
        node.hear(event(NodeEventKind.PRESS, age_ms=1_250, held_ms=180), received_ms=START_MS + 2_000)

    assert node.observations == [ButtonPressed("panic-3", START_MS + 750, held_ms=180, presses=1)]


async def test_an_event_kept_on_flash_across_a_reset_is_timestamped_on_receipt() -> None:
    async with running(node_spec()) as node:
        node.hear(event(NodeEventKind.PRESS, boot=6, age_ms=None), received_ms=START_MS + 2_000)

    assert node.observations == [ButtonPressed("panic-3", START_MS + 2_000, held_ms=0)]


async def test_a_long_press_keeps_how_long_the_button_was_held() -> None:
    async with running(node_spec()) as node:
        node.hear(event(NodeEventKind.LONG_PRESS, held_ms=3_200))

    assert node.observations == [ButtonPressed("panic-3", START_MS, held_ms=3_200, presses=1)]


async def test_a_multi_press_is_one_press_observation_counting_the_presses() -> None:
    async with running(node_spec()) as node:
        node.hear(event(NodeEventKind.MULTI_PRESS, count=3, held_ms=90))

    assert node.observations == [ButtonPressed("panic-3", START_MS, held_ms=90, presses=3)]


async def test_an_access_request_node_presses_like_a_button() -> None:
    async with running(node_spec(DeviceKind.ACCESS_REQUEST, "exit-1")) as node:
        node.hear(event(NodeEventKind.PRESS, node_id="exit-1", held_ms=120))

    assert node.observations == [ButtonPressed("exit-1", START_MS, held_ms=120)]


async def test_a_door_nodes_events_open_and_close_the_door() -> None:
    async with running(node_spec(DeviceKind.DOOR_CONTACT, "door-1")) as node:
        node.hear(event(NodeEventKind.DOOR_OPEN, seq=1, node_id="door-1", age_ms=40), received_ms=START_MS + 100)
        node.hear(event(NodeEventKind.DOOR_CLOSED, seq=2, node_id="door-1"), received_ms=START_MS + 9_000)

    assert node.observations == [
        DoorChanged("door-1", START_MS + 60, is_open=True),
        DoorChanged("door-1", START_MS + 9_000, is_open=False),
    ]


async def test_a_pir_nodes_motion_is_sensed_motion() -> None:
    async with running(node_spec(DeviceKind.PIR_SENSOR, "pir-1")) as node:
        node.hear(event(NodeEventKind.MOTION, node_id="pir-1", age_ms=15))

    assert node.observations == [MotionSensed("pir-1", START_MS - 15)]


@pytest.mark.parametrize("kind", sorted(NODE_DEVICE_KINDS))
async def test_every_node_reports_tamper_raised_and_cleared(kind: DeviceKind) -> None:
    async with running(node_spec(kind, "node-1")) as node:
        node.hear(event(NodeEventKind.TAMPER, seq=1, node_id="node-1"), received_ms=START_MS + 1)
        node.hear(event(NodeEventKind.TAMPER_CLEARED, seq=2, node_id="node-1"), received_ms=START_MS + 2)

    assert node.observations == [
        TamperChanged("node-1", START_MS + 1, tampered=True, reason="node tampered"),
        TamperChanged("node-1", START_MS + 2, tampered=False, reason="node tamper cleared"),
    ]


async def test_a_redelivered_event_is_emitted_once_and_counted_as_a_duplicate() -> None:
    async with running(node_spec()) as node:
        node.hear(event(NodeEventKind.PRESS, seq=5, held_ms=100), received_ms=START_MS)
        node.hear(event(NodeEventKind.PRESS, seq=5, held_ms=100), received_ms=START_MS + 3_000)  # QoS 1 again
        node.hear(event(NodeEventKind.PRESS, seq=6, held_ms=200), received_ms=START_MS + 4_000)
        node.hear(event(NodeEventKind.PRESS, seq=5, held_ms=100), received_ms=START_MS + 5_000)

    assert node.observations == [
        ButtonPressed("panic-3", START_MS, held_ms=100),
        ButtonPressed("panic-3", START_MS + 4_000, held_ms=200),
    ]
    assert node.adapter.duplicates == 2


async def test_the_same_sequence_number_after_a_reboot_is_a_new_event() -> None:
    async with running(node_spec()) as node:
        node.hear(event(NodeEventKind.PRESS, seq=1, boot=7), received_ms=START_MS)
        node.hear(event(NodeEventKind.PRESS, seq=1, boot=8), received_ms=START_MS + 60_000)

    assert node.observations == [
        ButtonPressed("panic-3", START_MS, held_ms=0),
        ButtonPressed("panic-3", START_MS + 60_000, held_ms=0),
    ]
    assert node.adapter.duplicates == 0


IMPOSSIBLE = [
    (kind, event_kind)
    for kind in sorted(NODE_DEVICE_KINDS)
    for event_kind in NodeEventKind
    if not (
        event_kind in {NodeEventKind.TAMPER, NodeEventKind.TAMPER_CLEARED}
        or (
            kind in {DeviceKind.PANIC_BUTTON, DeviceKind.ACCESS_REQUEST}
            and event_kind in {NodeEventKind.PRESS, NodeEventKind.LONG_PRESS, NodeEventKind.MULTI_PRESS}
        )
        or (
            kind is DeviceKind.DOOR_CONTACT
            and event_kind in {NodeEventKind.DOOR_OPEN, NodeEventKind.DOOR_CLOSED, NodeEventKind.DOOR_HELD_OPEN}
        )
        or (kind is DeviceKind.PIR_SENSOR and event_kind is NodeEventKind.MOTION)
    )
]


@pytest.mark.parametrize(("kind", "event_kind"), IMPOSSIBLE)
async def test_an_event_the_device_cannot_produce_is_counted_and_ignored(
    kind: DeviceKind, event_kind: NodeEventKind
) -> None:
    async with running(node_spec(kind, "node-1")) as node:
        node.hear(event(event_kind, node_id="node-1"))

    assert node.observations == []
    assert node.adapter.unexpected == 1


async def test_a_door_contact_that_sends_a_press_does_not_raise_a_panic_and_its_real_events_still_count() -> None:
    async with running(node_spec(DeviceKind.DOOR_CONTACT, "door-1")) as node:
        node.hear(event(NodeEventKind.PRESS, seq=1, node_id="door-1"))
        node.hear(event(NodeEventKind.DOOR_OPEN, seq=2, node_id="door-1"))

    assert node.observations == [DoorChanged("door-1", START_MS, is_open=True)]
    assert node.adapter.unexpected == 1


# --- heartbeats and battery ---------------------------------------------------------------------------------


async def test_a_heartbeat_becomes_rssi_and_battery_telemetry_stamped_on_receipt() -> None:
    async with running(node_spec()) as node:
        node.hear(heartbeat(battery_v=3.87, rssi_dbm=-71), received_ms=START_MS + 30_000)

    assert node.observations == [
        Measured("panic-3", "rssi_dbm", -71.0, START_MS + 30_000),
        Measured("panic-3", "battery_v", 3.87, START_MS + 30_000),
    ]


async def test_a_mains_powered_node_reports_no_battery() -> None:
    async with running(node_spec(low_battery_v=3.3)) as node:
        node.hear(heartbeat(battery_v=None, rssi_dbm=-60))
        node.hear(heartbeat(battery_v=None, rssi_dbm=None))

    assert node.observations == [Measured("panic-3", "rssi_dbm", -60.0, START_MS)]


async def test_a_battery_below_the_threshold_is_detected_once() -> None:
    async with running(node_spec(low_battery_v=3.3)) as node:
        node.hear(heartbeat(battery_v=3.4, rssi_dbm=None), received_ms=START_MS)
        node.hear(heartbeat(battery_v=3.29, rssi_dbm=None), received_ms=START_MS + 30_000)
        node.hear(heartbeat(battery_v=3.2, rssi_dbm=None), received_ms=START_MS + 60_000)
        node.hear(heartbeat(battery_v=3.35, rssi_dbm=None), received_ms=START_MS + 90_000)  # not recovered enough
        node.hear(heartbeat(battery_v=3.1, rssi_dbm=None), received_ms=START_MS + 120_000)

    detections = [o for o in node.observations if isinstance(o, Detected)]
    assert detections == [
        Detected("panic-3", START_MS + 30_000, EventKind.LOW_BATTERY.value, {"battery_v": 3.29, "threshold_v": 3.3})
    ]
    assert [o.value for o in node.observations if isinstance(o, Measured)] == [3.4, 3.29, 3.2, 3.35, 3.1]


async def test_a_battery_at_the_threshold_is_not_low() -> None:
    async with running(node_spec(low_battery_v=3.3)) as node:
        node.hear(heartbeat(battery_v=3.3, rssi_dbm=None))

    assert node.observations == [Measured("panic-3", "battery_v", 3.3, START_MS)]


@pytest.mark.parametrize(("threshold", "recovered"), [(3.3, 3.45), (3.3, 3.4), (3.2, 3.3), (3.0, 3.1), (3.6, 3.7)])
async def test_a_battery_that_recovers_by_a_tenth_of_a_volt_is_reported_again_when_it_falls_again(
    threshold: float, recovered: float
) -> None:
    async with running(node_spec(low_battery_v=threshold)) as node:
        node.hear(heartbeat(battery_v=threshold - 0.2, rssi_dbm=None), received_ms=START_MS)
        node.hear(heartbeat(battery_v=recovered, rssi_dbm=None), received_ms=START_MS + 1)  # a new battery
        node.hear(heartbeat(battery_v=threshold - 0.05, rssi_dbm=None), received_ms=START_MS + 2)

    detections = [o for o in node.observations if isinstance(o, Detected)]
    assert [d.ts for d in detections] == [START_MS, START_MS + 2]
    assert all(d.kind == "low_battery" for d in detections)


async def test_without_a_threshold_a_low_battery_is_only_telemetry() -> None:
    async with running(node_spec()) as node:
        node.hear(heartbeat(battery_v=0.5, rssi_dbm=None))

    assert node.observations == [Measured("panic-3", "battery_v", 0.5, START_MS)]


# --- firmware version ---------------------------------------------------------------------------------------


async def test_the_firmware_version_is_the_latest_heartbeats_and_only_a_heartbeat_sets_it() -> None:
    async with running(node_spec()) as node:
        assert isinstance(node.adapter, ReportsFirmware)
        node.hear(status(NodeState.ONLINE))
        node.hear(event(NodeEventKind.PRESS))
        before_heartbeat = node.adapter.firmware
        node.hear(heartbeat(firmware="1.0.0"))
        first = node.adapter.firmware
        node.hear(event(NodeEventKind.PRESS, seq=2))
        node.hear(status(NodeState.OFFLINE))
        kept_through_events_and_last_will = node.adapter.firmware
        node.hear(heartbeat(firmware="1.1.0"))

        assert (before_heartbeat, first, kept_through_events_and_last_will) == (None, "1.0.0", "1.0.0")
        assert node.adapter.firmware == "1.1.0"


async def test_a_heartbeat_without_a_firmware_version_leaves_the_version_unknown() -> None:
    async with running(node_spec()) as node:
        node.hear(heartbeat(firmware="1.0.0"))
        node.hear(heartbeat())  # firmware "" : a node that does not say

        assert node.adapter.firmware is None


async def test_a_version_unusable_upstream_is_not_kept_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    async with running(node_spec()) as node:
        node.hear(heartbeat(firmware="1.0.0"))
        node.hear(heartbeat(firmware="1.0.1\nnightly"))
        node.hear(heartbeat(firmware="1.0.1\nnightly"))

        assert node.adapter.firmware is None
    assert [r.getMessage() for r in caplog.records if "no usable version" in r.getMessage()] == [
        "node panic-3 reports firmware '1.0.1\\nnightly', which is no usable version; not reported upstream"
    ]


# --- online and offline -------------------------------------------------------------------------------------


async def test_first_contact_reports_nothing_since_nothing_was_reported_offline() -> None:
    async with running(node_spec()) as node:
        node.hear(status(NodeState.ONLINE))

    assert node.observations == []


async def test_the_nodes_last_will_takes_it_offline_at_once() -> None:
    async with running(node_spec()) as node:
        node.hear(status(NodeState.ONLINE), received_ms=START_MS)
        node.hear(status(NodeState.OFFLINE), received_ms=START_MS + 40_000)
        node.hear(status(NodeState.OFFLINE), received_ms=START_MS + 41_000)  # the retained will, once more

    assert node.observations == [DeviceStatus("panic-3", START_MS + 40_000, False, "node panic-3 connection lost")]


async def test_a_retained_last_will_heard_first_reports_the_node_offline() -> None:
    async with running(node_spec()) as node:
        node.hear(status(NodeState.OFFLINE))

    assert node.observations == [DeviceStatus("panic-3", START_MS, False, "node panic-3 connection lost")]


@pytest.mark.parametrize(
    "message",
    [status(NodeState.ONLINE), heartbeat(battery_v=None, rssi_dbm=None), event(NodeEventKind.TAMPER_CLEARED)],
    ids=["status", "heartbeat", "event"],
)
async def test_anything_heard_after_the_last_will_brings_the_node_back_online(message: NodeInbound) -> None:
    async with running(node_spec()) as node:
        node.hear(status(NodeState.OFFLINE), received_ms=START_MS)
        node.hear(message, received_ms=START_MS + 5_000)

    assert node.observations[:2] == [
        DeviceStatus("panic-3", START_MS, False, "node panic-3 connection lost"),
        DeviceStatus("panic-3", START_MS + 5_000, True, "node panic-3 heard from"),
    ]


async def test_a_press_from_an_offline_node_comes_after_its_return_online() -> None:
    async with running(node_spec()) as node:
        node.hear(status(NodeState.OFFLINE), received_ms=START_MS)
        node.hear(event(NodeEventKind.PRESS, age_ms=500), received_ms=START_MS + 5_000)

    assert node.observations == [
        DeviceStatus("panic-3", START_MS, False, "node panic-3 connection lost"),
        DeviceStatus("panic-3", START_MS + 5_000, True, "node panic-3 heard from"),
        ButtonPressed("panic-3", START_MS + 4_500, held_ms=0),
    ]


async def test_a_node_never_heard_since_start_goes_offline_after_silent_after_s() -> None:
    async with running(node_spec(silent_after_s=SILENT_AFTER_S)) as node:
        node.clock.now_ms = START_MS + SILENT_MS
        await node.clock.next_check()

    assert node.observations == [DeviceStatus("panic-3", START_MS + SILENT_MS, False, "node panic-3 never heard")]


async def test_a_node_heard_then_silent_goes_offline() -> None:
    async with running(node_spec(silent_after_s=SILENT_AFTER_S)) as node:
        node.hear(status(NodeState.ONLINE), received_ms=START_MS + 1_000)
        node.clock.now_ms = START_MS + 1_000 + 7_400
        await node.clock.next_check()

    assert node.observations == [DeviceStatus("panic-3", START_MS + 8_400, False, "node panic-3 silent for 7 s")]


async def test_silence_counts_from_the_last_message_heard_not_from_the_start() -> None:
    async with running(node_spec(silent_after_s=SILENT_AFTER_S)) as node:
        node.hear(heartbeat(battery_v=None, rssi_dbm=None), received_ms=START_MS + 3_000)
        node.clock.now_ms = START_MS + 3_000 + SILENT_MS - 1
        await node.clock.next_check()

    assert node.observations == []


async def test_a_silent_node_is_reported_once_and_back_online_when_heard() -> None:
    async with running(node_spec(silent_after_s=SILENT_AFTER_S)) as node:
        node.clock.now_ms = START_MS + SILENT_MS
        await node.collector.wait_until(lambda observations: any(map(offline, observations)))
        node.clock.now_ms = START_MS + 10 * SILENT_MS
        await node.clock.next_check()
        still_silent = list(node.observations)
        node.hear(heartbeat(battery_v=None, rssi_dbm=-80), received_ms=START_MS + 10 * SILENT_MS + 1)

    assert still_silent == [DeviceStatus("panic-3", START_MS + SILENT_MS, False, "node panic-3 never heard")]
    assert node.observations[1:] == [
        DeviceStatus("panic-3", START_MS + 10 * SILENT_MS + 1, True, "node panic-3 heard from"),
        Measured("panic-3", "rssi_dbm", -80.0, START_MS + 10 * SILENT_MS + 1),
    ]


async def test_a_node_whose_last_will_was_heard_is_not_reported_silent_as_well() -> None:
    async with running(node_spec(silent_after_s=SILENT_AFTER_S)) as node:
        node.hear(status(NodeState.OFFLINE), received_ms=START_MS)
        node.clock.now_ms = START_MS + 3 * SILENT_MS
        await node.clock.next_check()

    assert node.observations == [DeviceStatus("panic-3", START_MS, False, "node panic-3 connection lost")]


# --- parameters and the registry ----------------------------------------------------------------------------


def test_node_parameters_default_to_three_missed_heartbeats_and_no_battery_warning() -> None:
    params = NodeParams()

    assert params.node_id is None
    assert params.silent_after_s == 90.0
    assert params.low_battery_v is None


def test_whole_seconds_and_volts_from_a_technicians_toml_are_accepted() -> None:
    adapter = NodeAdapter(node_spec(silent_after_s=30, low_battery_v=3), FakeClock(START_MS), FakeNodeBus())

    assert adapter.node_id == "panic-3"


@pytest.mark.parametrize("kind", [DeviceKind.CHECKPOINT_CAMERA, DeviceKind.SIREN])
def test_the_adapter_refuses_a_device_no_node_can_be(kind: DeviceKind) -> None:
    with pytest.raises(ValueError, match=f"a sensor node cannot serve a {kind}"):
        NodeAdapter(node_spec(kind, "dev-1"), FakeClock(START_MS), FakeNodeBus())


def test_the_registry_builds_a_node_adapter_on_the_local_bus() -> None:
    bus = FakeNodeBus()
    device = node_spec(DeviceKind.DOOR_CONTACT, "door-1", node_id="n-door", silent_after_s=60)

    adapter = build_adapter(device, FakeClock(START_MS), node_bus=bus)

    assert isinstance(adapter, NodeAdapter)
    assert adapter.spec is device
    assert adapter.node_id == "n-door"


def test_build_devices_hands_the_local_bus_to_every_node() -> None:
    specs = [node_spec(DeviceKind.PANIC_BUTTON, "panic-1"), node_spec(DeviceKind.PIR_SENSOR, "pir-1")]

    adapters, sirens = build_devices(specs, FakeClock(START_MS), node_bus=FakeNodeBus())

    assert [type(adapter) for adapter in adapters] == [NodeAdapter, NodeAdapter]
    assert [adapter.spec for adapter in adapters] == specs
    assert sirens == []


def test_a_node_without_a_local_broker_is_a_config_error() -> None:
    with pytest.raises(EdgeConfigError, match=r"device panic-3: sensor nodes need the gateway's local_broker"):
        build_adapter(node_spec(), FakeClock(START_MS))


def test_a_camera_cannot_be_a_node() -> None:
    with pytest.raises(EdgeConfigError, match=r"device cam-1: a sensor node cannot serve a checkpoint_camera"):
        build_adapter(node_spec(DeviceKind.CHECKPOINT_CAMERA, "cam-1"), FakeClock(START_MS), node_bus=FakeNodeBus())


def test_a_siren_on_a_node_is_an_output_not_an_adapter() -> None:
    with pytest.raises(EdgeConfigError, match=r"device siren-1: a siren is an output"):
        build_adapter(node_spec(DeviceKind.SIREN, "siren-1"), FakeClock(START_MS), node_bus=FakeNodeBus())


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"silent_after_s": 4.9}, "silent_after_s: Input should be greater than or equal to 5"),
        ({"silent_after_s": 86_401}, "silent_after_s: Input should be less than or equal to 86400"),
        ({"silent_after_s": "90"}, "silent_after_s: Input should be a valid number"),
        ({"silent_after_s": True}, "silent_after_s: Input should be a valid number"),
        ({"low_battery_v": 0}, "low_battery_v: Input should be greater than 0"),
        ({"low_battery_v": 61}, "low_battery_v: Input should be less than or equal to 60"),
        ({"node_id": "Node 7"}, "node_id: String should match pattern"),
        ({"node_id": 7}, "node_id: Input should be a valid string"),
        ({"pin": 17}, "pin: Extra inputs are not permitted"),
    ],
)
def test_invalid_node_parameters_are_config_errors_naming_the_device_and_the_problem(
    params: dict[str, ParamValue], problem: str
) -> None:
    device = node_spec(DeviceKind.PANIC_BUTTON, "panic-3", **params)

    with pytest.raises(
        EdgeConfigError, match=rf"device panic-3 \(panic_button, node driver\): invalid params: {problem}"
    ):
        build_adapter(device, FakeClock(START_MS), node_bus=FakeNodeBus())


# --- settings pushed to the node ------------------------------------------------------------------------------


async def test_a_device_with_firmware_settings_pushes_them_under_a_revision_of_their_content() -> None:
    async with running(node_spec(long_press_ms=1_500, sleep="light", silent_after_s=30.0)) as node:
        pushed = list(node.bus.configs)

    expected = NodeSettings(long_press_ms=1_500, sleep="light")
    assert pushed == [NodeConfig(node_id="panic-3", revision=settings_revision(expected), settings=expected)]
    assert pushed[0].encode() == (
        b'{"schema_version":1,"node_id":"panic-3","revision":"%s","settings":{"long_press_ms":1500,"sleep":"light"}}'
        % settings_revision(expected).encode()
    )


async def test_a_device_without_firmware_settings_pushes_nothing_and_the_node_keeps_its_own() -> None:
    async with running(node_spec(silent_after_s=30.0)) as node:
        assert node.bus.configs == []


def test_the_revision_changes_with_the_settings_and_only_with_them() -> None:
    one = settings_revision(NodeSettings(long_press_ms=1_500))
    assert one == settings_revision(NodeSettings(long_press_ms=1_500))
    assert one != settings_revision(NodeSettings(long_press_ms=1_600))


def test_a_firmware_setting_out_of_the_firmware_range_is_refused_on_the_gateway() -> None:
    with pytest.raises(ValueError, match="long_press_ms"):
        NodeParams.model_validate({"long_press_ms": 100})


async def test_a_refused_settings_update_becomes_an_event_with_the_nodes_reasons() -> None:
    result = NodeConfigResult(
        node_id="panic-3", boot=7, uptime_ms=5_000, revision="r1", accepted=False, errors=["sleep: must be one of"]
    )
    async with running(node_spec(long_press_ms=1_500)) as node:
        node.hear(result)

    assert node.observations == [
        Detected(
            "panic-3",
            START_MS,
            EventKind.NODE_CONFIG_REJECTED.value,
            {"revision": "r1", "errors": "sleep: must be one of"},
        )
    ]


async def test_an_applied_settings_update_is_only_logged() -> None:
    result = NodeConfigResult(node_id="panic-3", boot=7, uptime_ms=5_000, revision="r1", accepted=True)
    async with running(node_spec(long_press_ms=1_500)) as node:
        node.hear(result)

    assert node.observations == []


async def test_a_door_node_held_open_report_becomes_a_held_open_observation() -> None:
    async with running(node_spec(DeviceKind.DOOR_CONTACT, "door-1")) as node:
        node.hear(event(NodeEventKind.DOOR_HELD_OPEN, node_id="door-1", held_ms=120_000, age_ms=0))

    assert node.observations == [DoorHeldOpen("door-1", START_MS, 120_000)]
