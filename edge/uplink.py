"""The gateway's MQTT uplink: one connection to the broker, kept alive, drained from the outbound queue.

On connect it registers a retained Last Will (``offline``/``lost``) and publishes a retained
``online`` presence; on a clean stop it publishes ``offline``/``shutdown`` before disconnecting.
Transient failures reconnect with exponential backoff and jitter; a permanent refusal (bad
credentials, not authorised) stops with :class:`~edge.errors.UplinkRefusedError`.
"""

import asyncio
import logging

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from edge.envelope import EnvelopeStamper
from edge.errors import UplinkRefusedError
from edge.outbound import OutboundQueue
from edge.settings import BrokerSettings
from protocol.codec import encode
from protocol.messages import Presence, PresenceReason, PresenceState
from protocol.reconnect import Backoff, is_permanent_refusal, refusal_code
from protocol.topics import Channel, gateway_topic

logger = logging.getLogger(__name__)


class Uplink:
    def __init__(
        self,
        broker: BrokerSettings,
        village_id: str,
        stamper: EnvelopeStamper,
        queue: OutboundQueue,
        agent_version: str,
        backoff: Backoff | None = None,
    ) -> None:
        self._broker = broker
        self._stamper = stamper
        self._queue = queue
        self._agent_version = agent_version
        self._backoff = backoff or Backoff()
        self._presence_topic = gateway_topic(village_id, stamper.gateway_id, Channel.PRESENCE)
        self._client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self.connects = 0

    def _presence(self, state: PresenceState, reason: PresenceReason) -> bytes:
        return encode(Presence(**self._stamper.stamp(), state=state, reason=reason, agent_version=self._agent_version))

    async def run(self) -> None:
        """Keep the uplink up until cancelled; raise UplinkRefusedError on a permanent refusal."""
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                # Only a CONNACK refusal can be permanent; other codes are paho's own (e.g. 4 = no connection).
                code = refusal_code(exc.rc) if isinstance(exc, MqttConnectError) else None
                if is_permanent_refusal(code):
                    raise UplinkRefusedError(
                        f"broker {self._broker.host}:{self._broker.port} refused gateway "
                        f"{self._stamper.gateway_id} (code {code}): check its credentials"
                    ) from exc
                delay = self._backoff.next_delay()
                logger.warning(
                    "uplink to %s:%d down (%s); retrying in %.1f s",
                    self._broker.host,
                    self._broker.port,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _session(self) -> None:
        password = self._broker.password.get_secret_value() if self._broker.password else None
        # Stamped in this order so the session's Will outranks its own `online` (see fleet.presence).
        online = self._presence(PresenceState.ONLINE, PresenceReason.CONNECTED)
        lost = self._presence(PresenceState.OFFLINE, PresenceReason.LOST)
        will = aiomqtt.Will(self._presence_topic, lost, qos=1, retain=True)
        async with aiomqtt.Client(
            self._broker.host,
            self._broker.port,
            identifier=f"outpost-gw-{self._stamper.gateway_id}",
            username=self._broker.username,
            password=password,
            will=will,
            keepalive=self._broker.keepalive_s,
            timeout=10,
        ) as client:
            self._backoff.reset()
            await client.publish(self._presence_topic, online, qos=1, retain=True)
            self._client = client
            self.connects += 1
            self.connected.set()
            logger.info("uplink connected to %s:%d", self._broker.host, self._broker.port)
            try:
                await self._drain(client)
            finally:
                self.connected.clear()
                self._client = None

    async def _drain(self, client: aiomqtt.Client) -> None:
        while True:
            item = await self._queue.get()
            try:
                await client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
            except BaseException:
                self._queue.requeue(item)
                raise
            self._queue.task_done()

    async def shutdown(self, drain_timeout_s: float = 5.0) -> None:
        """Send what is queued (for at most ``drain_timeout_s``), then announce a clean offline."""
        try:
            await asyncio.wait_for(self._queue.join(), drain_timeout_s)
        except TimeoutError:
            logger.warning("stopping with %d messages unsent", len(self._queue))
        client = self._client
        if client is not None:
            try:
                offline = self._presence(PresenceState.OFFLINE, PresenceReason.SHUTDOWN)
                await client.publish(self._presence_topic, offline, qos=1, retain=True, timeout=2)
            except aiomqtt.MqttError as exc:
                logger.warning("could not announce shutdown: %s", exc)
