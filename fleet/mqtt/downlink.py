"""The fleet's publishing connection: desired configs and commands to gateways, QoS 1.

One MQTT connection, kept up by :meth:`Downlink.run` (reconnecting with backoff; a refused login
raises :class:`~fleet.errors.BrokerRefusedError`). :meth:`Downlink.publish` waits until the
connection is up, publishes on the message's channel for that gateway (retained where the channel
is retained, e.g. ``config/desired``) and returns once the broker acknowledged it (PUBACK), so a
caller that records "published" after it returns never records a message the broker did not take.
:meth:`Downlink.erase_retained` deletes a topic's retained message the same way (a gateway's old
``config/desired`` after it moved village or was removed).
Up to ``max_in_flight`` publishes may await their PUBACK at once (paho's own default is 20); callers
fanning out bound their concurrency to it.
"""

import asyncio
import logging

import aiomqtt

from fleet.errors import DownlinkUnavailableError
from fleet.mqtt.client import broker_tls_context, session_client
from fleet.mqtt.reconnect import wait_to_reconnect
from fleet.settings import BrokerSettings
from protocol.codec import encode
from protocol.messages import Message, channel_of
from protocol.reconnect import Backoff
from protocol.topics import gateway_topic

logger = logging.getLogger(__name__)


class Downlink:
    def __init__(
        self, broker: BrokerSettings, client_id: str, *, max_in_flight: int = 100, backoff: Backoff | None = None
    ) -> None:
        self._broker = broker
        self._tls = broker_tls_context(broker)
        self._max_in_flight = max_in_flight
        self.client_id = client_id
        self._backoff = backoff or Backoff()
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self.published = 0
        self.failed = 0

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def run(self) -> None:
        """Keep the connection up until cancelled."""
        while True:
            try:
                await self._connection()
            except aiomqtt.MqttError as exc:
                await wait_to_reconnect(exc, self._broker, self.client_id, self._backoff, role="downlink")

    async def _connection(self) -> None:
        protocol = aiomqtt.ProtocolVersion.V311 if self._broker.mqtt_version == "3.1.1" else aiomqtt.ProtocolVersion.V5
        client = session_client(
            self._broker, self.client_id, self._tls, protocol=protocol, max_inflight_messages=self._max_in_flight
        )
        client.pending_calls_threshold = self._max_in_flight  # aiomqtt warns above it (default 10)
        async with client:
            self._client = client
            self._backoff.reset()
            self._connected.set()
            logger.info("downlink %s connected to %s:%d", self.client_id, self._broker.host, self._broker.port)
            try:
                async for _ in client.messages:  # returns when the connection drops (no subscriptions)
                    pass
            finally:
                self._connected.clear()
                self._client = None
        raise aiomqtt.MqttError("connection closed")

    async def publish(self, village_id: str, message: Message, *, timeout_s: float = 10.0) -> None:
        """Publish ``message`` to its gateway; raise :class:`DownlinkUnavailableError` if the broker has not
        acknowledged it within ``timeout_s`` (waiting for the connection included)."""
        channel = channel_of(message)
        topic = gateway_topic(village_id, message.gateway_id, channel)
        await self._publish(topic, encode(message), channel.retained, timeout_s, "publish")

    async def publish_raw(self, topic: str, payload: bytes, *, retain: bool = False, timeout_s: float = 10.0) -> None:
        """Publish ``payload`` on ``topic`` (built by :mod:`protocol.topics`, e.g. a village's notify topic) at
        QoS 1, returning once the broker acknowledged it, as :meth:`publish` does."""
        await self._publish(topic, payload, retain, timeout_s, "publish")

    async def erase_retained(self, topic: str, *, timeout_s: float = 10.0) -> None:
        """Delete ``topic``'s retained message (an empty retained publish), as :meth:`publish` acknowledged."""
        await self._publish(topic, b"", True, timeout_s, "erase the retained message on")
        logger.info("erased the retained message on %s", topic)

    async def _publish(self, topic: str, payload: bytes, retain: bool, timeout_s: float, doing: str) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
                client = self._client
                if client is None:
                    raise DownlinkUnavailableError(f"no broker connection to {doing} {topic}")
                await client.publish(topic, payload, qos=1, retain=retain)
        except (TimeoutError, aiomqtt.MqttError) as exc:
            self.failed += 1
            raise DownlinkUnavailableError(f"could not {doing} {topic} within {timeout_s:g} s: {exc}") from exc
        self.published += 1
