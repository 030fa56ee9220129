"""The registry: each driver and kind gets its adapter or actuator; bad declarations are config errors."""

from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from edge.adapters.base import Observation
from edge.adapters.camera import CameraAdapter
from edge.adapters.camera_source import Frame
from edge.adapters.gpio import GpioDoorContact, GpioPanicButton, GpioPirSensor, GpioSiren
from edge.adapters.registry import build_actuator, build_adapter
from edge.adapters.simulated import SimulatedDoorContact, SimulatedPanicButton
from edge.errors import EdgeConfigError
from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind, ParamValue


def clock() -> int:
    return 1_700_000_000_000


def spec(kind: DeviceKind, driver: DriverKind, **params: ParamValue) -> DeviceSpec:
    return DeviceSpec(kind=kind, id="dev-1", driver=driver, params=params)


@pytest.mark.parametrize(
    ("kind", "adapter_type"),
    [
        (DeviceKind.PANIC_BUTTON, GpioPanicButton),
        (DeviceKind.DOOR_CONTACT, GpioDoorContact),
        (DeviceKind.PIR_SENSOR, GpioPirSensor),
    ],
)
def test_gpio_inputs_get_their_gpio_adapter(kind: DeviceKind, adapter_type: type) -> None:
    device = spec(kind, DriverKind.GPIO, pin=17)

    adapter = build_adapter(device, clock, pin_factory=MockFactory())

    assert isinstance(adapter, adapter_type)
    assert adapter.spec is device


def test_the_pin_factory_is_optional_until_run_claims_a_pin() -> None:
    assert isinstance(build_adapter(spec(DeviceKind.PANIC_BUTTON, DriverKind.GPIO, pin=17), clock), GpioPanicButton)


def test_a_camera_gets_the_camera_adapter_with_its_frame_sink() -> None:
    def sink(frame: Frame, ts: int) -> list[Observation]:
        return []

    device = spec(DeviceKind.CHECKPOINT_CAMERA, DriverKind.CAMERA, source="rtsp://cam.local/stream", fps=5)

    adapter = build_adapter(device, clock, frame_sink=sink)

    assert isinstance(adapter, CameraAdapter)
    assert adapter.params.fps == 5.0


@pytest.mark.parametrize(
    ("kind", "adapter_type"),
    [(DeviceKind.PANIC_BUTTON, SimulatedPanicButton), (DeviceKind.DOOR_CONTACT, SimulatedDoorContact)],
)
def test_simulated_devices_are_built_as_before(kind: DeviceKind, adapter_type: type) -> None:
    assert isinstance(build_adapter(DeviceSpec(kind=kind, id="dev-1"), clock), adapter_type)


@pytest.mark.parametrize("driver", list(DriverKind))
def test_a_siren_is_not_an_adapter(driver: DriverKind) -> None:
    with pytest.raises(EdgeConfigError, match=r"device dev-1: a siren is an output; build it with build_actuator"):
        build_adapter(spec(DeviceKind.SIREN, driver, pin=18), clock)


def test_a_gpio_siren_is_built_as_an_actuator() -> None:
    siren = build_actuator(
        spec(DeviceKind.SIREN, DriverKind.GPIO, pin=18, active_high=False), pin_factory=MockFactory()
    )

    assert isinstance(siren, GpioSiren)
    assert siren.params.active_high is False
    assert not siren.is_on


@pytest.mark.parametrize(
    ("device", "problem"),
    [
        (spec(DeviceKind.DOOR_CONTACT, DriverKind.GPIO, pin=17), "a door_contact is not an output"),
        (spec(DeviceKind.SIREN, DriverKind.SIMULATED, pin=18), "a siren needs the gpio driver, not simulated"),
        (spec(DeviceKind.SIREN, DriverKind.GPIO), r"invalid params: pin: Field required"),
        (spec(DeviceKind.SIREN, DriverKind.GPIO, pin=18, max_on_s=0), r"max_on_s: Input should be greater than 0"),
    ],
)
def test_build_actuator_refuses_what_it_cannot_drive(device: DeviceSpec, problem: str) -> None:
    with pytest.raises(EdgeConfigError, match=rf"device dev-1.*{problem}"):
        build_actuator(device, pin_factory=MockFactory())


@pytest.mark.parametrize(
    ("device", "problem"),
    [
        (spec(DeviceKind.CHECKPOINT_CAMERA, DriverKind.GPIO, pin=17), "the gpio driver has no checkpoint_camera input"),
        (spec(DeviceKind.PANIC_BUTTON, DriverKind.CAMERA, source="x.avi"), "camera driver reads cameras, not a panic"),
        (spec(DeviceKind.PANIC_BUTTON, DriverKind.GPIO), "pin: Field required"),
        (spec(DeviceKind.PANIC_BUTTON, DriverKind.GPIO, pin=40), "pin: Input should be less than or equal to 27"),
        (spec(DeviceKind.PANIC_BUTTON, DriverKind.GPIO, pin="17"), "pin: Input should be a valid integer"),
        (
            spec(DeviceKind.PANIC_BUTTON, DriverKind.GPIO, pin=17, colour="red"),
            "colour: Extra inputs are not permitted",
        ),
        (spec(DeviceKind.DOOR_CONTACT, DriverKind.GPIO, pin=17, tamper_pin=17), "tamper_pin must differ from pin"),
        (spec(DeviceKind.DOOR_CONTACT, DriverKind.GPIO, pin=17, tamper_loop="lid"), "tamper_loop: Input should be"),
        (spec(DeviceKind.PANIC_BUTTON, DriverKind.GPIO, pin=17, long_press_ms=10), "long_press_ms: Input should be"),
        (spec(DeviceKind.PIR_SENSOR, DriverKind.GPIO, pin=17, rearm_ms=-1), "rearm_ms: Input should be"),
        (spec(DeviceKind.CHECKPOINT_CAMERA, DriverKind.CAMERA), "source: Field required"),
        (spec(DeviceKind.CHECKPOINT_CAMERA, DriverKind.CAMERA, source="rtsp://c/s", fps=0), "fps: Input should be"),
        (
            spec(
                DeviceKind.CHECKPOINT_CAMERA, DriverKind.CAMERA, source="rtsp://c/s", backoff_min_s=9, backoff_max_s=2
            ),
            "backoff_min_s must not exceed backoff_max_s",
        ),
        (spec(DeviceKind.CHECKPOINT_CAMERA, DriverKind.CAMERA, source="a.avi"), r"video files: development only"),
        (spec(DeviceKind.CHECKPOINT_CAMERA, DriverKind.CAMERA, source="file:///etc/passwd"), "URL, not file"),
        (
            spec(DeviceKind.CHECKPOINT_CAMERA, DriverKind.CAMERA, source="subfile,,start,0,end,9,,:/etc/passwd"),
            "URL, not subfile",
        ),
        (spec(DeviceKind.CHECKPOINT_CAMERA, DriverKind.CAMERA, source="concat:rtsp://c/a"), "URL, not concat"),
        (spec(DeviceKind.CHECKPOINT_CAMERA, DriverKind.SIMULATED, period_s=0), "period_s: Input should be greater"),
    ],
)
def test_bad_declarations_are_config_errors_naming_the_device_and_the_problem(device: DeviceSpec, problem: str) -> None:
    with pytest.raises(EdgeConfigError, match=rf"device dev-1.*{problem}"):
        build_adapter(device, clock, pin_factory=MockFactory())


def test_a_video_file_stands_for_a_camera_only_when_allowed(tmp_path: Path) -> None:
    device = spec(DeviceKind.CHECKPOINT_CAMERA, DriverKind.CAMERA, source=str(tmp_path / "clip.avi"))

    assert isinstance(build_adapter(device, clock, file_sources=True), CameraAdapter)
