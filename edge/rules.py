"""Local rules: what the gateway makes of each observation, without needing the uplink.

- A panic press: a critical alert (sent first), a button event, and every siren sounds at once.
- A door change, PIR or camera motion, a line crossing: an event. A camera's crossings are also counted by
  its pipeline, which reports ``line_in``/``line_out`` (and ``line_in_{label}`` with a classifier) per
  minute as measurements, zeros included, so an empty entrance is told from a broken counter.
- A door with a policy: opened without an authorising access request in the window before it is
  "door forced" (critical, and the sirens sound); open longer than ``held_open_s`` is "door held
  open" (major).
- Tamper (an opened enclosure, a cut wire, a covered/defocused/moved camera): a major alert when
  it is raised, an event when raised or cleared.
- A device going offline (a camera's stream lost, a sensor node silent): a major alert and an
  event; back online: an event.
- Measurements go to the telemetry batcher.

Every alert also goes straight to the village centre on the local broker (``notify_local``),
before it is stored for the uplink, so the village hears it whether or not the fleet is reachable.
On the panic path the sirens come first, then the village centre, then the buffer; each step is
isolated: one that raises (a full disk, a broken encoder) is logged and counted
(``local_action_failed``) and the next still runs. Stamping (sequence numbers) never raises.

Alerts and events carry the observation's own timestamp and evidence, never a frame.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence
from functools import partial

from edge.adapters.actuators import Actuator
from edge.adapters.base import (
    ButtonPressed,
    Detected,
    DeviceStatus,
    DoorChanged,
    DoorHeldOpen,
    Measured,
    MotionSensed,
    Observation,
    TamperChanged,
)
from edge.envelope import EnvelopeStamper
from edge.faults import LOCAL_ACTION_FAILED, GatewayFaults
from protocol.gateway_config import DeviceKind, DeviceSpec
from protocol.messages import Alert, AlertKind, DeviceEvent, EventKind, Evidence, Message, Severity

logger = logging.getLogger(__name__)

SIREN_SECONDS = 60.0
ALARM_QUIET_S = 600.0
"""How long after a critical alert the gateway puts off an agent update (its staff are acting on the alarm)."""


class LocalRules:
    def __init__(
        self,
        stamper: EnvelopeStamper,
        send: Callable[[Message], None],
        measure: Callable[[Measured], None],
        *,
        notify_local: Callable[[Alert], None] | None = None,
        faults: GatewayFaults | None = None,
    ) -> None:
        self._devices: dict[str, DeviceSpec] = {}
        self._stamper = stamper
        self._send = send
        self._measure = measure
        self._notify_local = notify_local
        self._faults = faults or GatewayFaults()
        self._sirens: list[Actuator] = []
        self._siren_tasks: set[asyncio.Task[None]] = set()
        self.offline_devices: set[str] = set()
        self._last_authorisation: dict[str, int] = {}
        self._held_open_timers: dict[str, asyncio.TimerHandle] = {}
        self._last_critical_ms: int | None = None

    def use_devices(self, devices: Sequence[DeviceSpec], sirens: Sequence[Actuator]) -> None:
        """Apply rules to these devices from now on (at start, and after a config change)."""
        self._devices = {device.id: device for device in devices}
        self._sirens = list(sirens)
        for door in [door for door in self._held_open_timers if door not in self._devices]:
            self._held_open_timers.pop(door).cancel()
        self.offline_devices &= set(self._devices)

    def alarm(self, now_ms: int, quiet_s: float = ALARM_QUIET_S) -> str | None:
        """Why this is no moment to restart the agent: a critical alert raised in the last ``quiet_s`` (its siren
        sounds for :data:`SIREN_SECONDS` of them, and staff are acting on it), or a siren still being switched on;
        None if it is."""
        if self._siren_tasks:
            return "a siren is sounding"
        if self._last_critical_ms is not None and now_ms - self._last_critical_ms < quiet_s * 1000:
            return f"a critical alert was raised {(now_ms - self._last_critical_ms) / 1000:.0f} s ago"
        return None

    def handle(self, observation: Observation) -> None:
        match observation:
            case ButtonPressed():
                self._on_press(observation)
            case DoorChanged():
                self._on_door(observation)
            case MotionSensed():
                self._event(observation.device_id, observation.ts, EventKind.MOTION)
            case DoorHeldOpen():
                self._on_door_held_open(observation)
            case TamperChanged():
                evidence: Evidence = {"tampered": observation.tampered, "reason": observation.reason}
                if observation.tampered:
                    self._alert(observation.device_id, observation.ts, AlertKind.DEVICE_TAMPER, Severity.MAJOR,
                                evidence, f"{observation.device_id}: {observation.reason}")  # fmt: skip
                self._event(observation.device_id, observation.ts, EventKind.DEVICE_TAMPER, evidence)
            case Detected():
                self._on_detection(observation)
            case DeviceStatus():
                self._on_status(observation)
            case Measured():
                self._measure(observation)

    def _on_press(self, press: ButtonPressed) -> None:
        spec = self._devices.get(press.device_id)
        if spec is None:
            logger.warning("press from undeclared device %s ignored", press.device_id)
            return
        evidence: Evidence = {"held_ms": press.held_ms}
        if press.presses > 1:
            evidence["presses"] = press.presses
        if spec.kind is DeviceKind.ACCESS_REQUEST:
            self._last_authorisation[press.device_id] = press.ts
        if spec.kind is DeviceKind.PANIC_BUTTON:
            self._sound_sirens()
            self._alert(press.device_id, press.ts, AlertKind.PANIC, Severity.CRITICAL, evidence,
                        f"panic button {press.device_id} pressed")  # fmt: skip
        self._event(press.device_id, press.ts, EventKind.BUTTON_PRESSED, evidence)

    def _on_door(self, change: DoorChanged) -> None:
        door = change.device_id
        kind = EventKind.DOOR_OPENED if change.is_open else EventKind.DOOR_CLOSED
        self._event(door, change.ts, kind)
        spec = self._devices.get(door)
        policy = spec.door if spec is not None else None
        held = self._held_open_timers.pop(door, None)
        if held is not None:
            held.cancel()
        if policy is None or not change.is_open:
            return
        if policy.authorised_by:
            window_ms = round(policy.authorisation_window_s * 1000)
            granted = [self._last_authorisation.get(device, -1) for device in policy.authorised_by]
            latest = max(granted)
            if not 0 <= change.ts - latest <= window_ms:
                evidence: Evidence = {
                    "window_ms": window_ms,
                    "since_authorised_ms": change.ts - latest if latest >= 0 else -1,
                }
                self._sound_sirens()
                self._alert(door, change.ts, AlertKind.DOOR_FORCED, Severity.CRITICAL, evidence,
                            f"door {door} opened without authorisation")  # fmt: skip
        if policy.held_open_s is not None:
            self._held_open_timers[door] = asyncio.get_running_loop().call_later(
                policy.held_open_s, self._held_open, door, change.ts, policy.held_open_s
            )

    def _held_open(self, door: str, opened_ts: int, limit_s: float) -> None:
        self._held_open_timers.pop(door, None)
        now = self._stamper.clock()
        evidence: Evidence = {"open_s": round((now - opened_ts) / 1000, 1), "limit_s": limit_s}
        self._alert(door, now, AlertKind.DOOR_HELD_OPEN, Severity.MAJOR, evidence,
                    f"door {door} held open for over {limit_s:g} s")  # fmt: skip

    def _on_door_held_open(self, held: DoorHeldOpen) -> None:
        """A door node's own held-open timer; the gateway's door policy, when it sets one, has the say."""
        spec = self._devices.get(held.device_id)
        if spec is not None and spec.door is not None and spec.door.held_open_s is not None:
            return
        open_s = round(held.open_ms / 1000, 1)
        evidence: Evidence = {"open_s": open_s, "source": "node"}
        summary = f"door {held.device_id} held open for {open_s:g} s"
        self._alert(held.device_id, held.ts + held.open_ms, AlertKind.DOOR_HELD_OPEN, Severity.MAJOR, evidence, summary)

    def _on_detection(self, detected: Detected) -> None:
        try:
            kind = EventKind(detected.kind)
        except ValueError:
            logger.warning("unknown detection %r from %s ignored", detected.kind[:40], detected.device_id)
            return
        evidence: Evidence = dict(detected.evidence)
        if kind is EventKind.CAMERA_TAMPER and evidence.get("state") == "raised":
            self._alert(detected.device_id, detected.ts, AlertKind.CAMERA_TAMPER, Severity.MAJOR, evidence,
                        f"camera {detected.device_id} tampered: {evidence.get('reason', 'unknown')}")  # fmt: skip
        self._event(detected.device_id, detected.ts, kind, evidence)

    def _on_status(self, status: DeviceStatus) -> None:
        evidence: Evidence = {"reason": status.reason}
        if status.online:
            self.offline_devices.discard(status.device_id)
            self._event(status.device_id, status.ts, EventKind.DEVICE_ONLINE, evidence)
            return
        self.offline_devices.add(status.device_id)
        spec = self._devices.get(status.device_id)
        kind = (
            AlertKind.CAMERA_OFFLINE
            if spec is None or spec.kind is DeviceKind.CHECKPOINT_CAMERA
            else AlertKind.NODE_SILENT
        )
        self._alert(status.device_id, status.ts, kind, Severity.MAJOR, evidence,
                    f"{status.device_id} offline: {status.reason}")  # fmt: skip
        self._event(status.device_id, status.ts, EventKind.DEVICE_OFFLINE, evidence)

    def _sound_sirens(self) -> None:
        for siren in self._sirens:
            task = asyncio.get_running_loop().create_task(siren.sound(SIREN_SECONDS))
            self._siren_tasks.add(task)
            task.add_done_callback(self._siren_done)

    def _siren_done(self, task: "asyncio.Task[None]") -> None:
        self._siren_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("a siren failed to sound: %s", task.exception())

    def _alert(
        self, device_id: str, ts: int, kind: AlertKind, severity: Severity, evidence: Evidence, summary: str
    ) -> None:
        raise_alert = partial(self._raise, device_id, ts, kind, severity, evidence, summary)
        self._isolated(f"{kind} alert of {device_id}", raise_alert)

    def _raise(
        self, device_id: str, ts: int, kind: AlertKind, severity: Severity, evidence: Evidence, summary: str
    ) -> None:
        spec = self._devices.get(device_id)
        if severity is Severity.CRITICAL:
            self._last_critical_ms = ts
        alert = Alert(
            **self._stamper.stamp(ts),
            device_id=device_id,
            kind=kind,
            severity=severity,
            grid_id=spec.grid_id if spec else None,
            evidence=evidence,
            summary=summary[:256],
        )
        if self._notify_local is not None:
            # First: the village centre hears it whatever the disk does.
            self._isolated(f"village centre notification of {alert.event_id}", partial(self._notify_local, alert))
        self._isolated(f"buffering alert {alert.event_id}", partial(self._send, alert))

    def _event(self, device_id: str, ts: int, kind: EventKind, evidence: Evidence | None = None) -> None:
        def send() -> None:
            self._send(DeviceEvent(**self._stamper.stamp(ts), device_id=device_id, kind=kind, evidence=evidence or {}))

        self._isolated(f"{kind} event of {device_id}", send)

    def _isolated(self, what: str, step: Callable[[], None]) -> None:
        """Run one step of a rule; if it raises, log and count it so the steps after it still run.

        The top of the local-action path: an observation's rules must all run whatever one of them meets."""
        try:
            step()
        except Exception:
            self._faults.count(LOCAL_ACTION_FAILED)
            logger.exception("%s failed; the other local actions went on", what)
