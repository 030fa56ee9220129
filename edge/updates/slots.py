"""The agent's two installation slots and the link that says which one runs.

::

    <root>/                 /opt/outpost, the update root (owned by the agent's user)
        slots/a/            a virtual environment with one agent release
        slots/b/            the other
        current -> slots/a  what the unit runs: <root>/current/bin/outpost
        trial.env           an update on trial (edge.updates.trial), read by the guard too
        last-update.env     how the last update ended

An update installs into the slot that is not running, then points ``current`` at it with one atomic rename
of a new symbolic link over the old (the directory synced after), so a power cut leaves ``current`` on the
old slot or on the new one, never on neither. An installation from before slots (a ``venv`` directory the
link points at) is the previous slot of its first update.
"""

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from edge.durable_file import sync_directory
from edge.errors import UpdateError

SLOTS: Final = ("a", "b")
CURRENT: Final = "current"


@dataclass(frozen=True, slots=True)
class SlotLayout:
    root: Path

    @property
    def current(self) -> Path:
        return self.root / CURRENT

    def slot(self, name: str) -> Path:
        return self.root / "slots" / name

    def target(self) -> str | None:
        """Where ``current`` points, relative to the root (``slots/a``); None when there is no link."""
        try:
            return os.readlink(self.current)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UpdateError(f"{self.current} is not a symbolic link to a slot: {exc.strerror}") from exc

    def active(self) -> str | None:
        """The slot ``current`` points at (``a`` or ``b``); None for an installation from before slots."""
        target = self.target()
        return next((name for name in SLOTS if target == f"slots/{name}"), None)

    def inactive(self) -> str:
        """The slot an update installs into: the one not running."""
        return "b" if self.active() == "a" else "a"

    def running_here(self, prefix: str = sys.prefix) -> bool:
        """Whether this Python runs from the installation ``current`` points at."""
        try:
            return Path(prefix).resolve() == self.current.resolve(strict=True)
        except (OSError, RuntimeError):  # RuntimeError: a link loop (Python 3.11)
            return False

    def switch(self, target: str) -> None:
        """Point ``current`` at ``target`` (relative to the root, ``slots/b``), atomically and durably."""
        if target in ("", CURRENT) or target.startswith("/") or ".." in target.split("/"):
            raise UpdateError(f"{target!r} is not a slot under {self.root}")
        staged = self.root / f".{CURRENT}.{os.getpid()}"
        staged.unlink(missing_ok=True)
        os.symlink(target, staged)
        os.replace(staged, self.current)
        sync_directory(self.root)
