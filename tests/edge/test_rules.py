"""Local rules: a panic press raises a critical alert first, door changes become events, measurements go on."""

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from edge.adapters.actuators import Actuator
from edge.adapters.base import (
    ButtonPressed,
    Detected,
    DeviceStatus,
    DoorChanged,
    Measured,
    MotionSensed,
    TamperChanged,
)
from edge.adapters.gpio import GpioSiren
from edge.envelope import EnvelopeStamper
from edge.faults import LOCAL_ACTION_FAILED, SEQUENCE_UNPERSISTED, GatewayFaults
from edge.rules import LocalRules
from edge.sequence import SequenceCounter
from edge.settings import EdgeSettings
from protocol.codec import Decoder, Inbound, encode
from protocol.gateway_config import DeviceKind, DeviceSpec, DoorPolicy, DriverKind
from protocol.messages import Alert, AlertKind, DeviceEvent, EventKind, Message, Severity, channel_of
from protocol.topics import gateway_topic
from tests.edge.disk import read_only_directory

GATEWAY = "gw-01"
NOW_MS = 1_700_000_999_000
PRESSED_MS = 1_700_000_000_123

DEVICES = {
    spec.id: spec
    for spec in (
        DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-1", grid_id="grid-7"),
        DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-2"),
        DeviceSpec(kind=DeviceKind.DOOR_CONTACT, id="door-1", grid_id="grid-2"),
        DeviceSpec(kind=DeviceKind.CHECKPOINT_CAMERA, id="camera-1"),
    )
}


class Outbox:
    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.measured: list[Measured] = []
        self.notified: list[Alert] = []


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


def _rules(
    devices: dict[str, DeviceSpec], stamper: EnvelopeStamper, outbox: Outbox, sirens: Sequence[Actuator] = ()
) -> LocalRules:
    rules = LocalRules(stamper, outbox.sent.append, outbox.measured.append, notify_local=outbox.notified.append)
    rules.use_devices(list(devices.values()), sirens)
    return rules


@pytest.fixture
def rules(tmp_path: Path, outbox: Outbox) -> LocalRules:
    stamper = EnvelopeStamper(GATEWAY, SequenceCounter(tmp_path / "sequence"), lambda: NOW_MS)
    return _rules(DEVICES, stamper, outbox)


def test_a_panic_press_raises_a_critical_panic_alert_before_the_button_event(rules: LocalRules, outbox: Outbox) -> None:
    rules.handle(ButtonPressed("panic-1", PRESSED_MS, held_ms=800))

    alert, event = outbox.sent
    assert isinstance(alert, Alert)
    assert alert.kind is AlertKind.PANIC
    assert alert.severity is Severity.CRITICAL
    assert alert.device_id == "panic-1"
    assert alert.grid_id == "grid-7"
    assert alert.gateway_id == GATEWAY
    assert alert.ts == PRESSED_MS
    assert alert.evidence == {"held_ms": 800}
    assert "panic-1" in alert.summary
    assert isinstance(event, DeviceEvent)
    assert event.kind is EventKind.BUTTON_PRESSED
    assert event.device_id == "panic-1"
    assert event.ts == PRESSED_MS
    assert event.evidence == {"held_ms": 800}
    assert alert.seq < event.seq
    assert alert.event_id != event.event_id
    assert outbox.measured == []
    assert outbox.notified == [alert]


def test_a_pattern_of_presses_from_a_node_keeps_its_count_in_the_evidence(rules: LocalRules, outbox: Outbox) -> None:
    rules.handle(ButtonPressed("panic-1", PRESSED_MS, held_ms=120, presses=3))

    alert, event = outbox.sent
    assert isinstance(alert, Alert)
    assert alert.evidence == {"held_ms": 120, "presses": 3}
    assert isinstance(event, DeviceEvent)
    assert event.evidence == alert.evidence


def test_a_panic_button_without_a_grid_raises_an_alert_without_one(rules: LocalRules, outbox: Outbox) -> None:
    rules.handle(ButtonPressed("panic-2", PRESSED_MS, held_ms=150))

    alert = outbox.sent[0]
    assert isinstance(alert, Alert)
    assert alert.grid_id is None


def test_a_press_on_a_device_that_is_not_a_panic_button_is_only_an_event(rules: LocalRules, outbox: Outbox) -> None:
    rules.handle(ButtonPressed("door-1", PRESSED_MS, held_ms=150))

    [event] = outbox.sent
    assert isinstance(event, DeviceEvent)
    assert event.kind is EventKind.BUTTON_PRESSED


@pytest.mark.parametrize(("is_open", "kind"), [(True, EventKind.DOOR_OPENED), (False, EventKind.DOOR_CLOSED)])
def test_a_door_change_becomes_an_event_stamped_when_it_happened(
    rules: LocalRules, outbox: Outbox, is_open: bool, kind: EventKind
) -> None:
    rules.handle(DoorChanged("door-1", PRESSED_MS, is_open=is_open))

    [event] = outbox.sent
    assert isinstance(event, DeviceEvent)
    assert event.kind is kind
    assert event.device_id == "door-1"
    assert event.ts == PRESSED_MS
    assert event.gateway_id == GATEWAY


def test_measurements_go_to_the_measure_callback_and_are_not_sent(rules: LocalRules, outbox: Outbox) -> None:
    measured = Measured("camera-1", "line_in", 3.0, PRESSED_MS)

    rules.handle(measured)

    assert outbox.measured == [measured]
    assert outbox.sent == []


def test_every_message_the_rules_send_is_a_valid_wire_message(rules: LocalRules, outbox: Outbox) -> None:
    rules.handle(ButtonPressed("panic-1", PRESSED_MS, held_ms=150))
    rules.handle(DoorChanged("door-1", PRESSED_MS + 1, is_open=True))
    rules.handle(DoorChanged("door-1", PRESSED_MS + 2, is_open=False))

    decoder = Decoder()
    for message in outbox.sent:
        result = decoder.decode(gateway_topic("lakeside", GATEWAY, channel_of(message)), encode(message))
        assert isinstance(result, Inbound), result
        assert result.message == message
    assert [m.seq for m in outbox.sent] == sorted({m.seq for m in outbox.sent})


# --- tamper, detections, device status, sirens -------------------------------------------------


def test_an_opened_enclosure_raises_a_device_tamper_alert_and_an_event(rules: LocalRules, outbox: Outbox) -> None:
    rules.handle(TamperChanged("door-1", PRESSED_MS, tampered=True, reason="enclosure opened"))

    alert, event = outbox.sent
    assert isinstance(alert, Alert)
    assert alert.kind is AlertKind.DEVICE_TAMPER
    assert alert.severity is Severity.MAJOR
    assert alert.grid_id == "grid-2"
    assert alert.evidence == {"tampered": True, "reason": "enclosure opened"}
    assert isinstance(event, DeviceEvent)
    assert event.kind is EventKind.DEVICE_TAMPER


def test_a_cleared_tamper_is_an_event_only(rules: LocalRules, outbox: Outbox) -> None:
    rules.handle(TamperChanged("door-1", PRESSED_MS, tampered=False, reason="enclosure closed"))

    [event] = outbox.sent
    assert isinstance(event, DeviceEvent)
    assert event.evidence == {"tampered": False, "reason": "enclosure closed"}


def test_a_raised_camera_tamper_detection_becomes_an_alert_with_its_evidence(rules: LocalRules, outbox: Outbox) -> None:
    evidence: dict[str, float | int | bool | str] = {"reason": "covered", "state": "raised", "score": 0.02}
    rules.handle(Detected("camera-1", PRESSED_MS, "camera_tamper", evidence))

    alert, event = outbox.sent
    assert isinstance(alert, Alert)
    assert alert.kind is AlertKind.CAMERA_TAMPER
    assert alert.evidence == evidence
    assert "covered" in alert.summary
    assert isinstance(event, DeviceEvent)
    assert event.kind is EventKind.CAMERA_TAMPER


def test_a_line_crossing_is_an_event_and_counted_only_by_the_pipelines_minute_reports(
    rules: LocalRules, outbox: Outbox
) -> None:
    rules.handle(Detected("camera-1", PRESSED_MS, "line_crossing", {"direction": "in", "line": "gate"}))
    rules.handle(Detected("camera-1", PRESSED_MS + 1, "line_crossing", {"direction": "out", "line": "gate"}))
    rules.handle(Measured("camera-1", "line_in", 1.0, PRESSED_MS - PRESSED_MS % 60_000))  # the minute's report

    assert [(m.metric, m.value) for m in outbox.measured] == [("line_in", 1.0)], "each crossing counted once"
    assert [e.kind for e in outbox.sent if isinstance(e, DeviceEvent)] == [EventKind.LINE_CROSSING] * 2
    assert not [m for m in outbox.sent if isinstance(m, Alert)]


def test_an_unknown_detection_kind_is_ignored(rules: LocalRules, outbox: Outbox) -> None:
    rules.handle(Detected("camera-1", PRESSED_MS, "face_recognised", {}))
    assert outbox.sent == []


def test_a_camera_going_offline_raises_camera_offline_and_coming_back_is_an_event(
    rules: LocalRules, outbox: Outbox
) -> None:
    rules.handle(DeviceStatus("camera-1", PRESSED_MS, online=False, reason="stream lost"))
    rules.handle(DeviceStatus("camera-1", PRESSED_MS + 5_000, online=True, reason="receiving frames"))

    alert, offline, online = outbox.sent
    assert isinstance(alert, Alert)
    assert alert.kind is AlertKind.CAMERA_OFFLINE
    assert isinstance(offline, DeviceEvent)
    assert offline.kind is EventKind.DEVICE_OFFLINE
    assert isinstance(online, DeviceEvent)
    assert online.kind is EventKind.DEVICE_ONLINE


def test_pir_motion_is_an_event(rules: LocalRules, outbox: Outbox) -> None:
    rules.handle(MotionSensed("door-1", PRESSED_MS))
    [event] = outbox.sent
    assert isinstance(event, DeviceEvent)
    assert event.kind is EventKind.MOTION


async def test_a_panic_press_sounds_every_siren(tmp_path: Path, outbox: Outbox) -> None:
    factory = MockFactory()
    siren = GpioSiren(DeviceSpec(kind=DeviceKind.SIREN, id="siren-1", driver=DriverKind.GPIO, params={"pin": 18}),
                      pin_factory=factory)  # fmt: skip
    stamper = EnvelopeStamper(GATEWAY, SequenceCounter(tmp_path / "sequence"), lambda: NOW_MS)
    rules = _rules(DEVICES, stamper, outbox, sirens=[siren])
    try:
        rules.handle(ButtonPressed("panic-1", PRESSED_MS, held_ms=300))
        await asyncio.sleep(0)  # the siren is switched on by a task of the event loop
        await asyncio.sleep(0)
        assert siren.is_on
        assert factory.pin(18).state
    finally:
        await siren.close()


# --- doors with a policy ------------------------------------------------------------------------

POLICED = {
    spec.id: spec
    for spec in (
        DeviceSpec(kind=DeviceKind.ACCESS_REQUEST, id="rex-1"),
        DeviceSpec(
            kind=DeviceKind.DOOR_CONTACT,
            id="door-clinic",
            grid_id="grid-3",
            door=DoorPolicy(held_open_s=0.05, authorised_by=["rex-1"], authorisation_window_s=10),
        ),
    )
}


@pytest.fixture
def policed(tmp_path: Path, outbox: Outbox) -> LocalRules:
    stamper = EnvelopeStamper(GATEWAY, SequenceCounter(tmp_path / "sequence"), lambda: NOW_MS)
    return _rules(POLICED, stamper, outbox)


def _alerts(outbox: Outbox) -> list[Alert]:
    return [message for message in outbox.sent if isinstance(message, Alert)]


async def test_a_door_opened_without_authorisation_is_forced(policed: LocalRules, outbox: Outbox) -> None:
    policed.handle(DoorChanged("door-clinic", PRESSED_MS, is_open=True))
    policed.handle(DoorChanged("door-clinic", PRESSED_MS + 1_000, is_open=False))

    [forced] = _alerts(outbox)
    assert forced.kind is AlertKind.DOOR_FORCED
    assert forced.severity is Severity.CRITICAL
    assert forced.grid_id == "grid-3"
    assert forced.evidence == {"window_ms": 10_000, "since_authorised_ms": -1}


async def test_a_forced_door_sounds_the_sirens_and_tells_the_village_centre(tmp_path: Path, outbox: Outbox) -> None:
    factory = MockFactory()
    siren = GpioSiren(DeviceSpec(kind=DeviceKind.SIREN, id="siren-1", driver=DriverKind.GPIO, params={"pin": 18}),
                      pin_factory=factory)  # fmt: skip
    stamper = EnvelopeStamper(GATEWAY, SequenceCounter(tmp_path / "sequence"), lambda: NOW_MS)
    rules = _rules(POLICED, stamper, outbox, sirens=[siren])
    try:
        rules.handle(DoorChanged("door-clinic", PRESSED_MS, is_open=True))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert siren.is_on
        assert [alert.kind for alert in outbox.notified] == [AlertKind.DOOR_FORCED]
    finally:
        await siren.close()


async def test_devices_removed_by_a_new_config_lose_their_pending_timers_and_state(
    policed: LocalRules, outbox: Outbox
) -> None:
    policed.handle(ButtonPressed("rex-1", PRESSED_MS, held_ms=100))
    policed.handle(DoorChanged("door-clinic", PRESSED_MS + 1_000, is_open=True))
    policed.handle(DeviceStatus("door-clinic", PRESSED_MS, online=False, reason="node silent"))

    policed.use_devices([POLICED["rex-1"]], [])
    await asyncio.sleep(0.2)  # past the removed door's held-open limit

    assert [alert.kind for alert in _alerts(outbox)] == [AlertKind.NODE_SILENT]
    assert policed.offline_devices == set()


async def test_a_door_opened_within_the_authorisation_window_is_not_forced(policed: LocalRules, outbox: Outbox) -> None:
    policed.handle(ButtonPressed("rex-1", PRESSED_MS, held_ms=100))
    policed.handle(DoorChanged("door-clinic", PRESSED_MS + 3_000, is_open=True))
    policed.handle(DoorChanged("door-clinic", PRESSED_MS + 5_000, is_open=False))
    # The same request does not authorise an opening long after its window.
    policed.handle(DoorChanged("door-clinic", PRESSED_MS + 60_000, is_open=True))
    policed.handle(DoorChanged("door-clinic", PRESSED_MS + 61_000, is_open=False))

    [forced] = _alerts(outbox)
    assert forced.ts == PRESSED_MS + 60_000
    assert forced.evidence["since_authorised_ms"] == 60_000


async def test_a_door_left_open_past_its_limit_raises_held_open(policed: LocalRules, outbox: Outbox) -> None:
    policed.handle(ButtonPressed("rex-1", PRESSED_MS, held_ms=100))
    policed.handle(DoorChanged("door-clinic", PRESSED_MS + 1_000, is_open=True))
    await asyncio.sleep(0.2)

    [held] = _alerts(outbox)
    assert held.kind is AlertKind.DOOR_HELD_OPEN
    assert held.severity is Severity.MAJOR
    assert held.evidence["limit_s"] == 0.05


async def test_a_door_closed_in_time_raises_nothing(policed: LocalRules, outbox: Outbox) -> None:
    policed.handle(ButtonPressed("rex-1", PRESSED_MS, held_ms=100))
    policed.handle(DoorChanged("door-clinic", PRESSED_MS + 1_000, is_open=True))
    policed.handle(DoorChanged("door-clinic", PRESSED_MS + 1_010, is_open=False))
    await asyncio.sleep(0.2)

    assert _alerts(outbox) == []


def test_a_door_policy_must_name_access_request_devices() -> None:
    with pytest.raises(ValueError, match="not an access_request device"):
        EdgeSettings(
            environment="development",
            village_id="dongshan",
            gateway_id="gw-dongshan",
            devices=[
                DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-1"),
                DeviceSpec(kind=DeviceKind.DOOR_CONTACT, id="door-1", door=DoorPolicy(authorised_by=["panic-1"])),
            ],
        )


# --- the panic path when storage fails ----------------------------------------------------------


class FailingStore:
    """The rules' ``send`` when the disk refuses everything: it raises, as a buffer with no file could."""

    def __init__(self) -> None:
        self.attempts: list[Message] = []

    def __call__(self, message: Message) -> None:
        self.attempts.append(message)
        raise OSError(28, "No space left on device")


async def test_a_store_that_raises_never_keeps_the_siren_or_the_village_centre_from_a_press(
    tmp_path: Path, outbox: Outbox
) -> None:
    factory = MockFactory()
    siren = GpioSiren(DeviceSpec(kind=DeviceKind.SIREN, id="siren-1", driver=DriverKind.GPIO, params={"pin": 18}),
                      pin_factory=factory)  # fmt: skip
    store, faults = FailingStore(), GatewayFaults()
    stamper = EnvelopeStamper(GATEWAY, SequenceCounter(tmp_path / "sequence"), lambda: NOW_MS)
    rules = LocalRules(stamper, store, outbox.measured.append, notify_local=outbox.notified.append, faults=faults)
    rules.use_devices(list(DEVICES.values()), [siren])
    try:
        rules.handle(ButtonPressed("panic-1", PRESSED_MS, held_ms=300))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert siren.is_on
    finally:
        await siren.close()

    assert [alert.kind for alert in outbox.notified] == [AlertKind.PANIC]
    assert [type(message) for message in store.attempts] == [Alert, DeviceEvent]  # the event was still tried
    assert faults.counts[LOCAL_ACTION_FAILED] == 2


def test_a_village_centre_that_raises_never_keeps_the_alert_from_the_buffer(tmp_path: Path, outbox: Outbox) -> None:
    def unreachable(alert: Alert) -> None:
        raise RuntimeError("local bus broken")

    faults = GatewayFaults()
    stamper = EnvelopeStamper(GATEWAY, SequenceCounter(tmp_path / "sequence"), lambda: NOW_MS)
    rules = LocalRules(stamper, outbox.sent.append, outbox.measured.append, notify_local=unreachable, faults=faults)
    rules.use_devices(list(DEVICES.values()), [])

    rules.handle(ButtonPressed("panic-1", PRESSED_MS, held_ms=300))

    assert [type(message) for message in outbox.sent] == [Alert, DeviceEvent]
    assert faults.counts[LOCAL_ACTION_FAILED] == 1


def test_a_press_reaches_the_village_centre_when_sequence_numbers_cannot_be_reserved(
    tmp_path: Path, outbox: Outbox
) -> None:
    faults = GatewayFaults()
    with read_only_directory(tmp_path / "state") as state:
        sequence = SequenceCounter(state / "sequence", faults=faults)
        rules = _rules(DEVICES, EnvelopeStamper(GATEWAY, sequence, lambda: NOW_MS), outbox)

        rules.handle(ButtonPressed("panic-1", PRESSED_MS, held_ms=300))
        rules.handle(ButtonPressed("panic-1", PRESSED_MS + 5_000, held_ms=300))

    assert [alert.seq for alert in outbox.notified] == [0, 2]  # each press: its alert, then its event
    assert [message.seq for message in outbox.sent] == [0, 1, 2, 3]
    assert faults.counts[SEQUENCE_UNPERSISTED] == 1
