"""Local rules: what the gateway makes of each observation, without needing the uplink.

A panic press becomes a critical alert (sent first) and a button event; a door change becomes an
event; measurements go to the telemetry batcher.
"""

import logging
from collections.abc import Callable, Mapping

from edge.adapters.base import ButtonPressed, DoorChanged, Measured, Observation
from edge.envelope import EnvelopeStamper
from edge.settings import DeviceKind, DeviceSpec
from protocol.messages import Alert, AlertKind, DeviceEvent, EventKind, Message, Severity

logger = logging.getLogger(__name__)


class LocalRules:
    def __init__(
        self,
        devices: Mapping[str, DeviceSpec],
        stamper: EnvelopeStamper,
        send: Callable[[Message], None],
        measure: Callable[[Measured], None],
    ) -> None:
        self._devices = devices
        self._stamper = stamper
        self._send = send
        self._measure = measure

    def handle(self, observation: Observation) -> None:
        match observation:
            case ButtonPressed():
                self._on_press(observation)
            case DoorChanged():
                kind = EventKind.DOOR_OPENED if observation.is_open else EventKind.DOOR_CLOSED
                self._send(
                    DeviceEvent(**self._stamper.stamp(observation.ts), device_id=observation.device_id, kind=kind)
                )
            case Measured():
                self._measure(observation)

    def _on_press(self, press: ButtonPressed) -> None:
        spec = self._devices.get(press.device_id)
        if spec is None:
            logger.warning("press from undeclared device %s ignored", press.device_id)
            return
        evidence: dict[str, float | int | bool | str] = {"held_ms": press.held_ms}
        if spec.kind is DeviceKind.PANIC_BUTTON:
            self._send(
                Alert(
                    **self._stamper.stamp(press.ts),
                    device_id=press.device_id,
                    kind=AlertKind.PANIC,
                    severity=Severity.CRITICAL,
                    grid_id=spec.grid_id,
                    evidence=evidence,
                    summary=f"panic button {press.device_id} pressed",
                )
            )
        self._send(
            DeviceEvent(
                **self._stamper.stamp(press.ts),
                device_id=press.device_id,
                kind=EventKind.BUTTON_PRESSED,
                evidence=evidence,
            )
        )
