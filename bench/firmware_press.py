"""Press-to-publish delay in the firmware's logic, without the network: from the pin's first edge
to the moment the node hands the event's payload to its MQTT client.

The same measuring loop runs under CPython (the node simulator's interpreter) and under the real
MicroPython interpreter: it drives the firmware's ``Node`` as ``main.py`` does (a busy node polls
every millisecond), with a simulated pin. The delay includes the debounce's confirm time (5 ms by
default), which the firmware waits on purpose. Baseline, in the same run: the bare loop, which sees
the pin change and encodes an event with no debouncing or classification.
"""

MEASURE = r"""
import json, time
from outpost_node.flash_ring import FlashRing
from outpost_node.node import INPUT, Node
from outpost_node.settings import validate
from outpost_node import wire

class Pin:
    def __init__(self):
        self.level = 1
    def value(self):
        return self.level

def ms():
    return time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.monotonic() * 1000)

def us():
    return time.ticks_us() if hasattr(time, "ticks_us") else int(time.monotonic() * 1000000)

def pause_ms(n):
    end = us() + n * 1000
    while us() < end:
        pass

def node_delays(presses, scratch):
    settings, _ = validate({"node_id": "bench", "role": "panic_button", "wifi_ssid": "v", "broker_host": "gw",
                            "input_pin": 4, "multi_window_ms": 150})
    pin = Pin()
    node = Node(settings, 1, "power_on", FlashRing(scratch + "/bench-ring", 16), pin)
    start = ms()
    node.start(0)
    node.connected(0)
    delays = []
    for _ in range(presses):
        while True:  # drain: status, heartbeat, earlier events
            message = node.outgoing(ms() - start)
            if message is None:
                break
            node.delivered(ms() - start)
        pin.level = 0
        pressed = us()
        node.edge(INPUT, ms() - start)
        while True:
            now = ms() - start
            node.step(now)
            message = node.outgoing(now)
            if message is not None and message[0].endswith("/event"):
                delays.append((us() - pressed) / 1000)
                node.delivered(now)
                break
            pause_ms(1)
        pause_ms(60)
        pin.level = 1
        node.edge(INPUT, ms() - start)
        for _ in range(250):  # the release settles and the multi-press window closes
            node.step(ms() - start)
            pause_ms(1)
    return delays

def bare_delays(presses):
    pin = Pin()
    delays = []
    for seq in range(presses):
        pin.level = 0
        pressed = us()
        while True:  # the same 1 ms poll as the node's busy loop
            pause_ms(1)
            if pin.value() == 0:
                break
        wire.event("bench", 1, ms(), 1, seq, wire.PRESS, ms(), 0, 1)
        delays.append((us() - pressed) / 1000)
        pin.level = 1
        pause_ms(1)
    return delays
"""
