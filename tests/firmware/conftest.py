"""The firmware tests load ``firmware/`` the way a board does: its directory on ``sys.path``.

The firmware is not an Outpost package (nothing imports it); only these tests, the node simulator
and the firmware bench load it, each from its directory.
"""

import sys
from pathlib import Path

import pytest

from simulators.infra.micropython import MicroPython

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
if str(FIRMWARE_DIR) not in sys.path:
    sys.path.insert(0, str(FIRMWARE_DIR))


@pytest.fixture(scope="session")
def micropython() -> MicroPython:
    return MicroPython()
