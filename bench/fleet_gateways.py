"""Simulated gateways for the fleet figures: one real MQTT connection each, in a process of their own.

``python -m bench.fleet_gateways HOST PORT INTERVAL_S FIRST COUNT SIGNING_KEY_FILE STATE_DIR`` runs
gateways ``FIRST`` to ``FIRST + COUNT - 1`` (ids from :func:`gateway_id`, spread over :data:`VILLAGES`
villages by :func:`village_id`; the ingest figures use the same ids). Each one does what the gateway
agent's uplink does on the presence path (``edge/uplink.py``): it connects with its own client id and a
retained Last Will (``offline``/``lost``), publishes a retained ``online`` presence stamped before the
Will, subscribes to its own downlink topics (``protocol.topics.gateway_filters``, QoS 1), then
publishes a :class:`~protocol.messages.Heartbeat` every ``INTERVAL_S`` at QoS 1, each gateway at its
own phase of the interval. Each needs its own connection because a Last Will belongs to a connection;
2,000 of them cost this process about 70 MB and a few percent of a core between heartbeats.

Pushed configs take the agent's own path (:mod:`bench.fleet_gateway_config`): validated by the
decoder, the signature checked against the fleet's public key in ``SIGNING_KEY_FILE`` (as the agent's
``config_signing_key``), applied, kept in ``STATE_DIR/{gateway}.json`` and reported with a retained
``ConfigReported``.

Lines on stdin steer it; answers are lines of JSON on stdout:

- at start: ``{"ready": COUNT}`` once every gateway is connected and has sent its first heartbeat;
- ``silence ID ID …``: those gateways stop heartbeating and stay connected, saying nothing (a frozen
  agent or a half-open link); the answer, once each has stopped, is ``{"last_heartbeat_ms": {ID: ms}}``,
  the wall-clock time (UTC epoch ms) just before each one's last heartbeat was published;
- ``reports``: the config reports sent since the last ``reports``, ``{"reports": {ID: [[version,
  status, received_ms, reported_ms], …]}}`` (see :class:`~bench.fleet_gateway_config.ConfigOutcome`).

Killing the process (SIGKILL) drops every connection without a DISCONNECT: the broker then publishes
each gateway's Last Will, as it does for a gateway that lost power or its link.
"""

import asyncio
import json
import os
import sys
import traceback
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bench.fleet_gateway_config import GatewayConfigFollower
from protocol.clock import utc_now_ms
from protocol.codec import Decoder, encode
from protocol.config_signing import load_public_keys
from protocol.gateway_config import GatewayConfig
from protocol.messages import (
    AdapterState,
    ConfigReported,
    GatewayHealth,
    Heartbeat,
    Presence,
    PresenceReason,
    PresenceState,
)
from protocol.mqtt_socket import NO_DELAY
from protocol.topics import Channel, gateway_filters, gateway_topic

AGENT_VERSION: Final = "bench-gateway"
VILLAGES: Final = 10
_CONNECTING_AT_ONCE: Final = 100


def gateway_id(index: int) -> str:
    return f"gw-{index:04d}"


def village_id(gateway_index: int) -> str:
    return f"village-{gateway_index % VILLAGES:02d}"


def _health(uptime_s: float) -> GatewayHealth:
    return GatewayHealth(
        cpu_percent=12.5, memory_percent=41.0, disk_percent=23.0, uptime_s=uptime_s, temperature_c=48.5,
        uplink_rtt_ms=14.0, buffer_depth=0, buffer_bytes=0, dropped={}, adapters={"panic-1": AdapterState.RUNNING},
    )  # fmt: skip


async def or_exit(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work``; any failure ends the process, so the bench sees it at once instead of waiting for a
    heartbeat or a report that never comes."""
    try:
        await work
    except asyncio.CancelledError:
        raise
    except BaseException:
        traceback.print_exc()
        os._exit(1)


@dataclass(frozen=True, slots=True)
class ConfigSetup:
    """What every gateway of this process needs to follow pushed configs."""

    signing_keys: list[Ed25519PublicKey]
    state_dir: Path
    decoder: Decoder


class GatewayConnection:
    """Gateway ``index``'s own MQTT connection, opened as the agent's uplink opens it (``edge/uplink.py``): its
    client id, ``TCP_NODELAY``, a retained Last Will (``offline``/``lost``) and, on :meth:`connect`, a retained
    ``online`` presence stamped before the Will. Its messages are numbered from ``seq_base`` on."""

    def __init__(self, host: str, port: int, index: int, seq_base: int = 0) -> None:
        self.id = gateway_id(index)
        self.village = village_id(index)
        self._seq = seq_base
        self._started_ms = utc_now_ms()
        self._presence_topic = gateway_topic(self.village, self.id, Channel.PRESENCE)
        self._online = self._presence(PresenceState.ONLINE, PresenceReason.CONNECTED)
        lost = self._presence(PresenceState.OFFLINE, PresenceReason.LOST)  # stamped after online: it outranks it
        will = aiomqtt.Will(self._presence_topic, lost, qos=1, retain=True)
        self.client = aiomqtt.Client(
            host,
            port,
            identifier=f"outpost-gw-{self.id}",
            will=will,
            max_inflight_messages=0,
            timeout=30,
            socket_options=NO_DELAY,
        )

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _presence(self, state: PresenceState, reason: PresenceReason) -> bytes:
        return encode(
            Presence(
                gateway_id=self.id, seq=self._next_seq(), event_id=uuid.uuid4(), ts=utc_now_ms(),
                state=state, reason=reason, agent_version=AGENT_VERSION,
            )
        )  # fmt: skip

    async def connect(self) -> None:
        await self.client.__aenter__()
        await self.client.publish(self._presence_topic, self._online, qos=1, retain=True)


class SimulatedGateway(GatewayConnection):
    def __init__(self, host: str, port: int, index: int, interval_s: float, phase_s: float, setup: ConfigSetup) -> None:
        super().__init__(host, port, index)
        self._interval_s = interval_s
        self._phase_s = phase_s
        self._heartbeat_topic = gateway_topic(self.village, self.id, Channel.HEARTBEAT)
        self._reported_topic = gateway_topic(self.village, self.id, Channel.CONFIG_REPORTED)
        self.configs = GatewayConfigFollower(
            self.village, self.id,
            initial=GatewayConfig(heartbeat_interval_s=interval_s),
            signing_keys=setup.signing_keys,
            state_file=setup.state_dir / f"{self.id}.json",
            decoder=setup.decoder,
            next_seq=self._next_seq,
            publish=self._publish_report,
        )  # fmt: skip
        self.silenced = asyncio.Event()
        self.last_heartbeat_ms = 0
        self.first_heartbeat = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def connect(self) -> None:
        """Connect, announce itself online and subscribe to its downlink, as the agent's uplink does."""
        await super().connect()
        for topic_filter in gateway_filters(self.village, self.id):
            await self.client.subscribe(topic_filter, qos=1)
        self._tasks += [
            asyncio.create_task(or_exit(self._listen())),
            asyncio.create_task(or_exit(self.configs.updates.run())),
        ]

    async def _listen(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            self.configs.on_downlink(str(message.topic), payload)

    async def _publish_report(self, report: ConfigReported) -> None:
        await or_exit(self.client.publish(self._reported_topic, encode(report), qos=1, retain=True))

    async def beat(self) -> None:
        """Heartbeat every interval, at this gateway's phase, until silenced (or cancelled)."""
        await or_exit(self._beat())

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self._phase_s
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if self.silenced.is_set():
                return
            now = utc_now_ms()
            heartbeat = Heartbeat(
                gateway_id=self.id, seq=self._next_seq(), event_id=uuid.uuid4(), ts=now,
                interval_s=self._interval_s, health=_health((now - self._started_ms) / 1000),
            )  # fmt: skip
            self.last_heartbeat_ms = now
            await self.client.publish(self._heartbeat_topic, encode(heartbeat), qos=1)
            self.first_heartbeat.set()
            next_at += self._interval_s


def say(answer: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


async def main(setup: ConfigSetup, host: str, port: int, interval_s: float, first: int, count: int) -> None:
    gateways = [
        SimulatedGateway(host, port, index, interval_s, phase_s=interval_s * n / count, setup=setup)
        for n, index in enumerate(range(first, first + count))
    ]
    connecting = asyncio.Semaphore(_CONNECTING_AT_ONCE)

    async def connect(gateway: SimulatedGateway) -> None:
        async with connecting:
            await gateway.connect()

    await asyncio.gather(*(connect(gateway) for gateway in gateways))
    beating = [asyncio.create_task(gateway.beat()) for gateway in gateways]
    await asyncio.gather(*(gateway.first_heartbeat.wait() for gateway in gateways))
    say({"ready": count})
    by_id = {gateway.id: (gateway, task) for gateway, task in zip(gateways, beating, strict=True)}
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command, *ids = line.split()
        if command == "reports":
            outcomes = {gateway.id: gateway.configs.take_outcomes() for gateway in gateways}
            say({"reports": {id_: [each.as_json() for each in taken] for id_, taken in outcomes.items() if taken}})
            continue
        if command != "silence":
            raise SystemExit(f"unknown command {command!r}")
        for gateway_id_ in ids:
            gateway, task = by_id[gateway_id_]
            gateway.silenced.set()
            task.cancel()  # at once, even mid-publish: its last heartbeat time was noted before publishing
        await asyncio.gather(*(by_id[gateway_id_][1] for gateway_id_ in ids), return_exceptions=True)
        say({"last_heartbeat_ms": {gateway_id_: by_id[gateway_id_][0].last_heartbeat_ms for gateway_id_ in ids}})
    await asyncio.Event().wait()  # stdin closed: keep the connections until killed


def _setup(signing_key_file: str, state_dir: str) -> ConfigSetup:
    return ConfigSetup(load_public_keys(Path(signing_key_file).read_bytes()), Path(state_dir), Decoder())


if __name__ == "__main__":
    host, port, interval, first, count, key_file, state = sys.argv[1:]
    asyncio.run(main(_setup(key_file, state), host, int(port), float(interval), int(first), int(count)))
