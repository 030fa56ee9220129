"""Builds the adapter for a declared device from its driver and kind."""

from collections.abc import Callable

from edge.adapters.base import DeviceAdapter
from edge.adapters.simulated import build_simulated
from edge.settings import DeviceSpec


def build_adapter(spec: DeviceSpec, clock: Callable[[], int]) -> DeviceAdapter:
    # Only the simulated driver exists so far; GPIO, node and camera drivers each add a branch here.
    return build_simulated(spec, clock)
