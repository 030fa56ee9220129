"""Simulated devices behind the real adapter interface, driven by simulators and tests.

A press or a door change is timestamped when it happens (in :meth:`press`, :meth:`open`), not when
the adapter gets round to emitting it, exactly as a hardware interrupt would be.
"""

import asyncio
import math
import random
import time
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from edge.adapters.base import ButtonPressed, DoorChanged, Emit, Measured, MotionSensed, Observation
from edge.errors import EdgeConfigError
from protocol.gateway_config import DeviceKind, DeviceSpec
from protocol.messages import CameraHealth


class _QueuedDevice:
    def __init__(self, spec: DeviceSpec, clock: Callable[[], int]) -> None:
        self._spec = spec
        self._clock = clock
        self._pending: asyncio.Queue[Observation] = asyncio.Queue()

    @property
    def spec(self) -> DeviceSpec:
        return self._spec

    async def run(self, emit: Emit) -> None:
        while True:
            emit(await self._pending.get())


class SimulatedPanicButton(_QueuedDevice):
    def press(self, held_ms: int = 150) -> None:
        self._pending.put_nowait(ButtonPressed(self._spec.id, self._clock(), held_ms))


class SimulatedDoorContact(_QueuedDevice):
    def open(self) -> None:
        self._pending.put_nowait(DoorChanged(self._spec.id, self._clock(), is_open=True))

    def close(self) -> None:
        self._pending.put_nowait(DoorChanged(self._spec.id, self._clock(), is_open=False))


class SimulatedCameraParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period_s: float = Field(default=5.0, gt=0, description="Seconds between count reports.")
    per_minute: float = Field(default=6.0, ge=0, description="Mean crossings per minute in each direction.")


class SimulatedCheckpointCamera:
    """Counts of people and vehicles crossing the entrance line, in and out, every ``period_s``."""

    def __init__(self, spec: DeviceSpec, clock: Callable[[], int]) -> None:
        params = SimulatedCameraParams.model_validate(spec.params)
        self._spec = spec
        self._clock = clock
        self._period_s = params.period_s
        self._mean = params.per_minute * params.period_s / 60.0
        self._rng = random.Random(spec.id)  # noqa: S311 - simulation, not security
        self._reports = 0
        self._reported_at: float | None = None

    @property
    def spec(self) -> DeviceSpec:
        return self._spec

    def _poisson(self) -> int:
        # Knuth's method; the means here are small.
        limit, count, product = math.exp(-self._mean), 0, self._rng.random()
        while product > limit:
            count += 1
            product *= self._rng.random()
        return count

    async def run(self, emit: Emit) -> None:
        while True:
            await asyncio.sleep(self._period_s)
            now = self._clock()
            emit(Measured(self._spec.id, "line_in", float(self._poisson()), now))
            emit(Measured(self._spec.id, "line_out", float(self._poisson()), now))
            self._reports += 1
            self._reported_at = time.monotonic()

    def health(self) -> CameraHealth:
        """As a real camera's heartbeat health, each count report standing for an analysed frame."""
        age = None if self._reported_at is None else round(time.monotonic() - self._reported_at, 1)
        return CameraHealth(analysed_fps=round(1.0 / self._period_s, 2), last_frame_age_s=age, frames=self._reports)


class SimulatedPirSensor(_QueuedDevice):
    def trigger(self) -> None:
        self._pending.put_nowait(MotionSensed(self._spec.id, self._clock()))


SimulatedDevice = SimulatedPanicButton | SimulatedDoorContact | SimulatedPirSensor | SimulatedCheckpointCamera


def build_simulated(spec: DeviceSpec, clock: Callable[[], int]) -> SimulatedDevice:
    match spec.kind:
        case DeviceKind.PANIC_BUTTON | DeviceKind.ACCESS_REQUEST:
            return SimulatedPanicButton(spec, clock)
        case DeviceKind.DOOR_CONTACT:
            return SimulatedDoorContact(spec, clock)
        case DeviceKind.PIR_SENSOR:
            return SimulatedPirSensor(spec, clock)
        case DeviceKind.CHECKPOINT_CAMERA:
            return SimulatedCheckpointCamera(spec, clock)
    raise EdgeConfigError(f"device {spec.id}: there is no simulated {spec.kind}")
