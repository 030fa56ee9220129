"""Simulated devices: observations are timestamped when they happen and emitted through run()."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from edge.adapters.base import ButtonPressed, DeviceAdapter, DoorChanged, Measured, Observation
from edge.adapters.registry import build_adapter
from edge.adapters.simulated import (
    SimulatedCheckpointCamera,
    SimulatedDoorContact,
    SimulatedPanicButton,
    build_simulated,
)
from protocol.gateway_config import DeviceKind, DeviceSpec
from tests.edge.helpers import Collector, FakeClock

NOW_MS = 1_700_000_000_000


@asynccontextmanager
async def running(adapter: DeviceAdapter, emit: Callable[[Observation], None]) -> AsyncIterator[None]:
    task = asyncio.create_task(adapter.run(emit))
    try:
        yield
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def spec(kind: DeviceKind, device_id: str, **params: float) -> DeviceSpec:
    return DeviceSpec(kind=kind, id=device_id, params=params)


async def test_a_press_is_timestamped_when_pressed_not_when_emitted() -> None:
    clock = FakeClock(1_000)
    button = SimulatedPanicButton(spec(DeviceKind.PANIC_BUTTON, "panic-1"), clock)
    button.press(held_ms=900)
    clock.now_ms = 5_000
    collector = Collector()

    async with running(button, collector):
        observations = await collector.wait_for(1)

    assert observations == [ButtonPressed("panic-1", 1_000, 900)]


async def test_presses_are_emitted_in_order_while_running() -> None:
    clock = FakeClock(1_000)
    button = SimulatedPanicButton(spec(DeviceKind.PANIC_BUTTON, "panic-1"), clock)
    collector = Collector()

    async with running(button, collector):
        button.press()
        clock.now_ms = 2_000
        button.press(held_ms=3_000)
        observations = await collector.wait_for(2)

    assert observations == [ButtonPressed("panic-1", 1_000, 150), ButtonPressed("panic-1", 2_000, 3_000)]


async def test_door_open_and_close_are_emitted_with_their_own_times() -> None:
    clock = FakeClock(10)
    door = SimulatedDoorContact(spec(DeviceKind.DOOR_CONTACT, "door-1"), clock)
    door.open()
    clock.now_ms = 20
    door.close()
    collector = Collector()

    async with running(door, collector):
        observations = await collector.wait_for(2)

    assert observations == [DoorChanged("door-1", 10, is_open=True), DoorChanged("door-1", 20, is_open=False)]


async def test_nothing_is_emitted_before_anything_happens() -> None:
    button = SimulatedPanicButton(spec(DeviceKind.PANIC_BUTTON, "panic-1"), FakeClock(NOW_MS))
    collector = Collector()

    async with running(button, collector):
        await asyncio.sleep(0)

    assert collector.observations == []


async def test_the_camera_emits_line_in_and_line_out_every_period() -> None:
    clock = FakeClock(42)
    camera = SimulatedCheckpointCamera(spec(DeviceKind.CHECKPOINT_CAMERA, "camera-1", period_s=0.001), clock)
    collector = Collector()

    async with running(camera, collector):
        observations = await collector.wait_for(6)

    measured = [o for o in observations if isinstance(o, Measured)]
    assert len(measured) == 6
    assert [m.metric for m in measured] == ["line_in", "line_out"] * 3
    assert {m.device_id for m in measured} == {"camera-1"}
    assert {m.ts for m in measured} == {42}
    assert all(m.value >= 0 and m.value.is_integer() for m in measured)


async def test_a_camera_pair_shares_the_time_of_its_period() -> None:
    clock = FakeClock(100)
    camera = SimulatedCheckpointCamera(spec(DeviceKind.CHECKPOINT_CAMERA, "camera-1", period_s=0.001), clock)
    collector = Collector()

    async with running(camera, collector):
        first_pair = await collector.wait_for(2)
        clock.now_ms = 200
        await collector.wait_for(len(collector.observations) + 2)

    pairs = [collector.observations[i : i + 2] for i in range(0, len(collector.observations) - 1, 2)]
    assert [o.ts for o in first_pair] == [100, 100]
    for pair in pairs:
        assert len({o.ts for o in pair}) == 1
    assert pairs[-1][0].ts == 200


@pytest.mark.parametrize(
    ("kind", "adapter_type"),
    [
        (DeviceKind.PANIC_BUTTON, SimulatedPanicButton),
        (DeviceKind.DOOR_CONTACT, SimulatedDoorContact),
        (DeviceKind.CHECKPOINT_CAMERA, SimulatedCheckpointCamera),
    ],
)
def test_each_device_kind_gets_its_simulated_adapter(kind: DeviceKind, adapter_type: type) -> None:
    device = spec(kind, "dev-1")

    adapter = build_simulated(device, FakeClock(NOW_MS))

    assert isinstance(adapter, adapter_type)
    assert adapter.spec is device
    assert isinstance(build_adapter(device, FakeClock(NOW_MS)), adapter_type)
