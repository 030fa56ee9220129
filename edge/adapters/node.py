"""A MicroPython sensor node (panic button, door contact, PIR) heard over the village's local broker.

The node speaks :mod:`protocol.node`; the adapter turns what it hears into the same observations
the GPIO adapters emit, so local rules treat a wired button and a node's button alike:

- events become presses, door changes, motion or tamper changes, timestamped when they happened
  (receipt time less the node's ``age_ms``) and de-duplicated on the event's ``(boot, seq)``, since
  QoS 1 may deliver one twice;
- heartbeats become ``battery_v`` and ``rssi_dbm`` telemetry, and a ``low_battery`` detection when the
  battery falls below ``low_battery_v`` (once, until it recovers by 0.1 V); the firmware version of the
  latest one is kept for the gateway's heartbeat (:class:`~edge.adapters.base.ReportsFirmware`);
- a node that says ``offline`` (its Last Will) or is not heard for ``silent_after_s`` goes offline
  (the rules raise "node silent"); anything heard from it again brings it back online;
- the device's firmware settings (thresholds and timers the firmware lets the gateway change) are
  published to the node's retained ``config`` topic under a revision derived from their content;
  the node's answer is logged, and a refusal becomes a ``node_config_rejected`` event upstream.

An event of a kind the device cannot produce (a "press" from a door contact) is counted and logged:
the node is misdeclared or misconfigured, and guessing would be worse.
"""

import asyncio
import hashlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Final, Protocol

from pydantic import Field

from edge.adapters.base import (
    ButtonPressed,
    Detected,
    DeviceStatus,
    DoorChanged,
    DoorHeldOpen,
    Emit,
    Measured,
    MotionSensed,
    Observation,
    TamperChanged,
)
from edge.local_bus import NodeListener
from protocol.gateway_config import DeviceKind, DeviceSpec
from protocol.identifiers import DeviceId, is_firmware_version
from protocol.messages import EventKind
from protocol.node import (
    NodeConfig,
    NodeConfigResult,
    NodeEvent,
    NodeEventKind,
    NodeHeartbeat,
    NodeInbound,
    NodeSettings,
    NodeState,
    NodeStatus,
)

logger = logging.getLogger(__name__)

_SEEN_EVENTS: Final = 256
_BATTERY_HYSTERESIS_V: Final = 0.1
_PRESSES: Final = frozenset({NodeEventKind.PRESS, NodeEventKind.LONG_PRESS, NodeEventKind.MULTI_PRESS})
_TAMPER: Final = frozenset({NodeEventKind.TAMPER, NodeEventKind.TAMPER_CLEARED})
_KINDS_FOR_DEVICE: Final[dict[DeviceKind, frozenset[NodeEventKind]]] = {
    DeviceKind.PANIC_BUTTON: _PRESSES | _TAMPER,
    DeviceKind.ACCESS_REQUEST: _PRESSES | _TAMPER,
    DeviceKind.DOOR_CONTACT: frozenset(
        {NodeEventKind.DOOR_OPEN, NodeEventKind.DOOR_CLOSED, NodeEventKind.DOOR_HELD_OPEN}
    )
    | _TAMPER,
    DeviceKind.PIR_SENSOR: frozenset({NodeEventKind.MOTION}) | _TAMPER,
}
NODE_DEVICE_KINDS: Final = frozenset(_KINDS_FOR_DEVICE)


class NodeBus(Protocol):
    def attach(self, node_id: str, listener: NodeListener) -> None: ...

    def detach(self, node_id: str, listener: NodeListener) -> None: ...

    def configure_node(self, config: NodeConfig) -> None: ...


class NodeParams(NodeSettings):
    """A node device's params: how the gateway watches it, and the firmware settings it pushes to it."""

    node_id: DeviceId | None = Field(
        default=None, description="The node's id on the local broker; default: the device id."
    )
    silent_after_s: float = Field(
        default=90.0, ge=5.0, le=86_400.0, description="Offline when nothing is heard for this long (3 heartbeats)."
    )
    low_battery_v: float | None = Field(default=None, gt=0, le=60, description="Report low battery below this.")

    def node_settings(self) -> NodeSettings | None:
        """The firmware settings to push, or None if this device sets none."""
        values = self.model_dump(include=set(NodeSettings.model_fields), exclude_none=True)
        return NodeSettings.model_validate(values, strict=False) if values else None


def settings_revision(settings: NodeSettings) -> str:
    """A revision that changes whenever the settings do, the same on every gateway restart."""
    return hashlib.sha256(settings.model_dump_json(exclude_none=True).encode()).hexdigest()[:16]


class NodeAdapter:
    def __init__(self, spec: DeviceSpec, clock: Callable[[], int], bus: NodeBus) -> None:
        if spec.kind not in NODE_DEVICE_KINDS:
            raise ValueError(f"a sensor node cannot serve a {spec.kind}")
        self._spec = spec
        self._params = NodeParams.model_validate(spec.params)
        self.node_id = self._params.node_id or spec.id
        self._clock = clock
        self._bus = bus
        self._kinds = _KINDS_FOR_DEVICE[spec.kind]
        self._emit: Emit | None = None
        self._last_heard_ms: int | None = None
        self._online: bool | None = None  # unknown until heard from, or silent
        self._battery_low = False
        self._firmware: str | None = None
        self._unusable_firmware: str | None = None  # warned about once, until the node reports another
        self._seen: deque[tuple[int, int]] = deque(maxlen=_SEEN_EVENTS)
        self.duplicates = 0
        self.unexpected = 0

    @property
    def spec(self) -> DeviceSpec:
        return self._spec

    @property
    def firmware(self) -> str | None:
        """The firmware version the node's latest heartbeat reported; None before one did, or when it reported
        none or one unusable as a version (:data:`~protocol.identifiers.FirmwareVersion`)."""
        return self._firmware

    async def run(self, emit: Emit) -> None:
        self._emit = emit
        started = self._clock()
        self._bus.attach(self.node_id, self)
        settings = self._params.node_settings()
        if settings is not None:
            revision = settings_revision(settings)
            self._bus.configure_node(NodeConfig(node_id=self.node_id, revision=revision, settings=settings))
        check_every_s = min(1.0, self._params.silent_after_s / 10)
        silent_ms = round(self._params.silent_after_s * 1000)
        try:
            while True:
                await asyncio.sleep(check_every_s)
                now = self._clock()
                quiet_ms = now - (self._last_heard_ms if self._last_heard_ms is not None else started)
                if self._online is not False and quiet_ms >= silent_ms:
                    heard = "never heard" if self._last_heard_ms is None else f"silent for {quiet_ms / 1000:.0f} s"
                    self._set_online(False, now, heard)
        finally:
            self._bus.detach(self.node_id, self)
            self._emit = None

    def on_node_message(self, message: NodeInbound, received_ms: int) -> None:
        if self._emit is None:
            return
        if isinstance(message, NodeStatus) and message.state is NodeState.OFFLINE:
            self._last_heard_ms = received_ms
            if self._online is not False:
                self._set_online(False, received_ms, "connection lost")
            return
        self._last_heard_ms = received_ms
        if self._online is not True:
            self._set_online(True, received_ms, "heard from")
        match message:
            case NodeHeartbeat():
                self._on_heartbeat(message, received_ms)
            case NodeEvent():
                self._on_event(message, received_ms)
            case NodeConfigResult():
                self._on_config_result(message, received_ms)

    def _set_online(self, online: bool, ts: int, reason: str) -> None:
        was = self._online
        self._online = online
        if online and was is None:
            return  # first contact: nothing was reported offline
        self._send(DeviceStatus(self._spec.id, ts, online, f"node {self.node_id} {reason}"))

    def _on_heartbeat(self, beat: NodeHeartbeat, ts: int) -> None:
        self._remember_firmware(beat.firmware)
        device = self._spec.id
        if beat.rssi_dbm is not None:
            self._send(Measured(device, "rssi_dbm", float(beat.rssi_dbm), ts))
        if beat.battery_v is None:
            return
        self._send(Measured(device, "battery_v", beat.battery_v, ts))
        threshold = self._params.low_battery_v
        if threshold is None:
            return
        if not self._battery_low and beat.battery_v < threshold:
            self._battery_low = True
            evidence: dict[str, float | int | bool | str] = {"battery_v": beat.battery_v, "threshold_v": threshold}
            self._send(Detected(device, ts, EventKind.LOW_BATTERY.value, evidence))
        elif self._battery_low and round(beat.battery_v - threshold, 3) >= _BATTERY_HYSTERESIS_V:
            self._battery_low = False  # rounded to the millivolt: in floats, 3.3 - 3.2 falls short of 0.1

    def _remember_firmware(self, reported: str) -> None:
        """Keep the heartbeat's version; "" is a node that does not say, and one the gateway's heartbeat cannot
        carry (no :data:`~protocol.identifiers.FirmwareVersion`) is logged once and not kept."""
        firmware = reported if is_firmware_version(reported) else None
        if reported and firmware is None and reported != self._unusable_firmware:
            logger.warning("node %s reports firmware %r, which is no usable version; not reported upstream",
                           self.node_id, reported[:80])  # fmt: skip
        self._unusable_firmware = reported if reported and firmware is None else None
        self._firmware = firmware

    def _on_event(self, event: NodeEvent, received_ms: int) -> None:
        key = (event.boot, event.seq)
        if key in self._seen:
            self.duplicates += 1
            return
        self._seen.append(key)
        if event.kind not in self._kinds:
            self.unexpected += 1
            logger.warning("node %s (%s) sent a %s event, which it cannot produce; ignored",
                           self.node_id, self._spec.kind, event.kind)  # fmt: skip
            return
        ts = received_ms - event.age_ms if event.age_ms is not None else received_ms
        device = self._spec.id
        match event.kind:
            case NodeEventKind.PRESS | NodeEventKind.LONG_PRESS | NodeEventKind.MULTI_PRESS:
                self._send(ButtonPressed(device, ts, event.held_ms, presses=event.count))
            case NodeEventKind.DOOR_OPEN | NodeEventKind.DOOR_CLOSED:
                self._send(DoorChanged(device, ts, event.kind is NodeEventKind.DOOR_OPEN))
            case NodeEventKind.DOOR_HELD_OPEN:
                self._send(DoorHeldOpen(device, ts, event.held_ms))
            case NodeEventKind.MOTION:
                self._send(MotionSensed(device, ts))
            case NodeEventKind.TAMPER | NodeEventKind.TAMPER_CLEARED:
                tampered = event.kind is NodeEventKind.TAMPER
                self._send(TamperChanged(device, ts, tampered, "node tampered" if tampered else "node tamper cleared"))

    def _on_config_result(self, result: NodeConfigResult, ts: int) -> None:
        if result.accepted:
            logger.info("node %s applied settings revision %s", self.node_id, result.revision)
            return
        problems = "; ".join(result.errors)
        logger.warning("node %s refused settings revision %s: %s", self.node_id, result.revision, problems[:300])
        evidence: dict[str, float | int | bool | str] = {"revision": result.revision, "errors": problems[:256]}
        self._send(Detected(self._spec.id, ts, EventKind.NODE_CONFIG_REJECTED.value, evidence))

    def _send(self, observation: Observation) -> None:
        if self._emit is not None:
            self._emit(observation)
