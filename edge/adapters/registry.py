"""Builds the adapter (or actuator) for a declared device from its driver and kind.

Each driver's module is imported only when a device needs it, so a gateway without cameras never
loads OpenCV. Invalid parameters, and kinds a driver cannot serve, are EdgeConfigErrors naming the device.
"""

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError

from edge.adapters.actuators import Actuator
from edge.adapters.base import DeviceAdapter, Observation
from edge.adapters.simulated import build_simulated
from edge.errors import EdgeConfigError
from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind

if TYPE_CHECKING:
    from edge.adapters.camera import CaptureOpener, FrameSink
    from edge.adapters.camera_source import Frame
    from edge.adapters.gpio import PinFactory
    from edge.adapters.node import NodeBus
    from edge.snapshots import SnapshotStore


def build_adapter(
    spec: DeviceSpec,
    clock: Callable[[], int],
    *,
    pin_factory: "PinFactory | None" = None,
    frame_sink: "FrameSink | None" = None,
    capture_opener: "CaptureOpener | None" = None,
    node_bus: "NodeBus | None" = None,
    snapshots: "SnapshotStore | None" = None,
    file_sources: bool = False,
) -> DeviceAdapter:
    """The adapter that reads ``spec``'s device; ``pin_factory`` defaults to gpiozero's own.

    Sensor nodes need ``node_bus``, the gateway's connection to its local broker; cameras keep a
    snapshot of the frame behind a detection in ``snapshots``, if given, and may read a video file only with
    ``file_sources`` (development).
    """
    if spec.kind is DeviceKind.SIREN:
        raise EdgeConfigError(f"device {spec.id}: a siren is an output; build it with build_actuator")
    try:
        if spec.driver is DriverKind.GPIO:
            return _build_gpio(spec, clock, pin_factory)
        if spec.driver is DriverKind.CAMERA:
            return _build_camera(spec, clock, frame_sink, capture_opener, snapshots, file_sources=file_sources)
        if spec.driver is DriverKind.NODE:
            return _build_node(spec, clock, node_bus)
        return build_simulated(spec, clock)
    except ValidationError as exc:
        raise _invalid_params(spec, exc) from exc


def build_devices(
    specs: "Sequence[DeviceSpec]",
    clock: Callable[[], int],
    *,
    pin_factory: "PinFactory | None" = None,
    node_bus: "NodeBus | None" = None,
    snapshots: "SnapshotStore | None" = None,
    file_sources: bool = False,
) -> tuple[list[DeviceAdapter], list[Actuator]]:
    """Every declared device: inputs as adapters, sirens as actuators (``file_sources``: see :func:`build_adapter`)."""
    adapters = [
        build_adapter(
            s, clock, pin_factory=pin_factory, node_bus=node_bus, snapshots=snapshots, file_sources=file_sources
        )
        for s in specs
        if s.kind is not DeviceKind.SIREN
    ]
    actuators = [build_actuator(s, pin_factory=pin_factory) for s in specs if s.kind is DeviceKind.SIREN]
    return adapters, actuators


def build_actuator(spec: DeviceSpec, *, pin_factory: "PinFactory | None" = None) -> Actuator:
    """The output that ``spec`` declares (only sirens on GPIO, so far)."""
    if spec.kind is not DeviceKind.SIREN:
        raise EdgeConfigError(f"device {spec.id}: a {spec.kind} is not an output; build it with build_adapter")
    if spec.driver is not DriverKind.GPIO:
        raise EdgeConfigError(f"device {spec.id}: a siren needs the gpio driver, not {spec.driver}")
    from edge.adapters.gpio import GpioSiren  # noqa: PLC0415 - imported only when a device needs it

    try:
        return GpioSiren(spec, pin_factory=pin_factory)
    except ValidationError as exc:
        raise _invalid_params(spec, exc) from exc


def _build_gpio(spec: DeviceSpec, clock: Callable[[], int], pin_factory: "PinFactory | None") -> DeviceAdapter:
    from edge.adapters.gpio import GpioDoorContact, GpioPanicButton, GpioPirSensor  # noqa: PLC0415 - see module doc

    if spec.kind in {DeviceKind.PANIC_BUTTON, DeviceKind.ACCESS_REQUEST}:
        return GpioPanicButton(spec, clock, pin_factory=pin_factory)
    if spec.kind is DeviceKind.DOOR_CONTACT:
        return GpioDoorContact(spec, clock, pin_factory=pin_factory)
    if spec.kind is DeviceKind.PIR_SENSOR:
        return GpioPirSensor(spec, clock, pin_factory=pin_factory)
    raise EdgeConfigError(f"device {spec.id}: the gpio driver has no {spec.kind} input")


def _build_camera(
    spec: DeviceSpec,
    clock: Callable[[], int],
    frame_sink: "FrameSink | None",
    capture_opener: "CaptureOpener | None",
    snapshots: "SnapshotStore | None",
    *,
    file_sources: bool,
) -> DeviceAdapter:
    if spec.kind is not DeviceKind.CHECKPOINT_CAMERA:
        raise EdgeConfigError(f"device {spec.id}: the camera driver reads cameras, not a {spec.kind}")
    from edge.adapters.camera import CameraAdapter, open_capture  # noqa: PLC0415 - see module doc
    from edge.detection.rates import check_counting_rate  # noqa: PLC0415 - see module doc

    adapter = CameraAdapter(
        spec,
        clock,
        frame_sink=frame_sink or detection_sink(spec, snapshots),
        opener=capture_opener or open_capture,
        file_sources=file_sources,
    )
    check_counting_rate(spec.id, adapter.params.fps, spec.detection)
    return adapter


def _build_node(spec: DeviceSpec, clock: Callable[[], int], node_bus: "NodeBus | None") -> DeviceAdapter:
    from edge.adapters.node import NODE_DEVICE_KINDS, NodeAdapter  # noqa: PLC0415 - see module doc

    if spec.kind not in NODE_DEVICE_KINDS:
        raise EdgeConfigError(f"device {spec.id}: a sensor node cannot serve a {spec.kind}")
    if node_bus is None:
        raise EdgeConfigError(f"device {spec.id}: sensor nodes need the gateway's local_broker to be configured")
    return NodeAdapter(spec, clock, node_bus)


def detection_sink(spec: DeviceSpec, snapshots: "SnapshotStore | None" = None) -> "FrameSink":
    """The camera's frames through its detection pipeline (zones, line, tamper from ``spec.detection``).

    With ``snapshots``, the frame behind a detection is kept on the gateway (rate-limited per camera
    by the store's policy) for an audited fetch; it never leaves otherwise.
    """
    from edge.detection.pipeline import FramePipeline  # noqa: PLC0415 - OpenCV only where a camera is

    pipeline = FramePipeline(spec.id, spec.detection)

    def sink(frame: "Frame", ts: int) -> list[Observation]:
        result = pipeline.process(frame, ts)
        detections = result.detections
        if snapshots is not None and detections:
            snapshots.keep(spec.id, frame, ts, reason=detections[0].kind)
        return [*detections, *result.measurements]  # the crossings' per-minute counts, zeros included

    return sink


def _invalid_params(spec: DeviceSpec, exc: ValidationError) -> EdgeConfigError:
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'params'}: {error['msg']}" for error in exc.errors()
    )
    return EdgeConfigError(f"device {spec.id} ({spec.kind}, {spec.driver} driver): invalid params: {problems}")
