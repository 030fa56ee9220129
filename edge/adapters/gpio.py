"""Devices wired to the gateway's GPIO pins through gpiozero: panic buttons, door contacts, PIR
sensors (each with an optional tamper loop) and a siren or relay output.

Inputs are debounced in software, the same way on every pin factory: gpiozero's own bounce
handling is switched off (and its mock pins ignore it anyway). gpiozero calls edge callbacks on
its own thread; the callback only reads the injected clock, so an observation carries the time the
edge happened, and hands that time to the event loop with ``call_soon_threadsafe``. On the loop,
a burst of edges becomes one change once the line has been quiet for ``bounce_ms`` and its level
differs from the last debounced one; the change carries the time of the burst's first edge.

Pins are claimed when ``run()`` starts and released when it ends (cancelled or failed), so the
agent's supervisor can restart an adapter. ``pull_up`` and ``active_high`` are independent: the
internal resistor is always enabled in the direction ``pull_up`` says (an external resistor, if
fitted, must pull the same way), and ``active_high`` says which level means pressed, open, motion
or tampered. A normally-closed loop to ground with a pull-up (the fail-safe wiring for door
contacts and tamper loops) is ``pull_up=True, active_high=True``: a cut wire reads as active.

gpiozero drives the pins through a pin library it loads when the first pin is claimed (lgpio on a current
Raspberry Pi OS). A virtual environment made without ``--system-site-packages`` has none, and gpiozero then
warns once per library it tried and raises ``BadPinFactory`` at every claim. Claiming a pin
(:func:`claim_pin`) turns that into one :class:`GpioUnavailableError` whose message names what to install
(docs/GATEWAY.md), and keeps gpiozero's warnings out of the log.
"""

import asyncio
import logging
import math
import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, Literal, Self, TypeAlias, TypeVar

from gpiozero import DigitalOutputDevice, InputDevice
from gpiozero.exc import BadPinFactory, NativePinFactoryFallback, PinFactoryFallback
from gpiozero.pins import Factory
from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.adapters.base import ButtonPressed, DoorChanged, Emit, MotionSensed, TamperChanged
from edge.errors import EdgeConfigError
from protocol.gateway_config import DeviceSpec

logger = logging.getLogger(__name__)

Clock = Callable[[], int]
PinFactory: TypeAlias = Factory  # gpiozero's (untyped) pin factory: the real one, or MockFactory in tests

_MAX_PIN = 27  # BCM numbering of the 40-pin header
PIN_LIBRARY_HINT: Final = (
    "on Raspberry Pi OS: sudo apt install python3-lgpio, and make Outpost's virtual environment with "
    "--system-site-packages so that it sees it; or install lgpio into the environment (pip install lgpio, "
    "which needs swig and liblgpio-dev to build); see docs/GATEWAY.md"
)


class GpioUnavailableError(EdgeConfigError):
    """gpiozero has no pin library to drive the pins with; the message says what to install."""


def claim_pin(what: str, device: Callable[[], Any]) -> Any:
    """``device()``, a gpiozero device claiming its pin (gpiozero loads its default pin factory at the first
    claim): its ``BadPinFactory``, and the warning it gives for each library it tried, become one
    :class:`GpioUnavailableError` naming ``what`` failed, the libraries tried and what to install. Other
    warnings go on as they came."""
    failure: GpioUnavailableError | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PinFactoryFallback)
        try:
            claimed = device()
        except BadPinFactory as exc:
            tried = [str(w.message) for w in caught if issubclass(w.category, PinFactoryFallback)]
            reasons = f" ({'; '.join(tried)})" if tried else ""
            failure = GpioUnavailableError(
                f"{what}: gpiozero found no GPIO pin library in this Python ({sys.executable}): {exc}{reasons}. "
                f"To fix it, {PIN_LIBRARY_HINT}"
            )
    if failure is not None:
        raise failure  # outside the except clause: gpiozero's own traceback is not chained to it
    for warning in caught:
        if issubclass(warning.category, PinFactoryFallback):
            logger.debug("%s", warning.message)
        elif issubclass(warning.category, NativePinFactoryFallback):
            logger.warning("%s: gpiozero uses its experimental native pin factory; %s", what, PIN_LIBRARY_HINT)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return claimed


_TAMPER_REASONS: dict[str, tuple[str, str]] = {
    # loop kind: (reason when tampered, reason when cleared)
    "enclosure": ("enclosure opened", "enclosure closed"),
    "wire": ("wire cut", "wire loop restored"),
}


class GpioInputParams(BaseModel):
    """What every GPIO input declares; each device kind adds its own fields and defaults."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    pin: int = Field(ge=0, le=_MAX_PIN, description="BCM GPIO number of the input.")
    pull_up: bool = Field(description="Internal pull-up (true) or pull-down (false) resistor.")
    active_high: bool = Field(description="Whether a high level means active (pressed, open, motion).")
    bounce_ms: int = Field(default=50, ge=0, le=2_000, description="Quiet time before an edge counts.")
    tamper_pin: int | None = Field(default=None, ge=0, le=_MAX_PIN, description="Optional tamper loop input.")
    tamper_loop: Literal["enclosure", "wire"] = Field(
        default="enclosure", description="What the tamper loop guards; it names the TamperChanged reason."
    )
    tamper_pull_up: bool = True
    tamper_active_high: bool = Field(default=True, description="Default: a closed loop to ground; open reads high.")

    @model_validator(mode="after")
    def _pins_differ(self) -> Self:
        if self.tamper_pin is not None and self.tamper_pin == self.pin:
            raise ValueError("tamper_pin must differ from pin")
        return self


class PanicButtonParams(GpioInputParams):
    """A push button to ground with the internal pull-up, by default.

    Every press is reported as ButtonPressed; ``held_ms >= long_press_ms`` marks a long press (rules
    that want to tell a deliberate hold from a tap compare against this threshold). A long press is
    reported as soon as the hold reaches the threshold, while the button is still held, with
    ``held_ms`` the hold so far; its release then reports nothing more.
    """

    pull_up: bool = True
    active_high: bool = False
    long_press_ms: int = Field(default=2_000, ge=100, le=60_000)


class DoorContactParams(GpioInputParams):
    """A normally-closed reed contact to ground with the pull-up, by default: open (or cut) reads high."""

    pull_up: bool = True
    active_high: bool = True
    bounce_ms: int = Field(default=100, ge=0, le=2_000)


class PirSensorParams(GpioInputParams):
    """A PIR module's push-pull output, high on motion, by default.

    A trigger is reported as MotionSensed; further triggers within ``rearm_ms`` of the last reported
    one are ignored.
    """

    pull_up: bool = False
    active_high: bool = True
    bounce_ms: int = Field(default=20, ge=0, le=2_000)
    rearm_ms: int = Field(default=30_000, ge=0, le=3_600_000)


class SirenParams(BaseModel):
    """A siren, strobe or relay driven from a GPIO output."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    pin: int = Field(ge=0, le=_MAX_PIN, description="BCM GPIO number of the output.")
    active_high: bool = Field(default=True, description="False for the common active-low relay boards.")
    max_on_s: float = Field(default=300.0, gt=0, le=3_600, description="No single sounding lasts longer.")


@dataclass(frozen=True, slots=True)
class _Change:
    ts: int  # the clock at the first edge of the burst, taken in gpiozero's thread
    active: bool


class _InputLine:
    """One GPIO input: edges stamped in gpiozero's thread, debounced on the event loop."""

    def __init__(
        self,
        pin: int,
        *,
        pull_up: bool,
        active_high: bool,
        bounce_ms: int,
        clock: Clock,
        pin_factory: PinFactory | None,
        name: str = "",
    ) -> None:
        self._pin = pin
        self._name = name or f"GPIO{pin}"
        self._pull_up = pull_up
        self._active_high = active_high
        self._bounce_s = bounce_ms / 1000
        self._clock = clock
        self._pin_factory = pin_factory
        self._device: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._edges: asyncio.Queue[int] = asyncio.Queue()
        self._changes: asyncio.Queue[_Change] = asyncio.Queue()
        self._active = False

    def open(self) -> bool:
        """Claim the pin and listen to both edges; returns (and starts from) whether it is active now."""
        self._loop = asyncio.get_running_loop()
        self._edges = asyncio.Queue()
        self._changes = asyncio.Queue()
        self._device = claim_pin(
            self._name, lambda: InputDevice(self._pin, pull_up=self._pull_up, pin_factory=self._pin_factory)
        )
        pin = self._device.pin
        pin.bounce = None
        pin.edges = "both"
        # gpiozero keeps only a weak reference to a bound method: this line must outlive the
        # subscription, which it does, as run() holds it until close().
        pin.when_changed = self._on_edge
        self._active = self._read()
        return self._active

    def close(self) -> None:
        """Stop listening and release the pin; safe to call more than once."""
        device, self._device = self._device, None
        self._loop = None
        if device is not None:
            if device.pin is not None:
                device.pin.when_changed = None
            device.close()

    def _on_edge(self, _ticks: object, _state: object) -> None:
        # On gpiozero's thread (or the driving thread, for mock pins): stamp now, hand over, return.
        ts = self._clock()
        loop, edges = self._loop, self._edges
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(edges.put_nowait, ts)
        except RuntimeError:  # the loop closed while the pin was being released
            logger.debug("edge on GPIO%d after the event loop closed", self._pin)

    def _read(self) -> bool:
        return bool(self._device.pin.state) == self._active_high

    async def debounce(self) -> None:
        """Turn bursts of edges into changes, forever; see :meth:`next_change`."""
        while True:
            first_ts = await self._edges.get()
            while True:
                try:
                    async with asyncio.timeout(self._bounce_s):
                        await self._edges.get()
                except TimeoutError:
                    break
            active = self._read()
            if active != self._active:
                self._active = active
                self._changes.put_nowait(_Change(first_ts, active))

    async def next_change(self) -> _Change:
        """The next debounced change; changes alternate between active and inactive."""
        return await self._changes.get()


_Params = TypeVar("_Params", bound=GpioInputParams)


class _GpioInput(ABC, Generic[_Params]):
    """Common run loop of the GPIO inputs: the main line, and the tamper loop when one is wired."""

    def __init__(self, spec: DeviceSpec, params: _Params, clock: Clock, pin_factory: PinFactory | None) -> None:
        self._spec = spec
        self.params = params
        self._clock = clock
        self._pin_factory = pin_factory
        self._active: bool | None = None
        self._tampered: bool | None = None

    @property
    def spec(self) -> DeviceSpec:
        return self._spec

    @property
    def is_active(self) -> bool | None:
        """The debounced state (pressed, open, motion) once handled; None while not running."""
        return self._active

    @property
    def tampered(self) -> bool | None:
        """The debounced tamper loop state once handled; None without a loop or while not running."""
        return self._tampered

    def _line(self, pin: int, pull_up: bool, active_high: bool) -> _InputLine:
        return _InputLine(
            pin,
            pull_up=pull_up,
            active_high=active_high,
            bounce_ms=self.params.bounce_ms,
            clock=self._clock,
            pin_factory=self._pin_factory,
            name=f"device {self._spec.id} on GPIO{pin}",
        )

    async def run(self, emit: Emit) -> None:
        params = self.params
        main = self._line(params.pin, params.pull_up, params.active_high)
        tamper = None
        if params.tamper_pin is not None:
            tamper = self._line(params.tamper_pin, params.tamper_pull_up, params.tamper_active_high)
        try:
            self._start(main.open(), emit)
            if tamper is not None:
                self._tamper_started(tamper.open(), emit)
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(main.debounce())
                tasks.create_task(self._follow(main, emit))
                if tamper is not None:
                    tasks.create_task(tamper.debounce())
                    tasks.create_task(self._follow_tamper(tamper, emit))
        finally:
            main.close()
            if tamper is not None:
                tamper.close()
            self._active = None
            self._tampered = None

    def _start(self, active: bool, emit: Emit) -> None:
        """The main line's state when run() starts; subclasses report it if it matters."""
        self._active = active

    @abstractmethod
    async def _follow(self, line: _InputLine, emit: Emit) -> None:
        """Turn the main line's changes into observations, forever."""

    def _tamper_started(self, tampered: bool, emit: Emit) -> None:
        # A loop already open at start-up is reported: it may have been cut while the gateway was off.
        if tampered:
            self._emit_tamper(self._clock(), tampered=True, emit=emit)
        self._tampered = tampered

    async def _follow_tamper(self, line: _InputLine, emit: Emit) -> None:
        while True:
            change = await line.next_change()
            self._emit_tamper(change.ts, tampered=change.active, emit=emit)
            self._tampered = change.active

    def _emit_tamper(self, ts: int, *, tampered: bool, emit: Emit) -> None:
        on, off = _TAMPER_REASONS[self.params.tamper_loop]
        reason = on if tampered else off
        log = logger.warning if tampered else logger.info
        log("device %s: %s", self._spec.id, reason)
        emit(TamperChanged(self._spec.id, ts, tampered=tampered, reason=reason))


class GpioPanicButton(_GpioInput[PanicButtonParams]):
    """A panic button: one ButtonPressed per press, with how long it was held (see PanicButtonParams)."""

    def __init__(self, spec: DeviceSpec, clock: Clock, *, pin_factory: PinFactory | None = None) -> None:
        super().__init__(spec, PanicButtonParams.model_validate(spec.params), clock, pin_factory)

    def _start(self, active: bool, emit: Emit) -> None:
        if active:
            logger.warning("panic button %s is held at start-up; ignored until released", self._spec.id)
        self._active = active

    async def _follow(self, line: _InputLine, emit: Emit) -> None:
        long_ms = self.params.long_press_ms
        while True:
            press = await line.next_change()
            if not press.active:  # the release of a press held since start-up
                self._active = False
                continue
            self._active = True
            remaining_s = max(0, long_ms - (self._clock() - press.ts)) / 1000
            try:
                async with asyncio.timeout(remaining_s):
                    release = await line.next_change()
            except TimeoutError:
                held_ms = max(long_ms, self._clock() - press.ts)
                logger.info("panic button %s held for %d ms (long press)", self._spec.id, held_ms)
                emit(ButtonPressed(self._spec.id, press.ts, held_ms))
                await line.next_change()  # its release says nothing more
            else:
                held_ms = max(0, release.ts - press.ts)
                logger.info("panic button %s pressed for %d ms", self._spec.id, held_ms)
                emit(ButtonPressed(self._spec.id, press.ts, held_ms))
            self._active = False


class GpioDoorContact(_GpioInput[DoorContactParams]):
    """A door contact: DoorChanged on every debounced change, and at start-up if the door is open."""

    def __init__(self, spec: DeviceSpec, clock: Clock, *, pin_factory: PinFactory | None = None) -> None:
        super().__init__(spec, DoorContactParams.model_validate(spec.params), clock, pin_factory)

    def _start(self, active: bool, emit: Emit) -> None:
        if active:
            emit(DoorChanged(self._spec.id, self._clock(), is_open=True))
        self._active = active

    async def _follow(self, line: _InputLine, emit: Emit) -> None:
        while True:
            change = await line.next_change()
            logger.info("door %s %s", self._spec.id, "opened" if change.active else "closed")
            emit(DoorChanged(self._spec.id, change.ts, is_open=change.active))
            self._active = change.active


class GpioPirSensor(_GpioInput[PirSensorParams]):
    """A PIR sensor: MotionSensed on a trigger, then deaf for ``rearm_ms`` (see PirSensorParams)."""

    def __init__(self, spec: DeviceSpec, clock: Clock, *, pin_factory: PinFactory | None = None) -> None:
        super().__init__(spec, PirSensorParams.model_validate(spec.params), clock, pin_factory)

    async def _follow(self, line: _InputLine, emit: Emit) -> None:
        last_reported: int | None = None
        while True:
            change = await line.next_change()
            if change.active:
                since = None if last_reported is None else change.ts - last_reported
                # A clock stepped backwards (negative ``since``) re-arms rather than silencing the sensor.
                if since is not None and 0 <= since < self.params.rearm_ms:
                    logger.debug("PIR %s trigger ignored, %d ms after the last", self._spec.id, since)
                else:
                    last_reported = change.ts
                    emit(MotionSensed(self._spec.id, change.ts))
            self._active = change.active


class GpioSiren:
    """A siren, strobe or relay on a GPIO output; an :class:`~edge.adapters.actuators.Actuator`.

    The pin is claimed (and driven off) by :meth:`open`, or by the first :meth:`sound`, and
    released by :meth:`close`. The countdown runs on the event loop that called :meth:`sound`.
    """

    def __init__(self, spec: DeviceSpec, *, pin_factory: PinFactory | None = None) -> None:
        self.params = SirenParams.model_validate(spec.params)
        self._spec = spec
        self._pin_factory = pin_factory
        self._device: Any = None
        self._off_timer: asyncio.TimerHandle | None = None

    @property
    def spec(self) -> DeviceSpec:
        return self._spec

    @property
    def is_on(self) -> bool:
        return self._device is not None and bool(self._device.is_active)

    def open(self) -> None:
        """Claim the output pin, switched off; does nothing if already claimed."""
        if self._device is None:
            self._device = claim_pin(
                f"siren {self._spec.id} on GPIO{self.params.pin}",
                lambda: DigitalOutputDevice(
                    self.params.pin,
                    active_high=self.params.active_high,
                    initial_value=False,
                    pin_factory=self._pin_factory,
                ),
            )

    async def sound(self, for_s: float) -> None:
        if not (math.isfinite(for_s) and for_s > 0):
            raise ValueError(f"a siren sounds for a positive, finite time, not {for_s!r}")
        duration = min(for_s, self.params.max_on_s)
        if duration < for_s:
            logger.warning("siren %s: %.1f s capped to %.1f s", self._spec.id, for_s, duration)
        self.open()
        self._cancel_countdown()
        self._device.on()
        self._off_timer = asyncio.get_running_loop().call_later(duration, self._switch_off)
        logger.info("siren %s sounding for %.1f s", self._spec.id, duration)

    async def silence(self) -> None:
        self._cancel_countdown()
        self._switch_off()

    async def close(self) -> None:
        await self.silence()
        device, self._device = self._device, None
        if device is not None:
            device.close()

    def _switch_off(self) -> None:
        self._off_timer = None
        if self._device is not None and self._device.is_active:
            self._device.off()
            logger.info("siren %s silent", self._spec.id)

    def _cancel_countdown(self) -> None:
        if self._off_timer is not None:
            self._off_timer.cancel()
            self._off_timer = None
