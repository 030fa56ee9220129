"""GPIO adapters on gpiozero's mock pins: software debounce, press lengths, doors, PIR re-arm,
tamper loops, the siren's countdown, and clean shutdown.

Mock pins call ``when_changed`` synchronously in whichever thread drives them and ignore gpiozero's
bounce setting; the adapters debounce in software anyway. A mock input's pull resistor drives it
to the pull level when configured, so an input whose wiring holds it elsewhere (a closed loop to
ground under a pull-up) is modelled by :class:`WiredPin`.
"""

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import pytest
from gpiozero import DigitalOutputDevice, InputDevice
from gpiozero.pins.mock import MockFactory, MockPin

from edge.adapters.base import ButtonPressed, DeviceAdapter, DoorChanged, MotionSensed, Observation, TamperChanged
from edge.adapters.gpio import GpioDoorContact, GpioPanicButton, GpioPirSensor, GpioSiren
from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind
from tests.edge.helpers import Collector, FakeClock

BUTTON_PIN = 17
DOOR_PIN = 22
PIR_PIN = 23
TAMPER_PIN = 27
SIREN_PIN = 24
BOUNCE_MS = 20

LIVENESS_S = 5.0
NOW_MS = 1_000


class WiredPin(MockPin):  # type: ignore[misc]  # gpiozero is untyped
    """A mock input held at its level by external wiring: enabling a pull resistor does not move it."""

    def _set_pull(self, value: str) -> None:
        self._pull = value


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (for liveness only) until ``condition`` holds."""
    async with asyncio.timeout(LIVENESS_S):
        while not condition():  # noqa: ASYNC110 - adapter state has no event to wait on
            await asyncio.sleep(0.005)


@asynccontextmanager
async def running(adapter: DeviceAdapter, emit: Callable[[Observation], None]) -> AsyncIterator[None]:
    task = asyncio.create_task(adapter.run(emit))
    await asyncio.sleep(0)  # let run() claim its pins
    try:
        yield
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.reset()


def gpio_spec(kind: DeviceKind, device_id: str, **params: float | str | bool) -> DeviceSpec:
    return DeviceSpec(kind=kind, id=device_id, driver=DriverKind.GPIO, params=params)


def chatter(pin: MockPin, settle_high: bool, clock: FakeClock, bounces: int = 5) -> None:
    """A contact's bounce: the level flips back and forth, a millisecond apart, then settles."""
    towards, back = (pin.drive_high, pin.drive_low) if settle_high else (pin.drive_low, pin.drive_high)
    for _ in range(bounces):
        towards()
        clock.now_ms += 1
        back()
        clock.now_ms += 1
    towards()


def button(factory: MockFactory, clock: FakeClock, **params: float | str | bool) -> GpioPanicButton:
    spec = gpio_spec(DeviceKind.PANIC_BUTTON, "panic-1", pin=BUTTON_PIN, bounce_ms=BOUNCE_MS, **params)
    return GpioPanicButton(spec, clock, pin_factory=factory)


async def test_a_burst_of_bounces_is_one_press_timed_from_its_first_edge(factory: MockFactory) -> None:
    clock = FakeClock(1_000)
    panic = button(factory, clock)
    pin = factory.pin(BUTTON_PIN)
    collector = Collector(LIVENESS_S)

    async with running(panic, collector):
        await eventually(lambda: panic.is_active is False)
        chatter(pin, settle_high=False, clock=clock)  # pulled up: pressing pulls the pin low
        await eventually(lambda: panic.is_active is True)
        clock.now_ms = 1_300
        chatter(pin, settle_high=True, clock=clock)
        observations = await collector.wait_for(1)
        await eventually(lambda: panic.is_active is False)

    assert observations == [ButtonPressed("panic-1", 1_000, 300)]
    assert collector.observations == observations


async def test_a_glitch_shorter_than_the_bounce_time_is_no_press(factory: MockFactory) -> None:
    panic = button(factory, FakeClock(NOW_MS))
    pin = factory.pin(BUTTON_PIN)
    collector = Collector(LIVENESS_S)

    async with running(panic, collector):
        pin.drive_low()
        pin.drive_high()
        await asyncio.sleep(BOUNCE_MS * 5 / 1000)

        assert panic.is_active is False
    assert collector.observations == []


async def test_held_ms_tells_a_short_press_from_a_long_one(factory: MockFactory) -> None:
    clock = FakeClock(1_000)
    panic = button(factory, clock, long_press_ms=60_000)
    pin = factory.pin(BUTTON_PIN)
    collector = Collector(LIVENESS_S)

    async with running(panic, collector):
        pin.drive_low()
        await eventually(lambda: panic.is_active is True)
        clock.now_ms = 1_250
        pin.drive_high()
        await eventually(lambda: panic.is_active is False)
        clock.now_ms = 5_000
        pin.drive_low()
        await eventually(lambda: panic.is_active is True)
        clock.now_ms = 70_000
        pin.drive_high()
        short, long = await collector.wait_for(2)

    assert short == ButtonPressed("panic-1", 1_000, 250)
    assert long == ButtonPressed("panic-1", 5_000, 65_000)
    assert isinstance(short, ButtonPressed)
    assert isinstance(long, ButtonPressed)
    assert short.held_ms < panic.params.long_press_ms <= long.held_ms


async def test_a_long_hold_is_reported_while_the_button_is_still_held(factory: MockFactory) -> None:
    clock = FakeClock(1_000)
    panic = button(factory, clock, long_press_ms=100)
    pin = factory.pin(BUTTON_PIN)
    collector = Collector(LIVENESS_S)

    async with running(panic, collector):
        pin.drive_low()
        observations = await collector.wait_for(1)
        assert panic.is_active is True  # still held
        pin.drive_high()
        await eventually(lambda: panic.is_active is False)

    assert observations == [ButtonPressed("panic-1", 1_000, 100)]
    assert collector.observations == observations  # the release adds nothing


async def test_edges_are_stamped_in_the_thread_that_saw_them(factory: MockFactory) -> None:
    clock = FakeClock(0)
    panic = button(factory, clock)
    pin = factory.pin(BUTTON_PIN)
    collector = Collector(LIVENESS_S)
    edge_threads: list[int] = []

    def edge_at(ts: int, settle_high: bool) -> None:  # as gpiozero does, on a thread of its own
        edge_threads.append(threading.get_ident())
        clock.now_ms = ts
        chatter(pin, settle_high=settle_high, clock=clock)
        clock.now_ms = ts + 50  # the loop gets round to it later; that is not the edge's time

    async with running(panic, collector):
        await asyncio.to_thread(edge_at, 2_000, False)
        await eventually(lambda: panic.is_active is True)
        await asyncio.to_thread(edge_at, 2_400, True)
        observations = await collector.wait_for(1)

    assert observations == [ButtonPressed("panic-1", 2_000, 400)]
    assert set(edge_threads) <= clock.reader_threads
    assert threading.get_ident() not in edge_threads


async def test_a_button_held_at_start_up_is_ignored_until_pressed_again(factory: MockFactory) -> None:
    clock = FakeClock(1_000)
    panic = button(factory, clock, long_press_ms=100)
    pin = factory.pin(BUTTON_PIN, pin_class=WiredPin)  # held low from the start
    collector = Collector(LIVENESS_S)

    async with running(panic, collector):
        await eventually(lambda: panic.is_active is True)
        await asyncio.sleep(0.2)  # longer than long_press_ms: still nothing
        pin.drive_high()
        await eventually(lambda: panic.is_active is False)
        assert collector.observations == []
        pin.drive_low()
        observations = await collector.wait_for(1)

    assert observations == [ButtonPressed("panic-1", 1_000, 100)]


async def test_a_door_reports_each_debounced_open_and_close(factory: MockFactory) -> None:
    clock = FakeClock(10)
    spec = gpio_spec(DeviceKind.DOOR_CONTACT, "door-1", pin=DOOR_PIN, bounce_ms=BOUNCE_MS)
    door = GpioDoorContact(spec, clock, pin_factory=factory)
    pin = factory.pin(DOOR_PIN, pin_class=WiredPin)  # the closed contact holds it low
    collector = Collector(LIVENESS_S)

    async with running(door, collector):
        await eventually(lambda: door.is_active is False)
        chatter(pin, settle_high=True, clock=clock)
        await eventually(lambda: door.is_active is True)
        clock.now_ms = 500
        chatter(pin, settle_high=False, clock=clock)
        observations = await collector.wait_for(2)

    assert observations == [DoorChanged("door-1", 10, is_open=True), DoorChanged("door-1", 500, is_open=False)]


async def test_a_door_open_at_start_up_is_reported(factory: MockFactory) -> None:
    spec = gpio_spec(DeviceKind.DOOR_CONTACT, "door-1", pin=DOOR_PIN, bounce_ms=BOUNCE_MS)
    door = GpioDoorContact(spec, FakeClock(42), pin_factory=factory)  # nothing holds the pulled-up pin low
    collector = Collector(LIVENESS_S)

    async with running(door, collector):
        observations = await collector.wait_for(1)

    assert observations == [DoorChanged("door-1", 42, is_open=True)]


async def test_a_pir_ignores_triggers_until_it_has_re_armed(factory: MockFactory) -> None:
    clock = FakeClock(1_000)
    spec = gpio_spec(DeviceKind.PIR_SENSOR, "pir-1", pin=PIR_PIN, bounce_ms=BOUNCE_MS, rearm_ms=10_000)
    pir = GpioPirSensor(spec, clock, pin_factory=factory)
    pin = factory.pin(PIR_PIN)
    collector = Collector(LIVENESS_S)

    async def trigger(at_ms: int) -> None:
        clock.now_ms = at_ms
        pin.drive_high()
        await eventually(lambda: pir.is_active is True)
        pin.drive_low()
        await eventually(lambda: pir.is_active is False)

    async with running(pir, collector):
        await trigger(1_000)
        await trigger(5_000)
        await trigger(10_999)
        assert collector.observations == [MotionSensed("pir-1", 1_000)]
        await trigger(11_000)
        await trigger(12_000)

    assert collector.observations == [MotionSensed("pir-1", 1_000), MotionSensed("pir-1", 11_000)]


async def test_a_cut_tamper_loop_and_its_repair_are_reported(factory: MockFactory) -> None:
    clock = FakeClock(100)
    spec = gpio_spec(
        DeviceKind.DOOR_CONTACT,
        "door-1",
        pin=DOOR_PIN,
        bounce_ms=BOUNCE_MS,
        tamper_pin=TAMPER_PIN,
        tamper_loop="wire",
    )
    door = GpioDoorContact(spec, clock, pin_factory=factory)
    factory.pin(DOOR_PIN, pin_class=WiredPin)
    loop = factory.pin(TAMPER_PIN, pin_class=WiredPin)  # intact: the loop holds it to ground
    collector = Collector(LIVENESS_S)

    async with running(door, collector):
        await eventually(lambda: door.tampered is False)
        chatter(loop, settle_high=True, clock=clock)  # cut: the pull-up lifts it
        await eventually(lambda: door.tampered is True)
        clock.now_ms = 900
        loop.drive_low()
        observations = await collector.wait_for(2)

    assert observations == [
        TamperChanged("door-1", 100, tampered=True, reason="wire cut"),
        TamperChanged("door-1", 900, tampered=False, reason="wire loop restored"),
    ]


async def test_an_enclosure_already_open_at_start_up_is_reported(factory: MockFactory) -> None:
    spec = gpio_spec(DeviceKind.PANIC_BUTTON, "panic-1", pin=BUTTON_PIN, tamper_pin=TAMPER_PIN)
    panic = GpioPanicButton(spec, FakeClock(7), pin_factory=factory)  # nothing holds the tamper pin low
    collector = Collector(LIVENESS_S)

    async with running(panic, collector):
        observations = await collector.wait_for(1)

    assert observations == [TamperChanged("panic-1", 7, tampered=True, reason="enclosure opened")]


async def test_cancelling_run_releases_the_pins_and_a_new_run_works(factory: MockFactory) -> None:
    clock = FakeClock(1_000)
    spec = gpio_spec(DeviceKind.PANIC_BUTTON, "panic-1", pin=BUTTON_PIN, bounce_ms=BOUNCE_MS, tamper_pin=TAMPER_PIN)
    panic = GpioPanicButton(spec, clock, pin_factory=factory)
    pin = factory.pin(BUTTON_PIN)
    factory.pin(TAMPER_PIN, pin_class=WiredPin)
    collector = Collector(LIVENESS_S)

    async with running(panic, collector):
        await eventually(lambda: panic.is_active is False and panic.tampered is False)
        assert pin.when_changed is not None

    assert pin.when_changed is None
    assert panic.is_active is None
    assert panic.tampered is None
    for number in (BUTTON_PIN, TAMPER_PIN):  # released: the pins can be claimed again
        InputDevice(number, pin_factory=factory).close()

    async with running(panic, collector):
        await eventually(lambda: panic.is_active is False)
        pin.drive_low()
        await eventually(lambda: panic.is_active is True)
        clock.now_ms = 1_200
        pin.drive_high()
        observations = await collector.wait_for(1)

    assert observations == [ButtonPressed("panic-1", 1_000, 200)]


def siren(factory: MockFactory, **params: float | str | bool) -> GpioSiren:
    return GpioSiren(gpio_spec(DeviceKind.SIREN, "siren-1", pin=SIREN_PIN, **params), pin_factory=factory)


async def test_a_siren_sounds_then_goes_silent_after_for_s(factory: MockFactory) -> None:
    horn = siren(factory)
    horn.open()
    pin = factory.pin(SIREN_PIN)
    assert pin.state is False

    started = time.monotonic()
    await horn.sound(0.05)
    assert horn.is_on
    assert pin.state is True
    await eventually(lambda: not horn.is_on)
    elapsed = time.monotonic() - started

    assert pin.state is False
    assert elapsed >= 0.045  # never before for_s (asyncio timers may be due a hair early)
    assert [state.state for state in pin.states[-3:]] == [False, True, False]
    assert pin.states[-1].timestamp >= 0.045  # how long the pin stayed on
    await horn.close()


async def test_sounding_again_restarts_the_countdown_and_silence_stops_it(factory: MockFactory) -> None:
    horn = siren(factory)

    await horn.sound(0.05)
    await horn.sound(30.0)
    await asyncio.sleep(0.15)  # past the first countdown
    assert horn.is_on
    await horn.silence()
    assert not horn.is_on
    await horn.close()


async def test_an_active_low_relay_is_driven_low_to_sound(factory: MockFactory) -> None:
    horn = siren(factory, active_high=False)
    horn.open()
    pin = factory.pin(SIREN_PIN)
    assert pin.state is True

    await horn.sound(30.0)
    assert pin.state is False
    await horn.silence()
    assert pin.state is True
    await horn.close()


async def test_a_siren_never_sounds_longer_than_its_cap(factory: MockFactory) -> None:
    horn = siren(factory, max_on_s=0.05)

    await horn.sound(3_600.0)
    assert horn.is_on
    await eventually(lambda: not horn.is_on)
    await horn.close()


@pytest.mark.parametrize("for_s", [0.0, -1.0, float("nan"), float("inf")])
async def test_a_siren_refuses_a_meaningless_duration(factory: MockFactory, for_s: float) -> None:
    horn = siren(factory)

    with pytest.raises(ValueError, match="positive, finite"):
        await horn.sound(for_s)
    assert not horn.is_on


async def test_closing_a_siren_silences_it_and_releases_its_pin(factory: MockFactory) -> None:
    horn = siren(factory)
    await horn.sound(30.0)

    await horn.close()

    assert not horn.is_on
    assert factory.pin(SIREN_PIN).state is False
    DigitalOutputDevice(SIREN_PIN, pin_factory=factory).close()  # free to be claimed again
