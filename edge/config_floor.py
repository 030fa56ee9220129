"""The lowest config version this gateway may still run: the highest signed version it ever accepted.

Kept in a file of its own (``config-version-floor.json`` in the state directory), apart from the applied config:
losing or deleting ``applied-config.json`` (a corrupted card, an intruder with a shell) must not let an older
signed config, replayed from the broker or a recording, roll the gateway back to settings the fleet replaced.
The floor only rises; it is written (and fsynced, with its directory) before a newer config is applied. An
unreadable floor file stops the agent: starting with no floor would accept exactly the rollback it prevents.
"""

import json
from pathlib import Path
from typing import Final

from edge.durable_file import replace_durably
from edge.errors import EdgeConfigError

CONFIG_FLOOR_NAME: Final = "config-version-floor.json"


class ConfigVersionFloor:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.version = self._read()

    def raise_to(self, version: int) -> None:
        """Make ``version`` the floor if it is higher (blocking: disk and fsync). Raises OSError if not kept."""
        if version <= self.version:
            return
        replace_durably(self.path, json.dumps({"version": version}))
        self.version = version

    def _read(self) -> int:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError) as exc:
            raise EdgeConfigError(f"cannot read the config version floor {self.path}: {exc}") from exc
        try:
            version = json.loads(text)["version"]
        except (ValueError, KeyError, TypeError) as exc:
            raise EdgeConfigError(
                f"the config version floor {self.path} is damaged ({exc}); restore or re-enroll"
            ) from exc
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise EdgeConfigError(f"the config version floor {self.path} holds no version: {version!r}")
        return version
