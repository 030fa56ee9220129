"""The interface every device adapter implements, and the observations adapters emit."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from protocol.gateway_config import DeviceSpec
from protocol.messages import CameraHealth


@dataclass(frozen=True, slots=True)
class ButtonPressed:
    device_id: str
    ts: int
    held_ms: int
    presses: int = 1  # more than one: a pattern of quick presses, as a node reports it


@dataclass(frozen=True, slots=True)
class DoorChanged:
    device_id: str
    ts: int
    is_open: bool


@dataclass(frozen=True, slots=True)
class DoorHeldOpen:
    """A door contact node's own timer: the door has been open for ``open_ms``."""

    device_id: str
    ts: int  # when it opened
    open_ms: int


@dataclass(frozen=True, slots=True)
class Measured:
    device_id: str
    metric: str
    value: float
    ts: int


@dataclass(frozen=True, slots=True)
class MotionSensed:
    """A PIR sensor (or a camera zone) saw movement."""

    device_id: str
    ts: int


@dataclass(frozen=True, slots=True)
class TamperChanged:
    """A device's enclosure was opened or its wiring cut (or that condition cleared)."""

    device_id: str
    ts: int
    tampered: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Detected:
    """A camera detector's finding, with the evidence numbers that triggered it (never a frame)."""

    device_id: str
    ts: int
    kind: str  # protocol.messages.EventKind value, e.g. "motion", "line_crossing", "camera_tamper"
    evidence: dict[str, float | int | bool | str]


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A device went offline (stream lost, node silent) or came back."""

    device_id: str
    ts: int
    online: bool
    reason: str


Observation = (
    ButtonPressed | DoorChanged | DoorHeldOpen | Measured | MotionSensed | TamperChanged | Detected | DeviceStatus
)
Emit = Callable[[Observation], None]


class DeviceAdapter(Protocol):
    """Reads one device and emits what it observes; ``run`` returns only when cancelled."""

    @property
    def spec(self) -> DeviceSpec: ...

    async def run(self, emit: Emit) -> None: ...


@runtime_checkable
class ReportsFirmware(Protocol):
    """An adapter whose device runs firmware of its own and says which (a sensor node's heartbeat), so the
    gateway's heartbeat can report the versions in the field; adapters of devices without one leave it out."""

    @property
    def firmware(self) -> str | None:
        """The version the device last reported; None until it has reported a usable one."""
        ...


@runtime_checkable
class ReportsCameraHealth(Protocol):
    """An adapter reading a camera, which says how its frames come (for the gateway's heartbeat)."""

    def health(self) -> CameraHealth: ...
