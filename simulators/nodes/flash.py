"""A simulated node's flash, as a directory: the files ``firmware/main.py`` keeps on a board.

``config.json`` holds the settings written when the node was flashed (and rewritten, atomically,
when the gateway changes them), ``boot.count`` the boot counter, ``events.ring`` the firmware's
:class:`FlashRing` of urgent events not yet sent. The directory outlives a reset of the node, as
flash does, so a restarted simulated node boots from what its predecessor left.
"""

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from simulators.nodes.firmware import Settings

CONFIG_FILE: Final = "config.json"
BOOT_FILE: Final = "boot.count"
RING_FILE: Final = "events.ring"


class NodeFlashError(Exception):
    """The settings on the node's flash are missing or refused by the firmware."""


def factory_settings(node_id: str, role: str, broker_host: str, broker_port: int, **more: object) -> dict[str, object]:
    """Settings as a technician flashes them for ``role``: a button to ground, or a door contact or
    PIR driving its input high when active; ``more`` adds or overrides any setting."""
    settings: dict[str, object] = {
        "node_id": node_id,
        "role": role,
        "wifi_ssid": "village",
        "broker_host": broker_host,
        "broker_port": broker_port,
        "input_pin": 4,
        "active_low": role == "panic_button",
        "pull_up": role != "pir_sensor",
    }
    settings.update(more)
    return settings


class NodeFlash:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def ring_path(self) -> Path:
        return self.directory / RING_FILE

    def holds_settings(self) -> bool:
        return (self.directory / CONFIG_FILE).is_file()

    def flash(self, settings: Mapping[str, object]) -> None:
        """Write ``settings`` as flashing the node does (not checked here: the firmware checks at boot)."""
        self._write_settings(dict(settings))

    def load_settings(self, validate: Callable[[object], tuple[Settings, list[str]]]) -> Settings:
        """The settings the firmware boots with (``validate`` is the firmware's own check)."""
        try:
            values = json.loads((self.directory / CONFIG_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise NodeFlashError(f"{self.directory / CONFIG_FILE}: {exc}") from exc
        settings, problems = validate(values)
        if problems:
            raise NodeFlashError(f"{self.directory / CONFIG_FILE}: " + "; ".join(problems))
        return settings

    def save_settings(self, settings: Settings) -> None:
        """The firmware's ``save`` callback: settings the gateway changed, kept across resets."""
        self._write_settings(settings)

    def next_boot(self) -> int:
        """Count this boot: 0 on the first, one more on each after (as ``main.py`` does)."""
        path = self.directory / BOOT_FILE
        try:
            boot = int(path.read_text()) + 1
        except (OSError, ValueError):
            boot = 0
        path.write_text(str(boot))
        return boot

    def _write_settings(self, settings: Mapping[str, object]) -> None:
        path = self.directory / CONFIG_FILE
        staged = path.with_name(CONFIG_FILE + ".new")
        staged.write_text(json.dumps(settings))
        os.replace(staged, path)
