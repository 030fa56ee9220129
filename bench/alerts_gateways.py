"""Simulated gateways for the alert figures: each on its own MQTT connection, sending telemetry and
heartbeats, pressing panic buttons when told to, in a process of their own.

``python -m bench.alerts_gateways HOST PORT FIRST COUNT HEARTBEAT_S TELEMETRY_S`` runs gateways ``FIRST``
to ``FIRST + COUNT - 1`` (ids and villages from :mod:`bench.fleet_gateways`). Each one does what the agent's
uplink does (``edge/uplink.py``): it connects with its own client id and a retained Last Will
(``offline``/``lost``) and publishes a retained ``online`` presence stamped before the Will; then, each at
its own phase, a :class:`~protocol.messages.Heartbeat` every ``HEARTBEAT_S`` and a
:class:`~protocol.messages.TelemetryBatch` (:data:`METRICS`, one reading each) every ``TELEMETRY_S``, at
QoS 1. Sequence numbers start at the process's start time in ms, so a gateway started again (a rejoin)
outranks its earlier session's Will, as the agent's persisted sequence does.

Lines on stdin steer it; answers are lines of JSON on stdout:

- at start: ``{"ready": COUNT}`` once every gateway is connected and has sent its first heartbeat;
- ``press ROUND PRESSES SPACING_MS``: ``PRESSES`` panic presses, one every ``SPACING_MS``, each by the next
  gateway in turn (device ``panic-ROUND``, so each is a condition of its own); every press is published
  twice, ``SPACING_MS / 2`` apart, each time as a new alert: to the fleet (``protocol.topics.gateway_topic``,
  the ``alert`` channel), and to the village centre's topic on the same broker
  (``protocol.village_centre.village_centre_topic``), which the fleet does not take and a bare subscriber
  does (the baseline). The answer: ``{"fleet": {EVENT_ID: MS}, "bare": {EVENT_ID: MS}}``, the wall-clock
  time just before each publish (UTC epoch ms, with its fraction).

Killing the process (SIGKILL) drops every connection without a DISCONNECT: the broker then publishes
each gateway's Last Will, as it does when a power cut takes the gateways down.
"""

import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Final

from bench.fleet_gateways import GatewayConnection, or_exit, say
from protocol.clock import utc_now_ms
from protocol.codec import encode
from protocol.messages import (
    AdapterState,
    Alert,
    AlertKind,
    GatewayHealth,
    Heartbeat,
    Severity,
    TelemetryBatch,
    TelemetryPoint,
)
from protocol.topics import Channel, gateway_topic
from protocol.village_centre import village_centre_topic

METRICS: Final = ("temperature_c", "humidity_pct", "battery_v", "rssi_dbm", "water_level_cm")
SENSOR: Final = "sensor-01"
_CONNECTING_AT_ONCE: Final = 100


class SimulatedGateway(GatewayConnection):
    def __init__(self, host: str, port: int, index: int, seq_base: int, heartbeat_s: float) -> None:
        super().__init__(host, port, index, seq_base)
        self.heartbeat_s = heartbeat_s
        self._heartbeat_topic = gateway_topic(self.village, self.id, Channel.HEARTBEAT)
        self._telemetry_topic = gateway_topic(self.village, self.id, Channel.TELEMETRY)
        self._alert_topic = gateway_topic(self.village, self.id, Channel.ALERT)
        self._centre_topic = village_centre_topic(self.village, self.id)
        self.first_heartbeat = asyncio.Event()

    async def run(self, telemetry_s: float, phase: float) -> None:
        """Heartbeat and telemetry at this gateway's phase (a fraction of each interval), until cancelled."""
        await asyncio.gather(
            or_exit(self._every(self.heartbeat_s, phase * self.heartbeat_s, self._heartbeat)),
            or_exit(self._every(telemetry_s, phase * telemetry_s, self._telemetry)),
        )

    @staticmethod
    async def _every(interval_s: float, phase_s: float, send: Callable[[], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + phase_s
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            await send()
            next_at += interval_s

    async def _heartbeat(self) -> None:
        now = utc_now_ms()
        health = GatewayHealth(
            cpu_percent=12.5, memory_percent=41.0, disk_percent=23.0, uptime_s=(now - self._started_ms) / 1000,
            temperature_c=48.5, uplink_rtt_ms=14.0, adapters={"panic-1": AdapterState.RUNNING},
        )  # fmt: skip
        heartbeat = Heartbeat(
            gateway_id=self.id, seq=self._next_seq(), event_id=uuid.uuid4(), ts=now,
            interval_s=self.heartbeat_s, health=health,
        )  # fmt: skip
        await self.client.publish(self._heartbeat_topic, encode(heartbeat), qos=1)
        self.first_heartbeat.set()

    async def _telemetry(self) -> None:
        now = utc_now_ms()
        points = [
            TelemetryPoint(device_id=SENSOR, metric=metric, value=20.0 + n, ts=now) for n, metric in enumerate(METRICS)
        ]
        batch = TelemetryBatch(gateway_id=self.id, seq=self._next_seq(), event_id=uuid.uuid4(), ts=now, points=points)
        await self.client.publish(self._telemetry_topic, encode(batch), qos=1)

    async def press(self, device_id: str, to_fleet: bool) -> tuple[str, float]:
        """Publish a panic alert, to the fleet or to the village centre; its id and when it was published."""
        now = utc_now_ms()
        alert = Alert(
            gateway_id=self.id, seq=self._next_seq(), event_id=uuid.uuid4(), ts=now, device_id=device_id,
            kind=AlertKind.PANIC, severity=Severity.CRITICAL, evidence={"held_ms": 120}, summary="panic button",
        )  # fmt: skip
        payload = encode(alert)
        published_ms = time.time_ns() / 1e6
        await self.client.publish(self._alert_topic if to_fleet else self._centre_topic, payload, qos=1)
        return str(alert.event_id), published_ms


async def _presses(gateways: list[SimulatedGateway], round_: int, presses: int, spacing_ms: float) -> None:
    """Press after press at a steady pace, each in its own task so that a slow PUBACK delays no other."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    device = f"panic-{round_}"
    fleet: dict[str, float] = {}
    bare: dict[str, float] = {}

    async def one(gateway: SimulatedGateway, to_fleet: bool) -> None:
        event_id, published_ms = await gateway.press(device, to_fleet)
        (fleet if to_fleet else bare)[event_id] = published_ms

    tasks = []
    for number in range(presses):
        gateway = gateways[(round_ * presses + number) % len(gateways)]
        for half, to_fleet in enumerate((True, False)):
            at = start + (number + half / 2) * spacing_ms / 1000
            await asyncio.sleep(max(0.0, at - loop.time()))
            tasks.append(asyncio.create_task(or_exit(one(gateway, to_fleet))))
    await asyncio.gather(*tasks)
    say({"fleet": fleet, "bare": bare})


async def main(host: str, port: int, first: int, count: int, heartbeat_s: float, telemetry_s: float) -> None:
    seq_base = utc_now_ms()
    gateways = [SimulatedGateway(host, port, index, seq_base, heartbeat_s) for index in range(first, first + count)]
    connecting = asyncio.Semaphore(_CONNECTING_AT_ONCE)

    async def connect(gateway: SimulatedGateway) -> None:
        async with connecting:
            await gateway.connect()

    await asyncio.gather(*(connect(gateway) for gateway in gateways))
    running = [  # noqa: F841 - kept referenced until the process is killed
        asyncio.create_task(gateway.run(telemetry_s, n / count)) for n, gateway in enumerate(gateways)
    ]
    await asyncio.gather(*(gateway.first_heartbeat.wait() for gateway in gateways))
    say({"ready": count})
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command, *args = line.split()
        if command != "press":
            raise SystemExit(f"unknown command {command!r}")
        await _presses(gateways, int(args[0]), int(args[1]), float(args[2]))
    await asyncio.Event().wait()  # stdin closed: keep the connections until killed


if __name__ == "__main__":
    host, port, first, count, heartbeat, telemetry = sys.argv[1:]
    asyncio.run(main(host, int(port), int(first), int(count), float(heartbeat), float(telemetry)))
