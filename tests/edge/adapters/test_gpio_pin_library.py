"""A gateway whose Python has no GPIO pin library (a virtual environment made without --system-site-packages on
Raspberry Pi OS): its GPIO devices fail with one error naming what to install, not gpiozero's BadPinFactory and a
warning for every library it tried.

The missing library is simulated where gpiozero looks for it: its default pin factory, which warns for each
library it tries and then raises ``BadPinFactory``, exactly as it does in such a venv.
"""

import asyncio
import warnings
from typing import NoReturn

import pytest
from gpiozero import Device
from gpiozero.exc import BadPinFactory, PinFactoryFallback
from gpiozero.pins.mock import MockFactory

from edge.adapters.base import Observation
from edge.adapters.gpio import GpioPanicButton, GpioSiren, GpioUnavailableError
from edge.adapters.registry import build_actuator, build_adapter
from edge.errors import EdgeConfigError
from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind
from tests.edge.adapters.test_gpio import eventually

TRIED = ("lgpio: No module named 'lgpio'", "rpigpio: No module named 'RPi'", "pigpio: No module named 'pigpio'")


def no_pin_library() -> NoReturn:
    """gpiozero's default pin factory in a venv without lgpio (Device._default_pin_factory)."""
    for reason in TRIED:
        warnings.warn(PinFactoryFallback(f"Falling back from {reason}"), stacklevel=2)
    raise BadPinFactory("Unable to load any default pin factory!")


@pytest.fixture
def without_pin_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Device, "pin_factory", None)  # none chosen yet: the first claim looks for one
    monkeypatch.setattr(Device, "_default_pin_factory", staticmethod(no_pin_library))


def spec(kind: DeviceKind, device_id: str, pin: int) -> DeviceSpec:
    return DeviceSpec(kind=kind, id=device_id, driver=DriverKind.GPIO, params={"pin": pin})


def assert_says_what_to_install(message: str) -> None:
    assert "no GPIO pin library" in message
    assert "sudo apt install python3-lgpio" in message
    assert "--system-site-packages" in message
    assert "pip install lgpio" in message
    assert "docs/GATEWAY.md" in message
    assert all(reason in message for reason in TRIED), "the libraries gpiozero tried, and why each failed"


@pytest.mark.usefixtures("without_pin_library")
@pytest.mark.filterwarnings("error")  # none of gpiozero's fallback warnings may reach the log
async def test_a_button_without_a_pin_library_fails_with_one_error_naming_what_to_install() -> None:
    button = build_adapter(spec(DeviceKind.PANIC_BUTTON, "panic-school", 17), lambda: 0)
    assert isinstance(button, GpioPanicButton)
    observed: list[Observation] = []

    with pytest.raises(GpioUnavailableError) as failure:
        async with asyncio.timeout(5):
            await button.run(observed.append)

    message = str(failure.value)
    assert message.startswith("device panic-school on GPIO17: ")
    assert_says_what_to_install(message)
    assert failure.value.__cause__ is None
    assert failure.value.__context__ is None, "no chained gpiozero traceback"
    assert isinstance(failure.value, EdgeConfigError), "a pushed config with it is rolled back, naming the device"
    assert observed == []
    assert button.is_active is None


@pytest.mark.usefixtures("without_pin_library")
@pytest.mark.filterwarnings("error")
def test_a_siren_without_a_pin_library_fails_the_same_way() -> None:
    siren = build_actuator(spec(DeviceKind.SIREN, "siren-centre", 18))
    assert isinstance(siren, GpioSiren)

    with pytest.raises(GpioUnavailableError) as failure:
        siren.open()

    assert str(failure.value).startswith("siren siren-centre on GPIO18: ")
    assert_says_what_to_install(str(failure.value))
    assert not siren.is_on


@pytest.mark.usefixtures("without_pin_library")
async def test_a_given_pin_factory_needs_no_pin_library() -> None:
    button = build_adapter(spec(DeviceKind.PANIC_BUTTON, "panic-school", 17), lambda: 0, pin_factory=MockFactory())
    assert isinstance(button, GpioPanicButton)
    task = asyncio.create_task(button.run(lambda _: None))

    await eventually(lambda: task.done() or button.is_active is not None)  # its pin claimed, or failed

    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
