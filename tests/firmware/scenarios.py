"""The firmware's behaviour, as scenarios that run unchanged under MicroPython and CPython.

Each ``scenario_*`` function takes a scratch directory (for the flash files) and raises
AssertionError when the firmware misbehaves. ``test_firmware_logic.py`` runs every one of them
under CPython (one pytest test each) and under the real MicroPython interpreter (``run_all``).
No pytest, typing or tempfile here: MicroPython has none of them.
"""

import json

from outpost_node import wire
from outpost_node.backoff import Backoff
from outpost_node.button import PanicButton
from outpost_node.debounce import Debouncer
from outpost_node.door import DoorContact
from outpost_node.events import Event, EventQueue
from outpost_node.flash_ring import FlashRing
from outpost_node.motion import MotionSensor
from outpost_node.node import INPUT, TAMPER_INPUT, Node
from outpost_node.settings import validate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from outpost_node.settings import Settings


class Pin:
    """A pin a scenario drives: ``value()`` as ``machine.Pin`` has it."""

    def __init__(self, level: int) -> None:
        self.level = level

    def value(self) -> int:
        return self.level


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, int, int, int]] = []

    def __call__(self, kind: str, at: int, held_ms: int, count: int) -> None:
        self.events.append((kind, at, held_ms, count))


def _remove(path: str) -> None:
    import os

    try:
        os.remove(path)
    except OSError:
        pass


def _settings(**changes: object) -> "Settings":
    values = {"node_id": "panic-3", "role": "panic_button", "wifi_ssid": "village", "broker_host": "gw", "input_pin": 4}
    values.update(changes)
    settings, problems = validate(values)
    assert problems == [], problems
    return settings


# -- debounce -------------------------------------------------------------------------------------------


def scenario_a_bouncy_press_is_one_change_stamped_at_its_first_edge(scratch: str) -> None:
    d = Debouncer(False, 5, 30)
    changes = []
    level = False
    for t in range(100, 200):
        if t in (100, 101, 103, 104, 106):  # five bounces, then pressed
            level = not level
            d.edge(t)
        at = d.poll(t, level)
        if at >= 0:
            changes.append((at, d.level))
    assert changes == [(100, True)], changes


def scenario_a_spike_shorter_than_the_confirm_time_is_a_counted_glitch(scratch: str) -> None:
    d = Debouncer(False, 5, 30)
    changes = []
    for t in range(0, 100):
        level = t in (10, 11)
        if t in (10, 12):
            d.edge(t)
        if d.poll(t, level) >= 0:
            changes.append(t)
    assert changes == [], changes
    assert d.glitches == 1
    assert d.due() == -1


def scenario_a_release_during_the_settle_time_is_not_lost(scratch: str) -> None:
    d = Debouncer(False, 5, 30)
    changes = []
    for t in range(0, 200):
        level = 10 <= t < 20  # pressed for 10 ms only: released while the press settles
        if t in (10, 20):
            d.edge(t)
        at = d.poll(t, level)
        if at >= 0:
            changes.append((at, d.level))
    assert changes == [(10, True), (20, False)], changes


def scenario_a_change_no_interrupt_told_of_is_found_by_polling(scratch: str) -> None:
    d = Debouncer(False, 5, 30)
    changes = [(at, d.level) for t in range(0, 50) for at in [d.poll(t, t >= 10)] if at >= 0]
    assert changes == [(10, True)], changes


# -- the panic button ---------------------------------------------------------------------------------


def scenario_a_press_is_reported_when_it_happens_not_when_it_ends(scratch: str) -> None:
    r = Recorder()
    b = PanicButton(r, 2000, 600)
    b.change(True, 100)
    assert r.events == [(wire.PRESS, 100, 0, 1)]
    b.change(False, 250)
    for t in range(250, 2000, 10):
        b.tick(t)
    assert r.events == [(wire.PRESS, 100, 0, 1)], r.events
    assert b.due() == -1


def scenario_a_long_hold_is_a_press_then_a_long_press_while_still_held(scratch: str) -> None:
    r = Recorder()
    b = PanicButton(r, 2000, 600)
    b.change(True, 100)
    for t in range(100, 2200, 10):
        b.tick(t)
    assert r.events == [(wire.PRESS, 100, 0, 1), (wire.LONG_PRESS, 100, 2000, 1)], r.events
    b.change(False, 3000)
    b.tick(3000)
    b.change(True, 3100)  # a new gesture
    assert r.events[-1] == (wire.PRESS, 3100, 0, 1), r.events


def scenario_quick_presses_are_a_press_then_one_multi_press_with_their_count(scratch: str) -> None:
    r = Recorder()
    b = PanicButton(r, 2000, 600)
    for start in (100, 400, 700):
        b.change(True, start)
        b.tick(start + 50)
        b.change(False, start + 120)
        b.tick(start + 200)
    for t in range(900, 2000, 10):
        b.tick(t)
    assert r.events == [(wire.PRESS, 100, 0, 1), (wire.MULTI_PRESS, 100, 120, 3)], r.events


# -- door, PIR, tamper ----------------------------------------------------------------------------------


def scenario_a_door_left_open_is_reported_once_per_opening(scratch: str) -> None:
    r = Recorder()
    door = DoorContact(r, 60_000)
    door.change(True, 1_000)
    for t in range(1_000, 200_000, 1_000):
        door.tick(t)
    door.change(False, 200_000)
    door.change(True, 210_000)
    door.change(False, 220_000)
    for t in range(220_000, 400_000, 1_000):
        door.tick(t)
    kinds = [kind for kind, _, _, _ in r.events]
    assert kinds == [wire.DOOR_OPEN, wire.DOOR_HELD_OPEN, wire.DOOR_CLOSED, wire.DOOR_OPEN, wire.DOOR_CLOSED], kinds
    assert r.events[1] == (wire.DOOR_HELD_OPEN, 1_000, 60_000, 1), r.events


def scenario_a_door_without_a_held_open_time_never_reports_one(scratch: str) -> None:
    r = Recorder()
    door = DoorContact(r, 0)
    door.change(True, 0)
    for t in range(0, 10_000_000, 100_000):
        door.tick(t)
    assert r.events == [(wire.DOOR_OPEN, 0, 0, 1)], r.events
    assert door.due() == -1


def scenario_a_pir_reports_one_motion_per_rearm_time(scratch: str) -> None:
    r = Recorder()
    pir = MotionSensor(r, 30_000)
    for at in (0, 5_000, 29_999, 30_000, 31_000, 70_000):
        pir.change(True, at)
        pir.change(False, at + 500)
    assert [at for _, at, _, _ in r.events] == [0, 30_000, 70_000], r.events
    assert pir.ignored == 3


# -- the queue and the flash ring ---------------------------------------------------------------------------


def _event(seq: int, kind: str = wire.PRESS, slot: int = -1, boot: int = 1) -> Event:
    return Event(boot, seq, kind, seq * 10, 0, 1, slot)


def scenario_a_full_queue_drops_the_oldest_event_that_is_not_urgent(scratch: str) -> None:
    q = EventQueue(3)
    q.push(_event(0, slot=0), True)
    q.push(_event(1, wire.MOTION), False)
    q.push(_event(2, slot=1), True)
    dropped = q.push(_event(3, slot=2), True)
    assert dropped is not None and dropped.seq == 1, dropped
    assert [q.pop().seq for _ in range(3)] == [0, 2, 3]
    assert q.dropped == 1


def scenario_an_unurgent_event_gives_way_when_every_queued_event_is_urgent(scratch: str) -> None:
    q = EventQueue(2)
    q.push(_event(0, slot=0), True)
    q.push(_event(1, slot=1), True)
    dropped = q.push(_event(2, wire.MOTION), False)
    assert dropped is not None and dropped.seq == 2
    assert len(q) == 2 and q.peek() is not None and q.peek().seq == 0  # type: ignore[union-attr]


def scenario_urgent_events_on_flash_survive_a_reset_in_order(scratch: str) -> None:
    path = scratch + "/ring-reset"
    _remove(path)
    ring = FlashRing(path, 4)
    slots = [ring.keep(_event(seq)) for seq in (5, 6, 7)]
    ring.release(Event(1, 6, wire.PRESS, 60, 0, 1, slots[1]))
    after_reset = FlashRing(path, 4)
    pending = after_reset.pending()
    assert [(e.boot, e.seq, e.kind) for e in pending] == [(1, 5, wire.PRESS), (1, 7, wire.PRESS)], pending
    assert after_reset.keep(_event(0, boot=2)) not in [e.slot for e in pending]


def scenario_a_full_ring_overwrites_its_oldest_and_a_late_release_spares_the_newcomer(scratch: str) -> None:
    path = scratch + "/ring-full"
    _remove(path)
    ring = FlashRing(path, 2)
    first = Event(1, 0, wire.PRESS, 0, 0, 1, ring.keep(_event(0)))
    ring.keep(_event(1))
    newcomer_slot = ring.keep(_event(2))
    assert ring.overwritten == 1 and newcomer_slot == first.slot
    ring.release(first)  # the overwritten event is delivered from RAM after all
    assert sorted(e.seq for e in FlashRing(path, 2).pending()) == [1, 2]


def scenario_a_record_torn_by_a_power_cut_is_freed_not_fatal(scratch: str) -> None:
    path = scratch + "/ring-torn"
    _remove(path)
    ring = FlashRing(path, 3)
    ring.keep(_event(0))
    with open(path, "r+b") as f:
        f.seek(ring.slot_bytes)
        f.write(b'[1, 1, "pre')  # half a record
    pending = FlashRing(path, 3).pending()
    assert [e.seq for e in pending] == [0], pending


# -- the node -------------------------------------------------------------------------------------------


def _node(scratch: str, name: str, boot: int = 1, **changes: object) -> "tuple[Node, Pin]":
    path = scratch + "/" + name
    pin = Pin(1)
    node = Node(_settings(**changes), boot, "power_on", FlashRing(path, 8), pin)
    return node, pin


def _drain(node: Node, now: int) -> list[dict[str, object]]:
    sent = []
    message = node.outgoing(now)
    while message is not None:
        topic, payload, _ = message
        document = json.loads(payload)
        document["_channel"] = topic.split("/")[-1]
        sent.append(document)
        node.delivered(now)
        message = node.outgoing(now)
    return sent


def scenario_a_press_goes_out_as_an_event_after_the_status(scratch: str) -> None:
    _remove(scratch + "/node-press")
    node, pin = _node(scratch, "node-press")
    node.start(0)
    node.connected(0)
    pin.level = 0
    node.edge(INPUT, 100)
    for t in range(100, 106):
        node.step(t)
    sent = _drain(node, 106)
    channels = [m["_channel"] for m in sent]
    assert channels == [wire.STATUS, wire.EVENT, wire.HEARTBEAT], channels
    assert sent[0]["state"] == "online"
    event = sent[1]
    assert (event["kind"], event["seq"], event["boot"], event["age_ms"]) == (wire.PRESS, 0, 1, 6), event
    assert sent[2]["queued"] == 0 and sent[2]["reset_cause"] == "power_on", sent[2]


def scenario_nothing_is_lost_while_the_link_is_down(scratch: str) -> None:
    _remove(scratch + "/node-down")
    node, pin = _node(scratch, "node-down", role="door_contact", active_low=False)
    node.start(0)
    for t, level in ((100, 0), (300, 1)):  # closed, then open again: the pin reads high when open
        pin.level = level
        node.edge(INPUT, t)
        for now in range(t, t + 150):
            node.step(now)
    assert node.outgoing(1_000) is None  # not connected
    node.connected(1_000)
    kinds = [m["kind"] for m in _drain(node, 1_000) if m["_channel"] == wire.EVENT]
    assert kinds == [wire.DOOR_CLOSED, wire.DOOR_OPEN], kinds  # the pin started high: open at boot


def scenario_an_undelivered_message_comes_back_until_delivered(scratch: str) -> None:
    _remove(scratch + "/node-redo")
    node, pin = _node(scratch, "node-redo")
    node.start(0)
    node.connected(0)
    _drain(node, 0)  # the status and a heartbeat
    pin.level = 0
    node.edge(INPUT, 10)
    for t in range(10, 20):
        node.step(t)
    first = node.outgoing(20)
    node.disconnected()
    node.connected(30)
    status = node.outgoing(30)
    assert status is not None and status[0].endswith("/" + wire.STATUS)
    node.delivered(30)
    again = node.outgoing(30)
    assert first is not None and again is not None
    assert json.loads(first[1])["seq"] == json.loads(again[1])["seq"] == 0


def scenario_a_press_unsent_at_a_reset_is_sent_after_it_with_its_own_boot(scratch: str) -> None:
    _remove(scratch + "/node-reset")
    node, pin = _node(scratch, "node-reset", boot=4)
    node.start(0)
    pin.level = 0
    node.edge(INPUT, 50)
    for t in range(50, 60):
        node.step(t)
    rebooted, _ = _node(scratch, "node-reset", boot=5)  # same flash file, RAM lost
    rebooted.start(0)
    rebooted.connected(0)
    events = [m for m in _drain(rebooted, 0) if m["_channel"] == wire.EVENT]
    assert len(events) == 1, events
    assert events[0]["boot"] == 4 and events[0]["seq"] == 0 and "age_ms" not in events[0], events[0]
    assert FlashRing(scratch + "/node-reset", 8).pending() == []


def scenario_a_pushed_update_is_applied_saved_and_answered(scratch: str) -> None:
    _remove(scratch + "/node-config")
    saved: list[Settings] = []
    node = Node(_settings(), 1, "power_on", FlashRing(scratch + "/node-config", 8), Pin(1), save=saved.append)
    node.start(0)
    node.connected(0)
    update = {"schema_version": 1, "node_id": "panic-3", "revision": "r7", "settings": {"long_press_ms": 900}}
    assert node.configure(json.dumps(update).encode(), 10) is True
    results = [m for m in _drain(node, 10) if m["_channel"] == wire.CONFIG_RESULT]
    assert [(r["revision"], r["accepted"], r["errors"]) for r in results] == [("r7", True, [])], results
    assert saved and saved[-1]["long_press_ms"] == 900 and saved[-1]["revision"] == "r7"
    assert node.configure(json.dumps(update).encode(), 20) is False  # heard again: not applied twice
    assert len(saved) == 1


def scenario_a_new_heartbeat_interval_holds_at_once_not_after_the_old_one(scratch: str) -> None:
    _remove(scratch + "/node-beat")
    node, _ = _node(scratch, "node-beat")  # the default heartbeat: every 60 s
    node.start(0)
    node.connected(0)
    _drain(node, 0)  # the status and the first heartbeat
    update = {"schema_version": 1, "node_id": "panic-3", "revision": "r8", "settings": {"heartbeat_s": 5}}
    node.configure(json.dumps(update).encode(), 1_000)
    beats = [m for m in _drain(node, 1_000) if m["_channel"] == wire.HEARTBEAT]
    assert [b["interval_s"] for b in beats] == [5], beats
    assert node.due(1_000) == 5_000, node.due(1_000)


def scenario_a_bad_update_is_refused_with_every_reason_and_changes_nothing(scratch: str) -> None:
    _remove(scratch + "/node-bad")
    node, _ = _node(scratch, "node-bad")
    node.start(0)
    node.connected(0)
    _drain(node, 0)
    before = dict(node.settings)
    bad = {"wifi_ssid": "elsewhere", "long_press_ms": 10, "heartbeat_s": "often", "colour": "red"}
    for payload in (
        json.dumps({"schema_version": 1, "node_id": "panic-3", "revision": "r8", "settings": bad}).encode(),
        b"{not json",
        json.dumps({"schema_version": 1, "node_id": "door-9", "revision": "r9", "settings": {}}).encode(),
        json.dumps({"schema_version": 2, "node_id": "panic-3", "revision": "r10", "settings": {}}).encode(),
    ):
        assert node.configure(payload, 10) is False
        result = json.loads(node.outgoing(10)[1])  # type: ignore[index]
        node.delivered(10)
        assert result["accepted"] is False and result["errors"], result
    assert node.settings == before


def scenario_a_sleeping_node_knows_when_it_must_wake(scratch: str) -> None:
    _remove(scratch + "/node-sleep")
    node, pin = _node(scratch, "node-sleep", heartbeat_s=60)
    node.start(0)
    node.connected(0)
    _drain(node, 0)
    assert node.idle() and node.due(0) == 60_000
    pin.level = 0
    node.edge(INPUT, 1_000)
    assert not node.idle() and node.due(1_000) == 5  # the confirm time


def scenario_a_cut_tamper_loop_is_urgent_and_reported(scratch: str) -> None:
    _remove(scratch + "/node-tamper")
    tamper = Pin(0)
    node = Node(_settings(tamper_pin=5), 1, "power_on", FlashRing(scratch + "/node-tamper", 8), Pin(1), tamper)
    node.start(0)
    tamper.level = 1
    node.edge(TAMPER_INPUT, 10)
    for t in range(10, 20):
        node.step(t)
    node.connected(20)
    kinds = [m["kind"] for m in _drain(node, 20) if m["_channel"] == wire.EVENT]
    assert kinds == [wire.TAMPER], kinds


def scenario_a_tamper_loop_already_open_at_boot_is_reported(scratch: str) -> None:
    _remove(scratch + "/node-tamper-boot")
    node = Node(_settings(tamper_pin=5), 1, "power_on", FlashRing(scratch + "/node-tamper-boot", 8), Pin(1), Pin(1))
    node.start(0)
    for t in range(0, 20):
        node.step(t)
    node.connected(20)
    kinds = [m["kind"] for m in _drain(node, 20) if m["_channel"] == wire.EVENT]
    assert kinds == [wire.TAMPER], kinds


def scenario_an_offline_node_owes_no_heartbeat_so_it_may_sleep(scratch: str) -> None:
    _remove(scratch + "/node-offline")
    node, _ = _node(scratch, "node-offline", heartbeat_s=60)
    node.start(0)
    assert node.idle() and node.due(5_000) == 60_000  # never connected: the heartbeat is not overdue
    node.connected(5_000)
    assert node.due(5_000) == 0


# -- settings and backoff ---------------------------------------------------------------------------------


def scenario_a_settings_file_is_refused_with_every_problem(scratch: str) -> None:
    _, problems = validate(
        {
            "node_id": "Panic 3",
            "role": "siren",
            "broker_host": "gw",
            "input_pin": 4,
            "tamper_pin": 4,
            "heartbeat_s": True,
        }
    )
    expected = [
        "node_id: only a-z, 0-9, '-' and '_'",
        "role: must be one of panic_button, door_contact, pir_sensor",
        "heartbeat_s: must be int",
        "wifi_ssid: required",
        "tamper_pin: must differ from input_pin",
    ]
    assert sorted(problems) == sorted(expected), problems
    assert validate([1, 2])[1] == ["settings must be a JSON object"]


def scenario_backoff_doubles_to_its_cap_with_jitter_and_resets(scratch: str) -> None:
    low = Backoff(1000, 8000, lambda: 0.0)
    assert [low.next_delay_ms() for _ in range(6)] == [500, 1000, 2000, 4000, 4000, 4000]
    high = Backoff(1000, 8000, lambda: 0.999)
    assert [high.next_delay_ms() for _ in range(5)] == [999, 1999, 3998, 7996, 7996]
    high.reset()
    assert high.next_delay_ms() == 999


def names() -> list[str]:
    return sorted(name for name in globals() if name.startswith("scenario_"))


def run_all(scratch: str) -> None:
    """Run every scenario; print one JSON line per scenario: its name and "ok" or the failure."""
    for name in names():
        try:
            globals()[name](scratch)
            outcome = "ok"
        except Exception as exc:  # reported per scenario
            outcome = type(exc).__name__ + ": " + str(exc)
        print(json.dumps({"scenario": name, "outcome": outcome}))
