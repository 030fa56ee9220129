"""The interface every device adapter implements, and the observations adapters emit."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edge.settings import DeviceSpec


@dataclass(frozen=True, slots=True)
class ButtonPressed:
    device_id: str
    ts: int
    held_ms: int


@dataclass(frozen=True, slots=True)
class DoorChanged:
    device_id: str
    ts: int
    is_open: bool


@dataclass(frozen=True, slots=True)
class Measured:
    device_id: str
    metric: str
    value: float
    ts: int


Observation = ButtonPressed | DoorChanged | Measured
Emit = Callable[[Observation], None]


class DeviceAdapter(Protocol):
    """Reads one device and emits what it observes; ``run`` returns only when cancelled."""

    @property
    def spec(self) -> DeviceSpec: ...

    async def run(self, emit: Emit) -> None: ...
