"""The firmware tests load ``firmware/`` the way a board does, through the node simulator's loader.

The firmware is not an Outpost package (nothing imports it); these tests, the node simulator and
the firmware bench load it from its directory (``simulators/nodes/firmware.py``).
"""

import pytest

from simulators.infra.micropython import MicroPython
from simulators.nodes.firmware import load_firmware

load_firmware()  # ``outpost_node`` importable from here on, for the scenarios and the contract tests


@pytest.fixture(scope="session")
def micropython() -> MicroPython:
    return MicroPython()
