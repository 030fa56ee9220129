"""The interface of outputs the gateway drives for its local rules (a siren, a strobe, a relay).

An actuator emits no observations: rules call it. ``sound`` switches the output on and returns at once;
the actuator switches itself off again after ``for_s`` unless sounded again (which restarts the
countdown from now) or silenced first.
"""

from typing import Protocol

from protocol.gateway_config import DeviceSpec


class Actuator(Protocol):
    """An output device controlled by local rules."""

    @property
    def spec(self) -> DeviceSpec: ...

    @property
    def is_on(self) -> bool: ...

    async def sound(self, for_s: float) -> None:
        """Switch on now and off again ``for_s`` seconds from now (capped by the device's own limit)."""
        ...

    async def silence(self) -> None:
        """Switch off now and forget any pending countdown."""
        ...

    async def close(self) -> None:
        """Switch off and release the hardware; sounding again re-acquires it."""
        ...
