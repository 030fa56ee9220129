"""A sensor node running the real firmware on asyncio, against a real MQTT broker.

The firmware's ``Node`` is driven as ``firmware/main.py`` drives it on a board:

- an uptime clock (monotonic ms since this boot); pins whose interrupts call ``node.edge``; ``step``
  about every millisecond while the node is busy (an input half-seen, an event queued), otherwise
  when it is next due or at the latest every 20 ms (and at once when an interrupt wakes it);
- one MQTT session with the gateway's local broker (aiomqtt, the node id as client id,
  ``clean_session=False``, the firmware's Last Will retained at QoS 1, ``TCP_NODELAY``); the node's
  config topic subscribed at QoS 1 after every connect, each update handed to ``node.configure``;
  ``outgoing`` published at QoS 1 and ``delivered`` called once the broker's PUBACK is in;
  reconnecting with the firmware's own :class:`Backoff` when the link drops;
- the board's flash as a directory (:mod:`simulators.nodes.flash`), kept across resets.

On a board nothing steps while a publish waits for its PUBACK (``umqtt`` blocks): a lock keeps that
order here, so the firmware's ``outgoing``/``delivered`` pairing sees what it sees on a board.

A node never disconnects cleanly: a reset, a power cut or lost Wi-Fi drops its TCP connection
without an MQTT DISCONNECT, so the broker publishes its Last Will. The simulator does the same by
shutting the socket down under the client. Sleep modes and the watchdog are not simulated: the
simulated node stays awake.
"""

import asyncio
import contextlib
import logging
import random
import socket
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import aiomqtt
import paho.mqtt.client as mqtt

from protocol.mqtt_socket import NO_DELAY
from simulators.nodes.firmware import Firmware, FirmwareBackoff, FirmwareNode, Settings, load_firmware
from simulators.nodes.flash import NodeFlash
from simulators.nodes.pins import DEFAULT_BOUNCE_SPAN_MS, DEFAULT_BOUNCES, ContactBounce, InputLine, SimulatedPin

logger = logging.getLogger(__name__)

BUSY_POLL_MS: Final = 1
IDLE_POLL_MS: Final = 20  # main.py's idle poll: how soon an awake node sees pushed settings
_MQTT_TIMEOUT_S: Final = 10.0
_DROP_TIMEOUT_S: Final = 2.0
_STOP_GRACE_S: Final = 2.0
"""How long a power-off waits for the board loop to end before cutting it again."""
_NO_RSSI_DBM: Final = -127  # what main.py reports without Wi-Fi
DEFAULT_HOLD_MS: Final = 150
LONG_PRESS_MARGIN_MS: Final = 500


class NodeNotRunningError(Exception):
    """The simulated node is powered off (not started, or stopped)."""


class SimulatedNode:
    """One node: flash it (``settings``), start it, then press, open, trigger, reset or cut it off.

    ``settings`` are written to the flash directory as flashing the node does; None boots from what
    the directory already holds. ``seed`` makes contact bounce and reconnect jitter repeatable;
    ``bounces`` and ``bounce_span_ms`` shape the bursts (see :class:`ContactBounce`).
    ``battery_volts`` and ``rssi_dbm`` are what the node measures; set them at any time (the next
    heartbeat reports them); a battery is read only if the settings name a ``battery_adc_pin``.
    """

    def __init__(
        self,
        flash_dir: Path,
        settings: Mapping[str, object] | None = None,
        *,
        firmware: Firmware | None = None,
        seed: int = 0,
        battery_volts: float = 3.9,
        rssi_dbm: int = -60,
        reconnect_base_ms: int = 1000,
        reconnect_cap_ms: int = 60_000,
        bounces: tuple[int, int] = DEFAULT_BOUNCES,
        bounce_span_ms: float = DEFAULT_BOUNCE_SPAN_MS,
    ) -> None:
        self.firmware = firmware or load_firmware()
        self.flash = NodeFlash(flash_dir)
        if settings is not None:
            self.flash.flash(settings)
        flashed = self.flash.load_settings(self.firmware.validate)
        self.node_id = str(flashed["node_id"])
        self.role = str(flashed["role"])
        self.battery_volts = battery_volts
        self.rssi_dbm = rssi_dbm
        self._active_low = bool(flashed["active_low"])
        self._has_battery = int(flashed["battery_adc_pin"]) >= 0
        self._reconnect_base_ms = reconnect_base_ms
        self._reconnect_cap_ms = reconnect_cap_ms
        self._jitter = random.Random(f"{seed}-backoff")
        bounce = ContactBounce(random.Random(seed), bounces=bounces, span_ms=bounce_span_ms)
        self.input = InputLine(
            SimulatedPin(self._level(active=False)),
            self.firmware.input_line,
            self._interrupt,
            None if self.role == "pir_sensor" else bounce,  # a PIR's output switches cleanly
        )
        self.tamper_loop = (
            InputLine(SimulatedPin(0), self.firmware.tamper_line, self._interrupt, bounce)
            if int(flashed["tamper_pin"]) >= 0
            else None
        )  # a closed loop to ground reads 0; open or cut, 1
        self.online = asyncio.Event()  # connected, subscribed, and the firmware told
        self.published: deque[tuple[str, bytes]] = deque(maxlen=1000)  # what the broker acknowledged
        self._node: FirmwareNode | None = None
        self._task: asyncio.Task[None] | None = None
        self._powering_off = False  # set while stop() cuts the board loop (see _link)
        self._client: aiomqtt.Client | None = None
        self._booted_at = 0.0
        self._wifi_back_at = 0.0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._outbox = asyncio.Event()

    # -- power -------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None

    @property
    def node(self) -> FirmwareNode:
        """The firmware's ``Node`` of the current boot."""
        if self._node is None:
            raise NodeNotRunningError(f"node {self.node_id} is not running")
        return self._node

    @property
    def boot(self) -> int:
        return self.node.boot

    @property
    def settings(self) -> Settings:
        """The settings the firmware runs with (from the flash while powered off)."""
        if self._node is not None:
            return dict(self._node.settings)
        return self.flash.load_settings(self.firmware.validate)

    @property
    def queued(self) -> int:
        """Events waiting on the node to be sent."""
        return len(self.node.queue)

    def uptime(self) -> int:
        """Milliseconds since this boot."""
        return int((asyncio.get_running_loop().time() - self._booted_at) * 1000)

    async def start(self, reset_cause: str = "power_on") -> None:
        """Boot: count the boot, read the settings and the unsent events from flash, go online."""
        if self._task is not None:
            raise RuntimeError(f"node {self.node_id} is already running")
        fw = self.firmware
        settings = self.flash.load_settings(fw.validate)
        boot = self.flash.next_boot()
        ring = fw.flash_ring(str(self.flash.ring_path), int(settings["ring_slots"]))
        self._booted_at = asyncio.get_running_loop().time()
        node = fw.node(
            settings,
            boot,
            reset_cause,
            ring,
            self.input.pin,
            self.tamper_loop.pin if self.tamper_loop is not None else None,
            self._battery_v if self._has_battery else None,
            self._rssi,
            self.flash.save_settings,
        )
        node.start(self.uptime())
        self._node = node
        self._task = asyncio.create_task(self._run(node), name=f"node {self.node_id}")
        logger.info("node %s booted (boot %d, %s)", self.node_id, boot, reset_cause)

    async def stop(self) -> None:
        """Power off: the connection drops without a DISCONNECT (the broker sends the Last Will)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._powering_off = True
        if self._client is not None:
            _shut(self._client)
        task.cancel()
        # A cancellation lost on the way (see _link) would leave the board running; it is asked for again, and
        # where the loop was is logged.
        while not (await asyncio.wait({task}, timeout=_STOP_GRACE_S))[0]:
            where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in task.get_stack(limit=20))
            logger.warning("node %s: its board loop ignored a power-off (at %s); cutting it again", self.node_id, where)
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._powering_off = False
        self._node = None
        self.online.clear()

    async def reset(self, cause: str = "hard_reset") -> None:
        """Reset the board: RAM is lost, the flash directory stays; the next boot counts one more."""
        await self.stop()
        await self.start(cause)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- what happens to the node --------------------------------------------------------------------

    async def press(self, hold_ms: int = DEFAULT_HOLD_MS) -> None:
        """Press the button for ``hold_ms`` (from its first edge), bouncing on the way down and up."""
        await self._hold(hold_ms)

    async def long_press(self, hold_ms: int | None = None) -> None:
        """Hold the button past the node's ``long_press_ms`` (by default half a second past it)."""
        await self._hold(hold_ms if hold_ms is not None else int(self.settings["long_press_ms"]) + LONG_PRESS_MARGIN_MS)

    async def presses(self, count: int, hold_ms: int = 80, gap_ms: int = 150) -> None:
        """``count`` quick presses, ``gap_ms`` apart (within the node's ``multi_window_ms``)."""
        for index in range(count):
            if index:
                await asyncio.sleep(gap_ms / 1000)
            await self._hold(hold_ms)

    async def open_door(self) -> None:
        await self.input.drive(self._level(active=True))

    async def close_door(self) -> None:
        await self.input.drive(self._level(active=False))

    async def motion(self, active_ms: int = 500) -> None:
        """A PIR trigger: its output high for ``active_ms``."""
        await self._hold(active_ms)

    async def tamper(self) -> None:
        """Open the enclosure (or cut the tamper wire)."""
        await self._tamper_line().drive(1)

    async def clear_tamper(self) -> None:
        await self._tamper_line().drive(0)

    async def lose_wifi(self, seconds: float) -> None:
        """Wi-Fi gone for ``seconds``: the connection drops at once, without a DISCONNECT (so the
        broker sends the Last Will), and the node tries again once the network is back."""
        self._wifi_back_at = asyncio.get_running_loop().time() + seconds
        if self._client is not None:
            _shut(self._client)

    def wifi_lost(self) -> bool:
        return asyncio.get_running_loop().time() < self._wifi_back_at

    async def _hold(self, hold_ms: int) -> None:
        loop = asyncio.get_running_loop()
        pressed_at = loop.time()
        await self.input.drive(self._level(active=True))
        await asyncio.sleep(max(0.0, pressed_at + hold_ms / 1000 - loop.time()))
        await self.input.drive(self._level(active=False))

    def _tamper_line(self) -> InputLine:
        if self.tamper_loop is None:
            raise ValueError(f"node {self.node_id} has no tamper loop (its settings set no tamper_pin)")
        return self.tamper_loop

    def _level(self, *, active: bool) -> int:
        return int(active != self._active_low)

    def _interrupt(self, line: int) -> None:
        """A pin's interrupt handler, as ``main.py`` sets it: tell the node, wake the loop."""
        if self._node is not None:
            self._node.edge(line, self.uptime())
            self._wake.set()

    def _battery_v(self) -> float:
        return self.battery_volts

    def _rssi(self) -> int:
        return _NO_RSSI_DBM if self.wifi_lost() else self.rssi_dbm

    # -- the board's loop --------------------------------------------------------------------------------

    async def _run(self, node: FirmwareNode) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._steps(node))
            tasks.create_task(self._link(node))

    async def _steps(self, node: FirmwareNode) -> None:
        while True:
            async with self._lock:
                self._wake.clear()
                now = self.uptime()
                node.step(now)
                due = node.due(now)
                busy = not node.idle()
            if busy or due == 0:
                self._outbox.set()
            # Idle with nothing due but a heartbeat that waits for the link: nothing to step for.
            if busy or (due == 0 and self.online.is_set()):
                wait_ms = BUSY_POLL_MS
            else:
                wait_ms = max(BUSY_POLL_MS, min(due, IDLE_POLL_MS))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_ms / 1000):
                    await self._wake.wait()

    async def _link(self, node: FirmwareNode) -> None:
        backoff = self.firmware.backoff(self._reconnect_base_ms, self._reconnect_cap_ms, self._jitter.random)
        loop = asyncio.get_running_loop()
        while True:
            offline_s = self._wifi_back_at - loop.time()
            if offline_s > 0:
                await asyncio.sleep(offline_s)
                continue  # Wi-Fi may have been lost again meanwhile
            try:
                await self._session(node, backoff)
            except* (aiomqtt.MqttError, OSError) as group:
                logger.info("node %s: link down (%s)", self.node_id, group.exceptions[0])
            if self._powering_off:
                # Powered off as the link failed: the session's TaskGroup reported its child's error and dropped
                # the cancellation (Python 3.11), and nothing would cancel this loop again. The power-off wins.
                raise asyncio.CancelledError
            await asyncio.sleep(backoff.next_delay_ms() / 1000)

    async def _session(self, node: FirmwareNode, backoff: FirmwareBackoff) -> None:
        s = node.settings
        will_topic, will_payload, will_retain = node.last_will(self.uptime())
        client = aiomqtt.Client(
            str(s["broker_host"]),
            int(s["broker_port"]),
            identifier=node.node_id,
            username=str(s["broker_user"]) or None,
            password=str(s["broker_password"]) or None,
            keepalive=int(s["keepalive_s"]),
            will=aiomqtt.Will(will_topic, will_payload, qos=1, retain=will_retain),
            clean_session=False,
            timeout=_MQTT_TIMEOUT_S,
            socket_options=NO_DELAY,
        )
        async with client:
            self._client = client
            try:
                if self.wifi_lost():  # lost while connecting
                    return
                await client.subscribe(node.config_topic(), qos=1)  # again after every reconnect
                backoff.reset()
                node.connected(self.uptime())
                self.online.set()
                self._outbox.set()
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(self._listen(client, node))
                    tasks.create_task(self._publish(client, node))
            finally:
                self._client = None
                self.online.clear()
                node.disconnected()
                await _drop(client)

    async def _listen(self, client: aiomqtt.Client, node: FirmwareNode) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            async with self._lock:
                node.configure(payload, self.uptime())
            self._outbox.set()

    async def _publish(self, client: aiomqtt.Client, node: FirmwareNode) -> None:
        while True:
            async with self._lock:
                self._outbox.clear()
                message = node.outgoing(self.uptime())
                if message is not None:
                    topic, payload, retain = message
                    await client.publish(topic, payload, qos=1, retain=retain)  # returns on the PUBACK
                    node.delivered(self.uptime())
                    self.published.append((topic, payload))
                    continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_POLL_MS / 1000):
                    await self._outbox.wait()


def _shut(client: aiomqtt.Client) -> None:
    """Drop ``client``'s TCP connection without an MQTT DISCONNECT, as a reset or lost Wi-Fi does."""
    paho = getattr(client, "_client", None)  # aiomqtt 2.x keeps its paho client here (pinned <3)
    if not isinstance(paho, mqtt.Client):
        raise TypeError("this aiomqtt version does not expose its paho client; check simulators.nodes.node._shut")
    sock = paho.socket()
    if isinstance(sock, socket.socket) and sock.fileno() >= 0:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


async def _drop(client: aiomqtt.Client) -> None:
    """Shut ``client``'s connection (if still up) and wait until aiomqtt has seen it go, so leaving
    its context sends no DISCONNECT."""
    _shut(client)
    with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
        async with asyncio.timeout(_DROP_TIMEOUT_S):
            async for _ in client.messages:
                pass
