"""The running devices: a new device list is applied by difference, and a change that cannot run is rolled back.

The builder here makes fresh fake devices for every declaration it is asked for, as the registry does,
and remembers what it was asked to build; a declaration with ``fails=True`` builds an adapter that
fails as soon as it runs, and ids listed in ``refuse`` cannot be built at all.
"""

import asyncio
from collections.abc import Sequence

import pytest

from edge.adapters.actuators import Actuator
from edge.adapters.base import ButtonPressed, DeviceAdapter, Emit, Observation
from edge.adapters.simulated import SimulatedDoorContact, SimulatedPanicButton
from edge.devices import DeviceRunner, prebuilt
from edge.errors import ConfigApplyError, EdgeConfigError
from protocol.gateway_config import DeviceKind, DeviceSpec, ParamValue
from protocol.messages import AdapterState
from tests.edge.helpers import LIVENESS_S, Collector, FakeClock

NOW_MS = 1_700_000_000_000
SHORT_PROBATION_S = 0.05
"""For changes that succeed: apply() waits the whole probation."""
LONG_PROBATION_S = 60.0
"""For changes that fail: a failure ends the probation as soon as it is seen."""


def device(kind: DeviceKind, device_id: str, **params: ParamValue) -> DeviceSpec:
    return DeviceSpec(kind=kind, id=device_id, params=params)


PANIC = device(DeviceKind.PANIC_BUTTON, "panic-1")
DOOR = device(DeviceKind.DOOR_CONTACT, "door-1")
PIR = device(DeviceKind.PIR_SENSOR, "pir-1")
SIREN = device(DeviceKind.SIREN, "siren-1", pin=18)
BROKEN_PIR = device(DeviceKind.PIR_SENSOR, "pir-2", fails=True)


class FakeAdapter:
    """Runs until cancelled and counts its starts and stops."""

    def __init__(self, spec: DeviceSpec) -> None:
        self._spec = spec
        self.runs = 0
        self.stops = 0
        self.emit: Emit | None = None
        self.started = asyncio.Event()

    @property
    def spec(self) -> DeviceSpec:
        return self._spec

    @property
    def running(self) -> bool:
        return self.runs - self.stops == 1

    async def run(self, emit: Emit) -> None:
        self.runs += 1
        self.emit = emit
        self.started.set()
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            self.stops += 1


class FailingAdapter(FakeAdapter):
    """Fails as soon as it runs, as an adapter whose hardware is missing does."""

    async def run(self, emit: Emit) -> None:
        self.runs += 1
        self.started.set()
        await asyncio.sleep(0)
        raise RuntimeError(f"{self.spec.id} is not wired")


class FakeSiren:
    def __init__(self, spec: DeviceSpec) -> None:
        self._spec = spec
        self._on = False
        self.closes = 0

    @property
    def spec(self) -> DeviceSpec:
        return self._spec

    @property
    def is_on(self) -> bool:
        return self._on

    async def sound(self, for_s: float) -> None:
        self._on = True

    async def silence(self) -> None:
        self._on = False

    async def close(self) -> None:
        self._on = False
        self.closes += 1


class Workshop:
    """A DeviceBuilder that builds fresh fake devices and remembers every build."""

    def __init__(self) -> None:
        self.builds: list[list[str]] = []
        self.refuse: set[str] = set()
        self.adapters: list[FakeAdapter] = []
        self.sirens: list[FakeSiren] = []

    def __call__(self, specs: Sequence[DeviceSpec]) -> tuple[list[DeviceAdapter], list[Actuator]]:
        self.builds.append([spec.id for spec in specs])
        refused = [spec.id for spec in specs if spec.id in self.refuse]
        if refused:
            raise EdgeConfigError(f"device {refused[0]}: cannot be built")
        adapters: list[DeviceAdapter] = []
        sirens: list[Actuator] = []
        for spec in specs:
            if spec.kind is DeviceKind.SIREN:
                siren = FakeSiren(spec)
                self.sirens.append(siren)
                sirens.append(siren)
            else:
                adapter = FailingAdapter(spec) if spec.params.get("fails") else FakeAdapter(spec)
                self.adapters.append(adapter)
                adapters.append(adapter)
        return adapters, sirens

    def adapter(self, spec: DeviceSpec) -> FakeAdapter:
        """The adapter built last for ``spec``."""
        return [adapter for adapter in self.adapters if adapter.spec == spec][-1]

    def siren(self, spec: DeviceSpec) -> FakeSiren:
        return [siren for siren in self.sirens if siren.spec == spec][-1]


@pytest.fixture
def workshop() -> Workshop:
    return Workshop()


@pytest.fixture
def collector() -> Collector:
    return Collector(LIVENESS_S)


@pytest.fixture
async def runner(workshop: Workshop, collector: Collector) -> DeviceRunner:
    return DeviceRunner(workshop, collector)


async def all_started(runner: DeviceRunner) -> None:
    """Wait (for liveness only) until every adapter the runner holds has been started."""
    async with asyncio.timeout(LIVENESS_S):
        for adapter in list(runner.adapters.values()):
            assert isinstance(adapter, FakeAdapter)
            await adapter.started.wait()


async def restarting(runner: DeviceRunner, device_id: str) -> None:
    async with asyncio.timeout(LIVENESS_S):
        while runner.states(set()).get(device_id) is not AdapterState.RESTARTING:  # noqa: ASYNC110 - no event
            await asyncio.sleep(0.005)


# --- start and close ----------------------------------------------------------------------------------------


async def test_start_runs_every_input_and_keeps_the_sirens(runner: DeviceRunner, workshop: Workshop) -> None:
    runner.start([PANIC, DOOR, SIREN])
    await all_started(runner)

    assert runner.specs == [PANIC, DOOR, SIREN]
    assert set(runner.adapters) == {"panic-1", "door-1"}
    assert set(runner.sirens) == {"siren-1"}
    assert workshop.adapter(PANIC).running
    assert workshop.adapter(DOOR).running
    assert runner.states(set()) == {"panic-1": AdapterState.RUNNING, "door-1": AdapterState.RUNNING}
    await runner.close()


async def test_what_an_adapter_observes_reaches_the_runners_emit(runner: DeviceRunner, collector: Collector) -> None:
    runner.start([PANIC])
    await all_started(runner)
    adapter = runner.adapters["panic-1"]
    assert isinstance(adapter, FakeAdapter)
    assert adapter.emit is not None

    adapter.emit(ButtonPressed("panic-1", NOW_MS, 150))

    assert collector.observations == [ButtonPressed("panic-1", NOW_MS, 150)]
    await runner.close()


async def test_start_raises_the_config_error_when_the_devices_cannot_be_built(
    runner: DeviceRunner, workshop: Workshop
) -> None:
    workshop.refuse = {"door-1"}

    with pytest.raises(EdgeConfigError, match="device door-1: cannot be built"):
        runner.start([PANIC, DOOR])

    assert runner.specs == []
    assert runner.adapters == {}
    assert runner.states(set()) == {}


async def test_close_stops_every_adapter_and_closes_every_siren(runner: DeviceRunner, workshop: Workshop) -> None:
    runner.start([PANIC, DOOR, SIREN])
    await all_started(runner)

    await runner.close()

    assert not workshop.adapter(PANIC).running
    assert workshop.adapter(PANIC).stops == 1
    assert workshop.adapter(DOOR).stops == 1
    assert workshop.siren(SIREN).closes == 1
    assert runner.adapters == {}
    assert runner.sirens == {}


# --- apply by difference ------------------------------------------------------------------------------------


async def test_unchanged_devices_keep_running_without_a_restart(runner: DeviceRunner, workshop: Workshop) -> None:
    runner.start([PANIC, DOOR, SIREN])
    await all_started(runner)
    panic, door, siren = workshop.adapter(PANIC), workshop.adapter(DOOR), workshop.siren(SIREN)

    await runner.apply([PANIC, DOOR, SIREN, PIR], SHORT_PROBATION_S)

    assert runner.adapters["panic-1"] is panic
    assert runner.adapters["door-1"] is door
    assert runner.sirens["siren-1"] is siren
    assert (panic.runs, panic.stops) == (1, 0)
    assert (door.runs, door.stops) == (1, 0)
    assert siren.closes == 0
    assert workshop.builds == [["panic-1", "door-1", "siren-1"], ["pir-1"]]
    assert workshop.adapter(PIR).running
    assert runner.specs == [PANIC, DOOR, SIREN, PIR]
    await runner.close()


async def test_the_same_devices_in_another_order_change_nothing(runner: DeviceRunner, workshop: Workshop) -> None:
    runner.start([PANIC, DOOR])
    await all_started(runner)

    await runner.apply([DOOR, PANIC], SHORT_PROBATION_S)

    assert workshop.builds == [["panic-1", "door-1"]]
    assert workshop.adapter(PANIC).runs == 1
    assert runner.specs == [DOOR, PANIC]
    await runner.close()


async def test_a_changed_device_is_stopped_and_started_with_its_new_declaration(
    runner: DeviceRunner, workshop: Workshop
) -> None:
    runner.start([PANIC, DOOR])
    await all_started(runner)
    old_door = workshop.adapter(DOOR)
    moved_door = DeviceSpec(kind=DeviceKind.DOOR_CONTACT, id="door-1", grid_id="grid-9")

    await runner.apply([PANIC, moved_door], SHORT_PROBATION_S)

    assert not old_door.running
    assert old_door.stops == 1
    new_door = runner.adapters["door-1"]
    assert new_door is workshop.adapter(moved_door)
    assert new_door.spec.grid_id == "grid-9"
    assert workshop.adapter(moved_door).running
    assert workshop.adapter(PANIC).runs == 1
    assert runner.specs == [PANIC, moved_door]
    await runner.close()


async def test_a_removed_device_is_stopped_and_leaves_the_health_report(
    runner: DeviceRunner, workshop: Workshop
) -> None:
    runner.start([PANIC, DOOR])
    await all_started(runner)

    await runner.apply([PANIC], SHORT_PROBATION_S)

    assert not workshop.adapter(DOOR).running
    assert set(runner.adapters) == {"panic-1"}
    assert runner.states(set()) == {"panic-1": AdapterState.RUNNING}
    assert runner.specs == [PANIC]
    await runner.close()


async def test_removed_and_changed_sirens_are_closed_and_kept_ones_are_not(
    runner: DeviceRunner, workshop: Workshop
) -> None:
    other_siren = device(DeviceKind.SIREN, "siren-2", pin=19)
    runner.start([PANIC, SIREN, other_siren])
    await all_started(runner)
    louder = device(DeviceKind.SIREN, "siren-2", pin=19, max_on_s=300)

    await runner.apply([PANIC, louder], SHORT_PROBATION_S)

    assert workshop.siren(SIREN).closes == 1
    assert workshop.siren(other_siren).closes == 1
    assert runner.sirens == {"siren-2": workshop.siren(louder)}
    assert workshop.siren(louder).closes == 0
    await runner.close()


async def test_a_change_of_sirens_alone_waits_for_no_probation(runner: DeviceRunner, workshop: Workshop) -> None:
    runner.start([PANIC])
    await all_started(runner)

    async with asyncio.timeout(LIVENESS_S):
        await runner.apply([PANIC, SIREN], probation_s=3_600)

    assert runner.sirens == {"siren-1": workshop.siren(SIREN)}
    await runner.close()


async def test_a_device_can_become_a_siren_under_the_same_id(runner: DeviceRunner, workshop: Workshop) -> None:
    runner.start([PANIC])
    await all_started(runner)
    now_a_siren = device(DeviceKind.SIREN, "panic-1", pin=18)

    await runner.apply([now_a_siren], SHORT_PROBATION_S)

    assert not workshop.adapter(PANIC).running
    assert runner.adapters == {}
    assert runner.sirens == {"panic-1": workshop.siren(now_a_siren)}
    await runner.close()


# --- rollback -----------------------------------------------------------------------------------------------


async def test_a_config_that_cannot_be_built_is_rolled_back_to_the_previous_devices(
    runner: DeviceRunner, workshop: Workshop
) -> None:
    runner.start([PANIC, DOOR, SIREN])
    await all_started(runner)
    panic = workshop.adapter(PANIC)
    workshop.refuse = {"pir-1"}

    with pytest.raises(ConfigApplyError, match="rolled back: device pir-1: cannot be built"):
        await runner.apply([PANIC, PIR], LONG_PROBATION_S)
    await all_started(runner)

    assert runner.specs == [PANIC, DOOR, SIREN]
    assert [adapter.spec for adapter in runner.adapters.values()] == [PANIC, DOOR]
    assert runner.adapters["panic-1"] is panic
    assert (panic.runs, panic.stops) == (1, 0)
    assert workshop.adapter(DOOR).running
    assert {spec_id: siren.spec for spec_id, siren in runner.sirens.items()} == {"siren-1": SIREN}
    await runner.close()


async def test_a_new_adapter_that_fails_in_its_probation_is_rolled_back(
    runner: DeviceRunner, workshop: Workshop
) -> None:
    runner.start([PANIC, PIR, SIREN])
    await all_started(runner)
    old_pir = workshop.adapter(PIR)
    new_siren = device(DeviceKind.SIREN, "siren-2", pin=19)

    with pytest.raises(ConfigApplyError, match=r"rolled back: device pir-2 failed on start: pir-2 is not wired"):
        await runner.apply([PANIC, BROKEN_PIR, new_siren], LONG_PROBATION_S)
    await all_started(runner)

    broken = workshop.adapter(BROKEN_PIR)
    assert broken.runs >= 1
    assert not old_pir.running
    assert runner.specs == [PANIC, PIR, SIREN]
    assert runner.adapters["pir-1"] is workshop.adapter(PIR)
    assert workshop.adapter(PIR).running
    assert "pir-2" not in runner.adapters
    assert workshop.siren(new_siren).closes == 1
    assert runner.sirens == {"siren-1": workshop.siren(SIREN)}
    assert runner.states(set()) == {
        "panic-1": AdapterState.RUNNING,
        "pir-1": AdapterState.RUNNING,
    }
    await runner.close()


async def test_a_changed_device_whose_new_declaration_fails_runs_its_old_declaration_again(
    runner: DeviceRunner, workshop: Workshop
) -> None:
    runner.start([PANIC, PIR])
    await all_started(runner)
    broken_pir = device(DeviceKind.PIR_SENSOR, "pir-1", fails=True)

    with pytest.raises(ConfigApplyError, match="device pir-1 failed on start"):
        await runner.apply([PANIC, broken_pir], LONG_PROBATION_S)
    await all_started(runner)

    assert runner.adapters["pir-1"].spec == PIR
    assert workshop.adapter(PIR).running
    assert runner.states(set()) == {"panic-1": AdapterState.RUNNING, "pir-1": AdapterState.RUNNING}
    await runner.close()


async def test_after_a_rollback_the_next_good_config_applies(runner: DeviceRunner, workshop: Workshop) -> None:
    runner.start([PANIC])
    await all_started(runner)
    with pytest.raises(ConfigApplyError):
        await runner.apply([PANIC, BROKEN_PIR], LONG_PROBATION_S)

    await runner.apply([PANIC, PIR], SHORT_PROBATION_S)

    assert runner.specs == [PANIC, PIR]
    assert workshop.adapter(PIR).running
    assert runner.states(set()) == {"panic-1": AdapterState.RUNNING, "pir-1": AdapterState.RUNNING}
    await runner.close()


async def test_a_failing_device_that_was_already_running_does_not_block_an_unrelated_change(
    runner: DeviceRunner, workshop: Workshop
) -> None:
    runner.start([PANIC, BROKEN_PIR])
    await restarting(runner, "pir-2")

    await runner.apply([PANIC, BROKEN_PIR, DOOR], SHORT_PROBATION_S)

    assert runner.specs == [PANIC, BROKEN_PIR, DOOR]
    assert workshop.adapter(DOOR).running
    await runner.close()


# --- health -------------------------------------------------------------------------------------------------


async def test_states_tell_running_offline_and_restarting_adapters_apart(runner: DeviceRunner) -> None:
    runner.start([PANIC, DOOR, BROKEN_PIR, SIREN])
    await restarting(runner, "pir-2")

    states = runner.states(offline={"door-1"})

    assert states == {
        "panic-1": AdapterState.RUNNING,
        "door-1": AdapterState.OFFLINE,
        "pir-2": AdapterState.RESTARTING,
    }
    await runner.close()


async def test_a_restarting_adapter_is_reported_restarting_even_if_its_device_is_offline(
    runner: DeviceRunner,
) -> None:
    runner.start([BROKEN_PIR])
    await restarting(runner, "pir-2")

    assert runner.states(offline={"pir-2"}) == {"pir-2": AdapterState.RESTARTING}
    await runner.close()


# --- prebuilt devices ---------------------------------------------------------------------------------------


def test_prebuilt_serves_the_devices_it_was_given() -> None:
    clock = FakeClock(NOW_MS)
    panic, door = SimulatedPanicButton(PANIC, clock), SimulatedDoorContact(DOOR, clock)
    siren = FakeSiren(SIREN)
    build = prebuilt([panic, door], [siren])

    adapters, sirens = build([DOOR, SIREN])

    assert adapters == [door]
    assert sirens == [siren]
    assert build([]) == ([], [])


@pytest.mark.parametrize(
    "asked",
    [[PANIC, PIR], [device(DeviceKind.PANIC_BUTTON, "panic-1", pin=17)], [device(DeviceKind.SIREN, "siren-9")]],
    ids=["unknown-device", "changed-declaration", "unknown-siren"],
)
def test_prebuilt_refuses_any_device_it_was_not_given(asked: list[DeviceSpec]) -> None:
    build = prebuilt([SimulatedPanicButton(PANIC, FakeClock(NOW_MS))], [FakeSiren(SIREN)])
    missing = ", ".join(spec.id for spec in asked if spec not in (PANIC, SIREN))

    with pytest.raises(EdgeConfigError, match=f"this gateway's devices are fixed; it cannot build {missing}$"):
        build(asked)


async def test_a_runner_on_prebuilt_simulated_devices_passes_their_presses_on(collector: Collector) -> None:
    panic = SimulatedPanicButton(PANIC, FakeClock(NOW_MS))
    runner = DeviceRunner(prebuilt([panic]), collector)
    runner.start([PANIC])

    panic.press(held_ms=400)
    observations: list[Observation] = await collector.wait_for(1)

    assert observations == [ButtonPressed("panic-1", NOW_MS, 400)]
    await runner.close()


async def test_a_runner_on_prebuilt_devices_refuses_a_device_it_cannot_build_and_keeps_its_own(
    collector: Collector,
) -> None:
    panic = SimulatedPanicButton(PANIC, FakeClock(NOW_MS))
    runner = DeviceRunner(prebuilt([panic]), collector)
    runner.start([PANIC])

    with pytest.raises(ConfigApplyError, match="cannot build door-1"):
        await runner.apply([PANIC, DOOR], LONG_PROBATION_S)
    panic.press()
    await collector.wait_for(1)

    assert runner.specs == [PANIC]
    assert runner.adapters == {"panic-1": panic}
    await runner.close()
