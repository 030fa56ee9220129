"""The gateway settings example in README.md is valid, so a technician can start from it."""

import re
import tomllib
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from edge.adapters.registry import build_devices
from edge.local_bus import LocalBus
from edge.settings import EdgeSettings
from protocol.clock import utc_now_ms
from protocol.gateway_config import DeviceKind, DriverKind

README = Path(__file__).resolve().parents[2] / "README.md"


async def test_the_readme_gateway_example_is_valid_settings() -> None:
    match = re.search(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert match is not None, "README.md has no ```toml example"
    settings = EdgeSettings(**tomllib.loads(match.group(1)))
    assert {device.kind for device in settings.devices} >= {DeviceKind.PANIC_BUTTON, DeviceKind.CHECKPOINT_CAMERA}
    assert {device.driver for device in settings.devices} >= {DriverKind.GPIO, DriverKind.CAMERA, DriverKind.NODE}
    assert settings.local_broker is not None
    # Every device's driver parameters validate too (the adapters are built, not run).
    bus = LocalBus(settings.local_broker, settings.village_id, settings.gateway_id, utc_now_ms)
    adapters, sirens = build_devices(settings.devices, utc_now_ms, pin_factory=MockFactory(), node_bus=bus)
    assert len(adapters) + len(sirens) == len(settings.devices)
