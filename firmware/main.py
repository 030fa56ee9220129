"""The board: wires MicroPython's ``machine``, ``network`` and ``umqtt`` to the node logic.

Runs at power-on. Reads ``config.json`` (written when the node was flashed), counts the boot in
``boot.count``, then loops: debounce and classify the inputs, publish what is queued at QoS 1 while
the link is up, reconnect Wi-Fi and MQTT with backoff while it is down, apply settings the gateway
pushes, feed the watchdog, and sleep between events where the settings say so.
"""

import json
import os
import random
import time

import machine
import network
from umqtt.simple import MQTTClient

from outpost_node.backoff import Backoff
from outpost_node.flash_ring import FlashRing
from outpost_node.node import INPUT, TAMPER_INPUT, Node
from outpost_node.settings import validate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from outpost_node.settings import Settings

CONFIG_FILE = "config.json"
BOOT_FILE = "boot.count"
RING_FILE = "events.ring"
_RESET_CAUSES = {
    machine.PWRON_RESET: "power_on",
    machine.HARD_RESET: "hard_reset",
    machine.WDT_RESET: "watchdog",
    machine.DEEPSLEEP_RESET: "deep_sleep",
    machine.SOFT_RESET: "soft_reset",
}
_IDLE_POLL_MS = 20  # how often an awake, idle node looks at the broker for pushed settings
_BUSY_POLL_MS = 1


class Uptime:
    """Milliseconds since boot that never wrap (``time.ticks_ms`` does)."""

    def __init__(self) -> None:
        self._last = time.ticks_ms()
        self._total = 0

    def __call__(self) -> int:
        now = time.ticks_ms()
        self._total += time.ticks_diff(now, self._last)
        self._last = now
        return self._total


def load_settings() -> "Settings":
    with open(CONFIG_FILE) as f:
        settings, problems = validate(json.load(f))
    if problems:
        raise ValueError("config.json: " + "; ".join(problems))
    return settings


def save_settings(settings: "Settings") -> None:
    with open(CONFIG_FILE + ".new", "w") as f:
        json.dump(settings, f)
    os.rename(CONFIG_FILE + ".new", CONFIG_FILE)


def next_boot() -> int:
    try:
        with open(BOOT_FILE) as f:
            boot = int(f.read()) + 1
    except (OSError, ValueError):
        boot = 0
    with open(BOOT_FILE, "w") as f:
        f.write(str(boot))
    return boot


class Board:
    def __init__(self, settings: "Settings") -> None:
        self.settings = settings
        self.uptime = Uptime()
        self.cause = _RESET_CAUSES.get(machine.reset_cause(), "unknown")
        self.wdt = machine.WDT(timeout=int(settings["watchdog_s"]) * 1000)
        self.wlan = network.WLAN(network.STA_IF)
        self.client: MQTTClient | None = None
        self.backoff = Backoff(1000, 60000, random.random)
        self.retry_at = 0
        pull = machine.Pin.PULL_UP if settings["pull_up"] else -1  # -1: leave the pull as it is
        self.input = machine.Pin(int(settings["input_pin"]), machine.Pin.IN, pull)
        tamper_pin = int(settings["tamper_pin"])
        self.tamper = machine.Pin(tamper_pin, machine.Pin.IN, machine.Pin.PULL_UP) if tamper_pin >= 0 else None
        adc_pin = int(settings["battery_adc_pin"])
        self.adc = machine.ADC(machine.Pin(adc_pin)) if adc_pin >= 0 else None
        self.node = Node(
            settings, next_boot(), self.cause, FlashRing(RING_FILE, int(settings["ring_slots"])),
            self.input, self.tamper, self.battery_v if self.adc else None, self.rssi_dbm, save_settings,
        )  # fmt: skip

    def battery_v(self) -> float:
        assert self.adc is not None
        return self.adc.read_uv() / 1e6 * float(self.settings["battery_divider"])

    def rssi_dbm(self) -> int:
        rssi = self.wlan.status("rssi") if self.wlan.isconnected() else None
        return rssi if isinstance(rssi, int) else -127

    def start(self) -> None:
        woke_by_input = self.cause == "deep_sleep" and machine.wake_reason() == machine.EXT0_WAKE
        self.node.start(self.uptime(), woke_by_input)
        self.input.irq(lambda _: self.node.edge(INPUT, self.uptime()), machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING)
        if self.tamper is not None:
            self.tamper.irq(
                lambda _: self.node.edge(TAMPER_INPUT, self.uptime()), machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING
            )
        self.wlan.active(True)

    def connect(self, now: int) -> None:
        """One attempt at Wi-Fi and the broker; on failure, the next one waits for the backoff."""
        s = self.settings
        try:
            if not self.wlan.isconnected():
                self.wlan.connect(str(s["wifi_ssid"]), str(s["wifi_password"]))
                for _ in range(100):  # up to 10 s, feeding the watchdog
                    if self.wlan.isconnected():
                        break
                    self.wdt.feed()
                    time.sleep_ms(100)
                else:
                    raise OSError("Wi-Fi did not connect")
            node = self.node
            client = MQTTClient(
                node.node_id, str(s["broker_host"]), int(s["broker_port"]),
                str(s["broker_user"]) or None, str(s["broker_password"]) or None, int(s["keepalive_s"]),
            )  # fmt: skip
            will_topic, will_payload, _ = node.last_will(now)
            client.set_last_will(will_topic, will_payload, retain=True, qos=1)
            client.set_callback(lambda _topic, payload: self.node.configure(payload, self.uptime()))
            client.connect(clean_session=False)
            client.subscribe(node.config_topic(), qos=1)  # again after every reconnect
            self.client = client
            self.backoff.reset()
            node.connected(now)
        except OSError:
            self.drop(now)

    def drop(self, now: int) -> None:
        if self.client is not None:
            try:
                self.client.sock.close()
            except OSError:
                pass
        self.client = None
        self.node.disconnected()
        self.retry_at = now + self.backoff.next_delay_ms()

    def pump(self, now: int) -> None:
        """Publish everything queued, and take in pushed settings."""
        client = self.client
        if client is None:
            return
        try:
            client.check_msg()  # type: ignore[no-untyped-call]
            message = self.node.outgoing(now)
            while message is not None:
                topic, payload, retain = message
                client.publish(topic, payload, retain, 1)  # returns once the broker's PUBACK is in
                self.node.delivered(self.uptime())
                self.wdt.feed()
                message = self.node.outgoing(self.uptime())
        except OSError:
            self.drop(now)

    def rest(self, now: int) -> None:
        node = self.node
        wait_ms = node.due(now)
        if not node.idle() or (self.client is None and now < self.retry_at):
            time.sleep_ms(min(wait_ms, _BUSY_POLL_MS if not node.idle() else _IDLE_POLL_MS))
            return
        mode = self.settings["sleep"]
        if mode == "deep" and wait_ms > 1000:
            self.wake_on_change()
            machine.deepsleep(min(wait_ms, int(self.settings["heartbeat_s"]) * 1000))
        elif mode == "light" and wait_ms > _IDLE_POLL_MS:
            self.wake_on_change()
            machine.lightsleep(min(wait_ms, int(self.settings["heartbeat_s"]) * 1000))
        else:
            time.sleep_ms(min(wait_ms, _IDLE_POLL_MS))

    def wake_on_change(self) -> None:
        """Wake from light or deep sleep when the input leaves the level it is at now."""
        import esp32

        esp32.wake_on_ext0(self.input, esp32.WAKEUP_ALL_LOW if self.input.value() else esp32.WAKEUP_ANY_HIGH)

    def run(self) -> None:
        self.start()
        while True:
            now = self.uptime()
            self.wdt.feed()
            self.node.step(now)
            if self.client is None and now >= self.retry_at:
                self.connect(now)
            self.pump(now)
            self.rest(self.uptime())


Board(load_settings()).run()
