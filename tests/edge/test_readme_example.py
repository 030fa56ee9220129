"""The gateway settings example in README.md is valid, so a technician can start from it."""

import re
import tomllib
from pathlib import Path

from edge.settings import EdgeSettings
from protocol.gateway_config import DeviceKind

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_gateway_example_is_valid_settings() -> None:
    match = re.search(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert match is not None, "README.md has no ```toml example"
    settings = EdgeSettings(**tomllib.loads(match.group(1)))
    assert {device.kind for device in settings.devices} >= {DeviceKind.PANIC_BUTTON, DeviceKind.CHECKPOINT_CAMERA}
